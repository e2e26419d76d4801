package convert_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/llm-go/llm/engine"
	ref64 "github.com/llm-go/llm/internal/reference"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// The tiny jina-embeddings-v3: the tiny XLM-RoBERTa's shape and Unigram
// vocabulary, rotary positions, and two task LoRAs of rank 4 on every
// linear layer and both embeddings.
const (
	jv3Rank  = 4
	jv3Alpha = 1.0
	jv3Base  = 20000.0
)

var jv3Tasks = []string{"retrieval.query", "text-matching"}

var jv3Instructions = map[string]string{"retrieval.query": "Represent the query for retrieving evidence documents: ", "text-matching": ""}

// jinaV3Fixture writes the tiny jina-embeddings-v3 checkpoint: its weights
// parametrized (…parametrizations.weight.original, with lora_A and
// lora_B stacked by task) under "roberta.", mean pooling; without lora,
// plain weights and no LoRA factors; edit changes config.json.
func jinaV3Fixture(t *testing.T, lora bool, edit func(map[string]any)) string {
	t.Helper()
	dir := xlmrFixture(t, false, nil)
	V := int64(4 + len(xlmrPieces) + 1)
	cfg := map[string]any{"architectures": []string{"XLMRobertaModel"}, "model_type": "xlm-roberta", "hidden_size": bertHidden,
		"intermediate_size": bertFFN, "num_hidden_layers": bertLayers, "num_attention_heads": bertHeads, "max_position_embeddings": xlmrMaxPos,
		"type_vocab_size": 1, "vocab_size": V, "layer_norm_eps": 1e-5, "hidden_act": "gelu", "position_embedding_type": "rotary",
		"rotary_emb_base": jv3Base, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "lora_adaptations": jv3Tasks,
		"task_instructions": jv3Instructions, "lora_rank": jv3Rank, "lora_alpha": jv3Alpha, "lora_dropout_p": 0.0,
		"load_trained_adapters": true, "use_flash_attn": true, "emb_pooler": nil, "matryoshka_dimensions": []int{8, 16, 32}}
	if edit != nil {
		edit(cfg)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	writeSentenceModules(t, dir, "mean")
	w := randWeights{rand.New(rand.NewPCG(20, 3))}
	H, I, T, R := int64(bertHidden), int64(bertFFN), int64(len(jv3Tasks)), int64(jv3Rank)
	lora3 := func(name string, d0, d1 int64, sd float64) stTensor {
		return f32Tensor(name, []int64{T, d0, d1}, randn(w.r, int(T*d0*d1), sd))
	}
	// A parametrized linear layer [out, in] with its bias and LoRA.
	linear := func(p string, out, in int64) []stTensor {
		if !lora {
			return []stTensor{w.mat(p+".weight", out, in), w.vec(p+".bias", out, 0, 0.1)}
		}
		return []stTensor{w.mat(p+".parametrizations.weight.original", out, in), w.vec(p+".bias", out, 0, 0.1),
			lora3(p+".parametrizations.weight.0.lora_A", R, in, 0.5), lora3(p+".parametrizations.weight.0.lora_B", out, R, 0.3)}
	}
	// A parametrized embedding [rows, dim]: A [tasks, rows, rank], B [tasks, rank, dim].
	embedding := func(p string, rows int64) []stTensor {
		if !lora {
			return []stTensor{w.mat(p+".weight", rows, H)}
		}
		return []stTensor{w.mat(p+".parametrizations.weight.original", rows, H),
			lora3(p+".parametrizations.weight.0.lora_A", rows, R, 0.5), lora3(p+".parametrizations.weight.0.lora_B", R, H, 0.3)}
	}
	ts := append(embedding("roberta.embeddings.word_embeddings", V), embedding("roberta.embeddings.token_type_embeddings", 1)...)
	ts = append(ts, w.vec("roberta.emb_ln.weight", H, 1, 0.1), w.vec("roberta.emb_ln.bias", H, 0, 0.1))
	for l := range bertLayers {
		p := fmt.Sprintf("roberta.encoder.layers.%d.", l)
		ts = append(ts, linear(p+"mixer.Wqkv", 3*H, H)...)
		ts = append(ts, linear(p+"mixer.out_proj", H, H)...)
		ts = append(ts, w.vec(p+"norm1.weight", H, 1, 0.1), w.vec(p+"norm1.bias", H, 0, 0.1))
		ts = append(ts, linear(p+"mlp.fc1", I, H)...)
		ts = append(ts, linear(p+"mlp.fc2", H, I)...)
		ts = append(ts, w.vec(p+"norm2.weight", H, 1, 0.1), w.vec(p+"norm2.bias", H, 0, 0.1))
	}
	ts = append(ts, linear("roberta.pooler.dense", H, H)...)
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// jv3Ref builds the float64 reference of the tiny jina-embeddings-v3 for
// task (-1: none) with its LoRAs merged as the modeling code applies them
// (W + alpha/r·B·A; an embedding's W + alpha/r·A·B); the knobs change one
// feature each.
type jv3Ref struct {
	r     *stReader
	task  int
	noTyp bool // the token type's LoRA left out (llama.cpp's graph with convert_hf_to_gguf.py's adapter)
	pairs bool // rope on adjacent pairs
	plain bool // the weights are not parametrized (a checkpoint without LoRAs)
}

func (j jv3Ref) merged(p string, out, in int, embedding bool) []float64 {
	if j.plain {
		return j.r.get(p + ".weight")
	}
	w := j.r.get(p + ".parametrizations.weight.original")
	if j.task < 0 {
		return w
	}
	a, b := j.r.get(p+".parametrizations.weight.0.lora_A"), j.r.get(p+".parametrizations.weight.0.lora_B")
	s := jv3Alpha / jv3Rank
	for o := range out {
		for i := range in {
			var d float64
			for k := range jv3Rank {
				if embedding { // A [rows=out, r], B [r, dim=in]
					d += a[(j.task*out+o)*jv3Rank+k] * b[(j.task*jv3Rank+k)*in+i]
				} else { // A [r, in], B [out, r]
					d += b[(j.task*out+o)*jv3Rank+k] * a[(j.task*jv3Rank+k)*in+i]
				}
			}
			w[o*in+i] += s * d
		}
	}
	return w
}

func (j jv3Ref) model() *ref64.BERT {
	H, I, V := bertHidden, bertFFN, 4+len(xlmrPieces)+1
	typ := j.merged("roberta.embeddings.token_type_embeddings", 1, H, true)
	if j.noTyp {
		typ = jv3Ref{r: j.r, task: -1, plain: j.plain}.merged("roberta.embeddings.token_type_embeddings", 1, H, true)
	}
	m := &ref64.BERT{Hidden: H, Heads: bertHeads, Eps: 1e-5, WordEmb: j.merged("roberta.embeddings.word_embeddings", V, H, true),
		TypeEmb: typ, EmbNormW: j.r.get("roberta.emb_ln.weight"), EmbNormB: j.r.get("roberta.emb_ln.bias")}
	d := H / bertHeads
	freq := defaultInvFreq(jv3Base, d)
	m.Rope = func(q, k []float64, pos int) {
		for h := range bertHeads {
			for _, v := range [][]float64{q[h*d : (h+1)*d], k[h*d : (h+1)*d]} {
				if j.pairs {
					ropePairs(v, pos, freq, 1)
				} else {
					rope(v, pos, freq, 1)
				}
			}
		}
	}
	for l := range bertLayers {
		p := fmt.Sprintf("roberta.encoder.layers.%d.", l)
		qkv, bqkv := j.merged(p+"mixer.Wqkv", 3*H, H, false), j.r.get(p+"mixer.Wqkv.bias")
		m.Layers = append(m.Layers, ref64.BERTLayer{
			WQ: qkv[:H*H], WK: qkv[H*H : 2*H*H], WV: qkv[2*H*H:], BQ: bqkv[:H], BK: bqkv[H : 2*H], BV: bqkv[2*H:],
			WO: j.merged(p+"mixer.out_proj", H, H, false), BO: j.r.get(p + "mixer.out_proj.bias"),
			AttnNormW: j.r.get(p + "norm1.weight"), AttnNormB: j.r.get(p + "norm1.bias"),
			WUp: j.merged(p+"mlp.fc1", I, H, false), BUp: j.r.get(p + "mlp.fc1.bias"),
			WDown: j.merged(p+"mlp.fc2", H, I, false), BDown: j.r.get(p + "mlp.fc2.bias"),
			OutNormW: j.r.get(p + "norm2.weight"), OutNormB: j.r.get(p + "norm2.bias")})
	}
	return m
}

func (j jv3Ref) pooled(ids []int) []float64 { return ref64.Pool(j.model().Forward(ids), false) }

// TestJinaV3 converts the tiny jina-embeddings-v3 and checks the model's
// keys, the task adapters written beside it, and llama.cpp's mean-pooled
// embeddings without a task and with each task's adapter against the
// reference with that task's LoRAs merged, which would see the token
// type's LoRA left out, another task's adapter, no adapter and the rope on
// adjacent pairs.
func TestJinaV3(t *testing.T) {
	dir := jinaV3Fixture(t, true, nil)
	if err := convert.Check(dir); err != nil {
		t.Fatal(err)
	}
	out, f := convertDir(t, dir, "f32")
	if a := f.Architecture(); a != "jina-bert-v3" {
		t.Fatalf("arch %q, want jina-bert-v3", a)
	}
	for k, want := range map[string]uint64{"context_length": xlmrMaxPos - 2, "pooling_type": 1, "rope.dimension_count": bertHidden / bertHeads} {
		if got, ok := f.Uint("jina-bert-v3." + k); !ok || got != want {
			t.Errorf("%s = %d (%v), want %d", k, got, ok, want)
		}
	}
	if b, ok := f.Float("jina-bert-v3.rope.freq_base"); !ok || b != jv3Base {
		t.Errorf("rope.freq_base %v (%v), want %v", b, ok, jv3Base)
	}
	for _, ti := range f.Tensors {
		if ti.Name == "position_embd.weight" || filepath.Ext(ti.Name) == ".lora_a" || filepath.Ext(ti.Name) == ".lora_b" {
			t.Errorf("the model has %s", ti.Name)
		}
	}
	tasks, err := convert.TaskAdapters(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != len(jv3Tasks) {
		t.Fatalf("task adapters %+v, want %v", tasks, jv3Tasks)
	}
	for i, ta := range tasks {
		if ta.Task != jv3Tasks[i] || ta.PromptPrefix != jv3Instructions[ta.Task] || ta.Path != convert.TaskAdapterPath(out, ta.Task) {
			t.Errorf("task adapter %+v, want %s at %s", ta, jv3Tasks[i], convert.TaskAdapterPath(out, jv3Tasks[i]))
		}
	}
	af, err := gguf.Open(tasks[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	// The token type's LoRA folded into the word embeddings' as one more rank.
	if ti, ok := af.Tensor("token_embd.weight.lora_a"); !ok || !slices.Equal(ti.Shape, []uint64{jv3Rank + 1, uint64(4 + len(xlmrPieces) + 1)}) {
		t.Errorf("token_embd.weight.lora_a %+v (%v), want rank %d", ti, ok, jv3Rank+1)
	}
	if _, ok := af.Tensor("token_types.weight.lora_a"); ok {
		t.Error("the adapter has token_types.weight.lora_a, which llama.cpp would never apply")
	}
	if alpha, ok := af.Float(gguf.KeyLoRAAlpha); !ok || alpha != jv3Alpha {
		t.Errorf("alpha %v (%v), want %v", alpha, ok, jv3Alpha)
	}
	checkFoldedEmbedding(t, openST(t, dir), tasks[0].Path, 0)

	// Another model's adapter beside it (lora-TASK-x-<file> is x-<file>'s)
	// is not this model's.
	other := filepath.Join(filepath.Dir(out), "lora-retrieval.query-ft-"+filepath.Base(out))
	raw, err := os.ReadFile(tasks[1].Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if again, err := convert.TaskAdapters(out); err != nil || len(again) != len(tasks) || again[0].Path != tasks[0].Path {
		t.Errorf("with another model's adapter beside: %+v, %v", again, err)
	}
	os.Remove(other)

	m := loadModel(t, out, engine.ModelOptions{})
	r := openST(t, dir)
	texts := []string{"a dog", "the cat sat on the mat.", "hello world! the dogs sat on a mat."}
	checkEncoder(t, m, texts, jv3Ref{r: r, task: -1}.pooled)
	for i, ta := range tasks {
		t.Run(ta.Task, func(t *testing.T) {
			a, err := m.LoadAdapter(ta.Path)
			if err != nil {
				t.Fatal(err)
			}
			got, ids := checkEncoderWith(t, m, a, texts, jv3Ref{r: r, task: i}.pooled)
			for name, other := range map[string]jv3Ref{
				"the token type's LoRA left out": {r: r, task: i, noTyp: true},
				"the other task's adapter":       {r: r, task: 1 - i},
				"no adapter":                     {r: r, task: -1},
				"rope on pairs":                  {r: r, task: i, pairs: true},
			} {
				if d := relErr(got, other.pooled(ids)); !(d > 5e-3) {
					t.Errorf("%s: the reference differs by only %.3g", name, d)
				} else {
					t.Logf("%s: %.3g from llama.cpp", name, d)
				}
			}
		})
	}
}

// checkFoldedEmbedding checks the token_embd LoRA of task's adapter at path
// value by value: A's first columns the word embeddings' A times (r+1)/r,
// its last ones; B's first columns the word embeddings' B transposed, its
// last the token type's update A[0]·B times (r+1)/r (the scale alpha/r
// being alpha/(r+1) in llama.cpp).
func checkFoldedEmbedding(t *testing.T, r *stReader, path string, task int) {
	t.Helper()
	a, b := ggufF32(t, path, "token_embd.weight.lora_a"), ggufF32(t, path, "token_embd.weight.lora_b")
	V, H, R, RR := 4+len(xlmrPieces)+1, bertHidden, jv3Rank, jv3Rank+1
	wa, wb := r.get("roberta.embeddings.word_embeddings.parametrizations.weight.0.lora_A"), r.get("roberta.embeddings.word_embeddings.parametrizations.weight.0.lora_B")
	ta, tb := r.get("roberta.embeddings.token_type_embeddings.parametrizations.weight.0.lora_A"), r.get("roberta.embeddings.token_type_embeddings.parametrizations.weight.0.lora_B")
	if len(a) != V*RR || len(b) != H*RR {
		t.Fatalf("lora_a has %d values, lora_b %d; want %d and %d", len(a), len(b), V*RR, H*RR)
	}
	var worst float64
	for v := range V {
		for k := range R {
			worst = max(worst, math.Abs(float64(a[v*RR+k])-wa[(task*V+v)*R+k]*float64(RR)/float64(R)))
		}
		worst = max(worst, math.Abs(float64(a[v*RR+R])-1))
	}
	for d := range H {
		for k := range R {
			worst = max(worst, math.Abs(float64(b[d*RR+k])-wb[(task*R+k)*H+d]))
		}
		var u float64
		for k := range R {
			u += ta[task*R+k] * tb[(task*R+k)*H+d]
		}
		worst = max(worst, math.Abs(float64(b[d*RR+R])-u*float64(RR)/float64(R)))
	}
	if worst > 1e-6 {
		t.Errorf("token_embd's folded LoRA differs by up to %.3g", worst)
	}
}

// ggufF32 reads the F32 tensor name of the GGUF file at path.
func ggufF32(t *testing.T, path, name string) []float32 {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ti, ok := f.Tensor(name)
	if !ok || ti.Type != gguf.TypeF32 {
		t.Fatalf("%s: no F32 tensor %s (%+v)", path, name, ti)
	}
	n := uint64(1)
	for _, d := range ti.Shape {
		n *= d
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	raw := make([]byte, 4*n)
	if _, err := fh.ReadAt(raw, f.DataOffset+int64(ti.Offset)); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// TestJinaV3Quantized: a conversion quantized through the engine names the
// task adapters for its own file (not the F16 file it quantized).
func TestJinaV3Quantized(t *testing.T) {
	dir := jinaV3Fixture(t, true, nil)
	out := filepath.Join(t.TempDir(), "jina-v3-q4_0.gguf")
	if err := convert.ToType(context.Background(), dir, out, "q4_0", 1, nil); err != nil {
		t.Fatal(err)
	}
	tasks, err := convert.TaskAdapters(out)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(tasks) != len(jv3Tasks) || len(entries) != 1+len(jv3Tasks) {
		t.Errorf("task adapters %+v beside %d files, want %v beside the model only", tasks, len(entries), jv3Tasks)
	}
	m := loadModel(t, out, engine.ModelOptions{})
	for _, ta := range tasks {
		if _, err := m.LoadAdapter(ta.Path); err != nil {
			t.Errorf("%s: %v", ta.Task, err)
		}
	}
}

// TestJinaV3Refused checks the configurations and checkpoints that cannot
// be converted faithfully are refused, naming the problem.
func TestJinaV3Refused(t *testing.T) {
	for name, c := range map[string]struct {
		edit func(map[string]any)
		lora bool
		want error
	}{
		"interleaved rope":    {func(c map[string]any) { c["rotary_emb_interleaved"] = true }, true, convert.ErrUnsupported},
		"xpos":                {func(c map[string]any) { c["rotary_emb_scale_base"] = 512 }, true, convert.ErrUnsupported},
		"partial rope":        {func(c map[string]any) { c["rotary_emb_dim"] = 4 }, true, convert.ErrUnsupported},
		"rope base 0":         {func(c map[string]any) { c["rotary_emb_base"] = 0 }, true, convert.ErrMismatch},
		"rotary RobertaModel": {func(c map[string]any) { c["architectures"] = []string{"RobertaModel"} }, true, convert.ErrUnsupported},
		"classifier":          {func(c map[string]any) { c["architectures"] = []string{"XLMRobertaForSequenceClassification"} }, true, convert.ErrUnsupported},
		"rank":                {func(c map[string]any) { c["lora_rank"] = 8 }, true, convert.ErrMismatch},
		"tasks": {func(c map[string]any) {
			c["lora_adaptations"] = []string{"a", "b", "c"}
			delete(c, "task_instructions")
		}, true, convert.ErrMismatch},
		"instruction missing": {func(c map[string]any) { c["task_instructions"] = map[string]string{"retrieval.query": ""} }, true, convert.ErrMismatch},
		"task name":           {func(c map[string]any) { c["lora_adaptations"] = []string{"../x", "y"}; delete(c, "task_instructions") }, true, convert.ErrMismatch},
		"alpha 0":             {func(c map[string]any) { c["lora_alpha"] = 0 }, true, convert.ErrMismatch},
		"tasks without LoRAs": {nil, false, convert.ErrMismatch},
	} {
		t.Run(name, func(t *testing.T) {
			dir := jinaV3Fixture(t, c.lora, c.edit)
			err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{Type: "f32"})
			if !errors.Is(err, c.want) {
				t.Errorf("error %v, want %v", err, c.want)
			} else {
				t.Log(err)
			}
		})
	}
}

// TestJinaV3NoTasks: a rotary XLM-RoBERTa without task LoRAs converts
// alone (the adapters of what was converted to the same path before are
// removed), and embeds as the reference without them.
func TestJinaV3NoTasks(t *testing.T) {
	dir := jinaV3Fixture(t, false, func(c map[string]any) {
		for _, k := range []string{"lora_adaptations", "task_instructions", "lora_rank", "lora_alpha"} {
			delete(c, k)
		}
	})
	// Over an earlier conversion with task adapters, which go.
	out := filepath.Join(t.TempDir(), "m.gguf")
	if err := convert.Convert(context.Background(), jinaV3Fixture(t, true, nil), out, convert.Options{Type: "f32"}); err != nil {
		t.Fatal(err)
	}
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32"}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
		t.Errorf("%d files beside, want the model alone", len(entries))
	}
	r := openST(t, dir)
	m := loadModel(t, out, engine.ModelOptions{})
	checkEncoder(t, m, []string{"the cat sat on the mat."}, jv3Ref{r: r, task: -1, plain: true}.pooled)
}

// TestTaskAdaptersNone: a model with no adapters beside it has no tasks,
// and files that are not task adapters (or cannot be read) are passed
// over.
func TestTaskAdaptersNone(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	for _, n := range []string{"m.gguf", "lora-x-other.gguf", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tasks, err := convert.TaskAdapters(model)
	if err != nil || len(tasks) != 0 {
		t.Errorf("tasks %+v, error %v; want none", tasks, err)
	}
	if tasks, err := convert.TaskAdapters(filepath.Join(dir, "missing", "m.gguf")); err != nil || len(tasks) != 0 {
		t.Errorf("missing dir: tasks %+v, error %v", tasks, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lora-y-m.gguf"), []byte("not a gguf"), 0o644); err != nil {
		t.Fatal(err)
	}
	if tasks, err := convert.TaskAdapters(model); err != nil || len(tasks) != 0 {
		t.Errorf("a broken lora-y-m.gguf: tasks %+v, error %v; want it passed over", tasks, err)
	}
}

// TestRemoveConvertedTaskAdapters: removing a Hub repo's conversions
// removes the task adapters written beside them, and nothing of another
// commit or repo.
func TestRemoveConvertedTaskAdapters(t *testing.T) {
	dir := t.TempDir()
	gone := []string{"org-repo-abc-f16.gguf", "lora-retrieval.query-org-repo-abc-f16.gguf", "lora-text-matching-org-repo-abc-f16.gguf"}
	kept := []string{"org-repo-def-f16.gguf", "lora-text-matching-org-repo-def-f16.gguf", "org-other-abc-f16.gguf", "lora-x-org-other-abc-f16.gguf"}
	for _, n := range append(slices.Clone(gone), kept...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, _, err := convert.RemoveConverted(dir, "org/repo", []string{"abc"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(gone) {
		t.Errorf("removed %v, want %v", files, gone)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	slices.Sort(kept)
	if !slices.Equal(left, kept) {
		t.Errorf("left %v, want %v", left, kept)
	}
}

// TestJinaV3Defaults: XLMRobertaFlashConfig's defaults stand in for the
// keys a config leaves out (rope base 10000, one token type, LayerNorm
// epsilon 1e-5), not BertConfig's.
func TestJinaV3Defaults(t *testing.T) {
	dir := jinaV3Fixture(t, true, func(c map[string]any) {
		for _, k := range []string{"rotary_emb_base", "type_vocab_size", "layer_norm_eps"} {
			delete(c, k)
		}
	})
	_, f := convertDir(t, dir, "f32")
	for k, want := range map[string]float64{"jina-bert-v3.rope.freq_base": 10000, "jina-bert-v3.attention.layer_norm_epsilon": 1e-5} {
		if got, ok := f.Float(k); !ok || math.Abs(got-want) > want*1e-6 {
			t.Errorf("%s = %v (%v), want %v", k, got, ok, want)
		}
	}
	if n, ok := f.Uint("tokenizer.ggml.token_type_count"); !ok || n != 1 {
		t.Errorf("token_type_count %d (%v), want 1", n, ok)
	}
}

// TestJinaV3Cached: the conversion cache (what llm.New and the Hub pull
// use) keeps a model's task adapters beside it, named for the cached file,
// and finds them again without converting twice.
func TestJinaV3Cached(t *testing.T) {
	dir, cache := jinaV3Fixture(t, true, nil), t.TempDir()
	path, err := convert.Cached(context.Background(), dir, cache, "org/jina-v3@abc", "f16")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := convert.TaskAdapters(path)
	if err != nil || len(tasks) != len(jv3Tasks) {
		t.Fatalf("task adapters %+v (%v), want %v", tasks, err, jv3Tasks)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := convert.Cached(context.Background(), dir, cache, "org/jina-v3@abc", "f16")
	if err != nil || again != path {
		t.Fatalf("second Cached: %q (%v), want %q", again, err, path)
	}
	if st2, _ := os.Stat(again); !st2.ModTime().Equal(st.ModTime()) {
		t.Error("the second Cached converted again")
	}
	files, _, err := convert.RemoveConverted(cache, "org/jina-v3", []string{"abc"}, "")
	if err != nil || len(files) != 1+len(jv3Tasks) {
		t.Errorf("RemoveConverted removed %v (%v), want the model and its %d adapters", files, err, len(jv3Tasks))
	}
}
