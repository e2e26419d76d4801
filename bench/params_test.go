package bench

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestInstancesCrossProduct(t *testing.T) {
	a, b := Model{Path: "a.gguf"}, Model{Path: "b.gguf"}
	base := func() Params {
		p := DefaultParams(a)
		p.Threads = []int{4}
		return p
	}
	cases := []struct {
		name  string
		edit  func(p *Params)
		count int
		first []string // Name() of the first instances, in order
	}{
		{"defaults", func(*Params) {}, 2, []string{"pp512", "tg128"}},
		{"pg adds a combined test", func(p *Params) { p.PG = []PG{{512, 128}} }, 3, []string{"pp512", "tg128", "pp512+tg128"}},
		{"zeros are skipped", func(p *Params) { p.NPrompt = []int{0}; p.PG = []PG{{0, 0}, {16, 0}} }, 2, []string{"tg128", "pp16"}},
		{"depth is inside threads", func(p *Params) { p.Depth = []int{0, 4096}; p.Threads = []int{1, 2} }, 8,
			[]string{"pp512", "tg128", "pp512 @ d4096", "tg128 @ d4096", "pp512"}},
		{"the issue's sweep", func(p *Params) {
			p.Models = []Model{a, b}
			p.PG = []PG{{512, 128}}
			p.Threads = []int{1, 2}
			p.GPULayers = []int{0, 99}
			p.FlashAttn = []int{0, 1}
			p.TypeK = []string{"f16", "q8_0"}
			p.TypeV = []string{"f16", "q8_0"}
			p.Depth = []int{0, 4096}
		}, 2 * 2 * 2 * 2 * 2 * 2 * 2 * 3, nil},
		{"several prompt sizes", func(p *Params) { p.NPrompt = []int{16, 32}; p.NGen = []int{0} }, 2, []string{"pp16", "pp32"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.edit(&p)
			got := p.Instances()
			if len(got) != tc.count {
				t.Fatalf("%d instances, want %d", len(got), tc.count)
			}
			for i, name := range tc.first {
				if got[i].Name() != name {
					t.Errorf("instance %d is %s, want %s", i, got[i].Name(), name)
				}
			}
			seen := map[Instance]bool{}
			for _, in := range got {
				if seen[in] {
					t.Errorf("duplicate instance %+v", in)
				}
				seen[in] = true
			}
		})
	}

	// The model and its GPU layers change least often: each (model, ngl)
	// is one contiguous run, so each is loaded once.
	p := base()
	p.Models = []Model{a, b}
	p.GPULayers = []int{0, 99}
	p.Threads = []int{1, 2}
	var loads []string
	for _, in := range p.Instances() {
		k := in.Model.Path + "/" + string(rune('0'+in.GPULayers%10))
		if len(loads) == 0 || loads[len(loads)-1] != k {
			loads = append(loads, k)
		}
	}
	if len(loads) != 4 {
		t.Errorf("models loaded %d times (%v), want 4", len(loads), loads)
	}
}

func TestInstanceName(t *testing.T) {
	for _, c := range []struct {
		in   Instance
		want string
	}{
		{Instance{NPrompt: 512}, "pp512"},
		{Instance{NGen: 128}, "tg128"},
		{Instance{NPrompt: 512, NGen: 128}, "pp512+tg128"},
		{Instance{NPrompt: 512, Depth: 4096}, "pp512 @ d4096"},
		{Instance{NGen: 128, Depth: 4096}, "tg128 @ d4096"},
	} {
		if got := c.in.Name(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.in, got, c.want)
		}
	}
	if n := (Instance{NPrompt: 512, NGen: 128, Depth: 4096}).ContextLength(); n != 4736 {
		t.Errorf("ContextLength = %d", n)
	}
}

func TestParseInts(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
		err  bool
	}{
		{"512", []int{512}, false},
		{"1,2,4", []int{1, 2, 4}, false},
		{"1-4", []int{1, 2, 3, 4}, false},
		{"1-16*2", []int{1, 2, 4, 8, 16}, false},
		{"0-4096+1024", []int{0, 1024, 2048, 3072, 4096}, false},
		{"0,99", []int{0, 99}, false},
		{"-1", []int{-1}, false},
		{"x", nil, true},
		{"1,,2", nil, true},
		{"0-8*2", nil, true}, // 0·2 does not increase
		{"4-1", []int{}, false},
	} {
		got, err := ParseInts(c.in)
		if (err != nil) != c.err || (!c.err && !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0)) {
			t.Errorf("ParseInts(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
	if pg, err := ParsePG("512,128"); err != nil || pg != (PG{512, 128}) {
		t.Errorf("ParsePG: %v, %v", pg, err)
	}
	for _, bad := range []string{"512", "a,b", "-1,2"} {
		if _, err := ParsePG(bad); err == nil {
			t.Errorf("ParsePG(%q) accepted", bad)
		}
	}
	if fa, err := ParseFlashAttn("0,1,auto,on"); err != nil || !slices.Equal(fa, []int{0, 1, -1, 1}) {
		t.Errorf("ParseFlashAttn: %v, %v", fa, err)
	}
	if _, err := ParseFlashAttn("2"); err == nil {
		t.Error("flash attention 2 accepted")
	}
	if ct, err := ParseCacheTypes("F16,q8_0"); err != nil || !slices.Equal(ct, []string{"f16", "q8_0"}) {
		t.Errorf("ParseCacheTypes: %v, %v", ct, err)
	}
	if _, err := ParseCacheTypes("q3_k"); err == nil || !strings.Contains(err.Error(), "q8_0") {
		t.Errorf("cache type q3_k: %v", err)
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultParams(Model{Path: "m.gguf"})
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(p *Params){
		"no model":        func(p *Params) { p.Models = nil },
		"no repetitions":  func(p *Params) { p.Repetitions = 0 },
		"zero threads":    func(p *Params) { p.Threads = []int{0} },
		"negative prompt": func(p *Params) { p.NPrompt = []int{-1} },
		"no test":         func(p *Params) { p.NPrompt, p.NGen = []int{0}, []int{0} },
		"bad cache type":  func(p *Params) { p.TypeV = []string{"q2"} },
		"flash attn 3":    func(p *Params) { p.FlashAttn = []int{3} },
	} {
		p := DefaultParams(Model{Path: "m.gguf"})
		edit(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestInstancesEmbeddings: -embd loops outside the batch sizes, as
// llama-bench's, and gets a markdown column when swept.
func TestInstancesEmbeddings(t *testing.T) {
	p := DefaultParams(Model{Path: "a.gguf"})
	p.NGen, p.Batch, p.Embeddings = []int{0}, []int{8, 16}, []bool{false, true}
	var got []string
	for _, in := range p.Instances() {
		got = append(got, fmt.Sprintf("embd%v/b%d", in.Embeddings, in.Batch))
	}
	if want := []string{"embdfalse/b8", "embdfalse/b16", "embdtrue/b8", "embdtrue/b16"}; !slices.Equal(got, want) {
		t.Errorf("instances %v, want %v", got, want)
	}
	var buf strings.Builder
	pr, err := NewPrinter("md", &buf, p, System{})
	if err != nil {
		t.Fatal(err)
	}
	r := Result{Instance: p.Instances()[2]}
	if err := pr.Header(); err != nil {
		t.Fatal(err)
	}
	if err := pr.Print(&r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), " embd |") || !strings.Contains(buf.String(), "|    1 |") {
		t.Errorf("no embd column:\n%s", buf.String())
	}
}
