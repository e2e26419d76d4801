package convert_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/safetensors"
)

// stTensor is one tensor for writeSafetensors: data writes exactly the
// tensor's bytes.
type stTensor struct {
	name  string
	dtype string
	shape []int64
	data  func(io.Writer) error
}

func (t stTensor) size() int64 {
	n := int64(2)
	switch t.dtype {
	case "F32":
		n = 4
	case "U8", "F8_E4M3":
		n = 1
	}
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// writeSafetensors writes a safetensors file in the standard layout: an
// 8-byte little-endian header length, the JSON header (padded with spaces
// to 8 bytes), then the tensors' data in header order.
func writeSafetensors(path string, tensors []stTensor) error {
	var hdr strings.Builder
	hdr.WriteString(`{"__metadata__":{"format":"pt"}`)
	var off int64
	for _, t := range tensors {
		name, _ := json.Marshal(t.name)
		shape, _ := json.Marshal(t.shape)
		fmt.Fprintf(&hdr, `,%s:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, name, t.dtype, shape, off, off+t.size())
		off += t.size()
	}
	hdr.WriteString("}")
	h := hdr.String()
	for len(h)%8 != 0 {
		h += " "
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(h)))
	bw.Write(n[:])
	bw.WriteString(h)
	for _, t := range tensors {
		cw := &countingWriter{w: bw}
		if err := t.data(cw); err != nil {
			f.Close()
			return err
		}
		if cw.n != t.size() {
			f.Close()
			return fmt.Errorf("tensor %s: wrote %d bytes, want %d", t.name, cw.n, t.size())
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// copyHFFiles copies the non-weight files of a fixture into dst, with
// config.json edited by edit.
func copyHFFiles(t testing.TB, fixture, dst string, edit func(map[string]any)) {
	t.Helper()
	src := shareddata.Path(t, "models", "hf", fixture)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".safetensors") || strings.HasSuffix(e.Name(), ".index.json") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "config.json" {
			var cfg map[string]any
			if err := json.Unmarshal(raw, &cfg); err != nil {
				t.Fatal(err)
			}
			edit(cfg)
			if raw, err = json.MarshalIndent(cfg, "", "  "); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Shape of the synthetic ~1 GB Llama: 16 layers of hidden 1536, 24 heads
// of 64 (4 KV heads), FFN 4096, vocab 32000, untied: 488M BF16 params.
const (
	benchHidden = 1536
	benchFFN    = 4096
	benchLayers = 16
	benchHeads  = 24
	benchKV     = 4
	benchVocab  = 32000
)

// writeBenchModel writes the synthetic checkpoint into dir and returns the
// safetensors file's path.
func writeBenchModel(b testing.TB, dir string) string { return writeBenchModelAs(b, dir, false) }

// writeBenchModelAs writes the synthetic checkpoint, with fp8 its
// projections as FP8 in blocks of 128 × 128 with F32 scales (DeepSeek's
// and Qwen3-FP8's layout).
func writeBenchModelAs(b testing.TB, dir string, fp8 bool) string {
	b.Helper()
	copyHFFiles(b, "tiny-llama-st", dir, func(c map[string]any) {
		if fp8 {
			c["quantization_config"] = map[string]any{"quant_method": "fp8", "weight_block_size": []int{128, 128}}
		}
		c["hidden_size"] = benchHidden
		c["intermediate_size"] = benchFFN
		c["num_hidden_layers"] = benchLayers
		c["num_attention_heads"] = benchHeads
		c["num_key_value_heads"] = benchKV
		c["head_dim"] = benchHidden / benchHeads
		c["torch_dtype"] = "bfloat16"
	})
	// A 4 MiB pattern of small BF16 values, repeated.
	pattern := make([]byte, 4<<20)
	var x uint32 = 12345
	for i := 0; i < len(pattern); i += 2 {
		x = x*1664525 + 1013904223
		v := (float32(x>>8)/float32(1<<24) - 0.5) * 0.04
		binary.LittleEndian.PutUint16(pattern[i:], safetensors.Float32ToBF16(v))
	}
	fill := func(w io.Writer, n int64) error {
		for n > 0 {
			k := min(n, int64(len(pattern)))
			if _, err := w.Write(pattern[:k]); err != nil {
				return err
			}
			n -= k
		}
		return nil
	}
	H, I, V, kv := int64(benchHidden), int64(benchFFN), int64(benchVocab), int64(benchKV*benchHidden/benchHeads)
	var ts []stTensor
	add := func(name string, shape ...int64) {
		t := stTensor{name: name, dtype: "BF16", shape: shape}
		if fp8 && strings.HasSuffix(name, "_proj.weight") {
			t.dtype = "F8_E4M3"
			sr, sc := (shape[0]+127)/128, (shape[1]+127)/128
			scales := make([]float32, sr*sc)
			for i := range scales {
				scales[i] = 0.0001 * float32(1+i%7)
			}
			ts = append(ts, f32Tensor(name+"_scale_inv", []int64{sr, sc}, scales))
		}
		t.data = func(w io.Writer) error { return fill(w, t.size()) }
		ts = append(ts, t)
	}
	add("lm_head.weight", V, H)
	add("model.embed_tokens.weight", V, H)
	for l := range benchLayers {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", H)
		add(p+"mlp.down_proj.weight", H, I)
		add(p+"mlp.gate_proj.weight", I, H)
		add(p+"mlp.up_proj.weight", I, H)
		add(p+"post_attention_layernorm.weight", H)
		add(p+"self_attn.k_proj.weight", kv, H)
		add(p+"self_attn.o_proj.weight", H, H)
		add(p+"self_attn.q_proj.weight", H, H)
		add(p+"self_attn.v_proj.weight", kv, H)
	}
	add("model.norm.weight", H)
	slices.SortStableFunc(ts, func(a, b stTensor) int { return strings.Compare(a.name, b.name) })
	path := filepath.Join(dir, "model.safetensors")
	if err := writeSafetensors(path, ts); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkConvertFP8 converts the synthetic ~1 GB checkpoint to F16 from
// BF16 and from FP8 (block scales), alternating, each in a child process,
// and reports the FP8 conversion's time over the BF16 one's (same output).
func BenchmarkConvertFP8(b *testing.B) {
	var dirs [2]string
	for i, fp8 := range []bool{false, true} {
		dirs[i] = b.TempDir()
		writeBenchModelAs(b, dirs[i], fp8)
		if err := exec.Command("sh", "-c", "cat "+dirs[i]+"/*.safetensors > /dev/null").Run(); err != nil {
			b.Fatal(err)
		}
	}
	out := filepath.Join(b.TempDir(), "model.gguf")
	var times [2]time.Duration
	b.ResetTimer()
	for range b.N {
		var its [2]time.Duration
		for i, dir := range dirs {
			syscall.Sync()
			cmd := exec.Command(os.Args[0], "-test.run=^TestConvertChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "LLM_CONVERT_CHILD_DIR="+dir, "LLM_CONVERT_CHILD_OUT="+out)
			t0 := time.Now()
			if o, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("child: %v\n%s", err, o)
			}
			its[i] = time.Since(t0)
			times[i] += its[i]
			os.Remove(out)
		}
		b.Logf("BF16 %.2f s, FP8 %.2f s", its[0].Seconds(), its[1].Seconds())
	}
	b.StopTimer()
	params := float64(benchVocab*benchHidden*2+benchLayers*(3*benchHidden*benchFFN+2*benchHidden*benchHidden+2*benchHidden*benchKV*benchHidden/benchHeads)) / 1e6
	b.ReportMetric(params*float64(b.N)/times[0].Seconds(), "bf16-Mparams/s")
	b.ReportMetric(params*float64(b.N)/times[1].Seconds(), "fp8-Mparams/s")
	b.ReportMetric(times[1].Seconds()/times[0].Seconds(), "fp8/bf16-time")
}

// TestConvertChild converts LLM_CONVERT_CHILD_DIR to LLM_CONVERT_CHILD_OUT
// as F16. It is the child process of BenchmarkConvert and does nothing
// otherwise.
func TestConvertChild(t *testing.T) {
	dir, out := os.Getenv("LLM_CONVERT_CHILD_DIR"), os.Getenv("LLM_CONVERT_CHILD_OUT")
	if dir == "" || out == "" {
		t.Skip("run by BenchmarkConvert")
	}
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f16"}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkConvert writes a synthetic ~1 GB BF16 Llama-shaped checkpoint
// and alternates converting it to F16 in a child process (the test binary
// re-executed, so its peak RSS can be read) with copying the safetensors
// file with cp and fsyncing the copy (the conversion fsyncs its output),
// with a sync(2) outside the timings before each.
// It reports MB of input per second for both, their ratio and the
// child's peak RSS.
func BenchmarkConvert(b *testing.B) {
	dir := b.TempDir()
	src := writeBenchModel(b, dir)
	st, err := os.Stat(src)
	if err != nil {
		b.Fatal(err)
	}
	mb := float64(st.Size()) / 1e6
	outDir := b.TempDir()
	out, cpOut := filepath.Join(outDir, "model.gguf"), filepath.Join(outDir, "copy.safetensors")
	// Warm the page cache for both; each measurement starts with no dirty
	// pages left to write back.
	if err := exec.Command("cat", src).Run(); err != nil {
		b.Fatal(err)
	}
	syscall.Sync()
	var convTime, cpTime time.Duration
	var peakKB int64
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(os.Args[0], "-test.run=^TestConvertChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "LLM_CONVERT_CHILD_DIR="+dir, "LLM_CONVERT_CHILD_OUT="+out)
		cmd.Stderr = os.Stderr
		t0 := time.Now()
		if o, err := cmd.Output(); err != nil {
			b.Fatalf("child: %v\n%s", err, o)
		}
		d := time.Since(t0)
		convTime += d
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		peakKB = max(peakKB, ru.Maxrss)
		os.Remove(out)
		syscall.Sync()

		t0 = time.Now()
		if o, err := exec.Command("cp", src, cpOut).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v\n%s", err, o)
		}
		if f, err := os.Open(cpOut); err == nil {
			f.Sync()
			f.Close()
		}
		c := time.Since(t0)
		cpTime += c
		os.Remove(cpOut)
		syscall.Sync()
		b.Logf("convert %.0f MB/s (peak RSS %d MB), cp %.0f MB/s", mb/d.Seconds(), ru.Maxrss/1024, mb/c.Seconds())
	}
	b.StopTimer()
	conv := mb * float64(b.N) / convTime.Seconds()
	cp := mb * float64(b.N) / cpTime.Seconds()
	b.ReportMetric(conv, "convert-MB/s")
	b.ReportMetric(cp, "cp-MB/s")
	b.ReportMetric(conv/cp, "ratio")
	b.ReportMetric(float64(peakKB)/1024, "peak-RSS-MB")
	b.ReportMetric(mb, "model-MB")
}
