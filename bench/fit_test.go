package bench

import (
	"context"
	"errors"
	"github.com/llm-go/llm/loader/gguf"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/testmodel"
	"github.com/llm-go/llm/synth"
)

const gb = 1 << 30

func TestSynthetic70BDoesNotFit(t *testing.T) {
	f, err := FactsFromShape(synth.Shapes["llama-3-70b"], "Q4_K_M")
	if err != nil {
		t.Fatal(err)
	}
	fp := Estimate(f, 640, 512, "f16", "f16", 99, false)
	err = CheckFit("llama-3-70b Q4_K_M", fp, Resources{RAM: 22 * gb})
	if !errors.Is(err, ErrDoesNotFit) {
		t.Fatalf("err = %v, want ErrDoesNotFit", err)
	}
	for _, want := range []string{"llama-3-70b Q4_K_M does not fit", "GiB of RAM", "22.00 GiB is available", "-q"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	// About 42 GB of weights, 200 MB of f16 KV cache for 640 positions.
	if w := float64(fp.Weights) / 1e9; w < 40 || w > 45 {
		t.Errorf("weights %.1f GB", w)
	}
	if kv := fp.KV; kv != 80*640*8*128*2*2 {
		t.Errorf("KV cache %d bytes", kv)
	}
	// It fits a machine with 64 GiB.
	if err := CheckFit("llama-3-70b Q4_K_M", fp, Resources{RAM: 64 * gb}); err != nil {
		t.Errorf("64 GiB: %v", err)
	}
}

func TestEstimateWithGPU(t *testing.T) {
	f, err := FactsFromShape(synth.Shapes["llama-3-8b"], "Q4_K_M")
	if err != nil {
		t.Fatal(err)
	}
	all := Estimate(f, 640, 512, "f16", "f16", 99, true)
	none := Estimate(f, 640, 512, "f16", "f16", 0, true)
	half := Estimate(f, 640, 512, "f16", "f16", 16, true)
	if all.GPUWeights == 0 || all.Weights-f.EmbdBytes > 1<<20 || none.GPU() != 0 { // estimates round
		t.Errorf("ngl 99: %d on GPU, %d in RAM (embeddings %d); ngl 0: %d on GPU", all.GPUWeights, all.Weights, f.EmbdBytes, none.GPU())
	}
	if half.GPUWeights <= 0 || half.GPUWeights >= all.GPUWeights || half.GPUKV*2 != all.GPUKV {
		t.Errorf("ngl 16: %d of %d bytes on GPU, KV %d of %d", half.GPUWeights, all.GPUWeights, half.GPUKV, all.GPUKV)
	}
	if all.Weights+all.GPUWeights != f.WeightBytes || none.Weights != f.WeightBytes {
		t.Errorf("weights split %d + %d, total %d", all.Weights, all.GPUWeights, f.WeightBytes)
	}
	// An H100 holds it; a 4 GiB GPU does not, and the message says so.
	if err := CheckFit("llama-3-8b", all, Resources{RAM: 8 * gb, GPUFree: 79 * gb, GPUCount: 1}); err != nil {
		t.Error(err)
	}
	err = CheckFit("llama-3-8b", all, Resources{RAM: 8 * gb, GPUFree: 4 * gb, GPUCount: 1})
	if !errors.Is(err, ErrDoesNotFit) || !strings.Contains(err.Error(), "GPU memory") || !strings.Contains(err.Error(), "fewer layers") {
		t.Errorf("4 GiB GPU: %v", err)
	}
	// Without a GPU, ngl is ignored.
	if cpu := Estimate(f, 640, 512, "f16", "f16", 99, false); cpu.GPU() != 0 {
		t.Errorf("no GPU but %d bytes on it", cpu.GPU())
	}
}

func TestCheckDisk(t *testing.T) {
	if err := CheckDisk("m", "/c", 10*gb, 100*gb); err != nil {
		t.Error(err)
	}
	err := CheckDisk("llama-3-70b Q4_K_M", "/c", 180*gb, 70*gb)
	if !errors.Is(err, ErrDoesNotFit) || !strings.Contains(err.Error(), "on disk") {
		t.Errorf("err = %v", err)
	}
}

func TestFactsFromShapeMatchesFile(t *testing.T) {
	file, err := FactsFromFile(tinyModel(t))
	if err != nil {
		t.Fatal(err)
	}
	if file.Layers != 5 || file.Vocab != 512 || file.BytesPerToken() == 0 || file.BytesPerToken() >= file.WeightBytes {
		t.Errorf("stories260K facts %+v, %d bytes per token", file, file.BytesPerToken())
	}
	// Per token: everything but the embedding matrix, plus one of its rows.
	var layers uint64
	for _, b := range file.LayerBytes {
		layers += b
	}
	if file.BytesPerToken() != layers+file.OutputBytes+file.EmbdRow && !file.TiedOutput {
		t.Errorf("bytes per token %d", file.BytesPerToken())
	}
	// Estimated and real facts of a synthetic model agree.
	s := synth.Shapes["tinyllama-1.1b"]
	est, err := FactsFromShape(s, "Q4_0")
	if err != nil {
		t.Fatal(err)
	}
	if est.WeightBytes != 635990016 || est.Layers != 22 || est.KVHeads != 4 || est.HeadDim != 64 {
		t.Errorf("estimate %+v", est)
	}
	if kv := est.KVBytes(1024, "f16", "q8_0"); kv != uint64(22*1024*256*(2+34.0/32)) {
		t.Errorf("KV bytes %d", kv)
	}
}

// shapeFacts writes the synthetic shape spec in F16 and returns it, the
// file's path, and its facts from the file and from the shape.
func shapeFacts(t *testing.T, spec string) (synth.Shape, string, Facts, Facts) {
	t.Helper()
	shapes, err := ParseSynthetic(spec)
	if err != nil {
		t.Fatal(err)
	}
	s := shapes[0]
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := synth.Write(context.Background(), path, s, synth.Options{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	file, err := FactsFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	est, err := FactsFromShape(s, "F16")
	if err != nil {
		t.Fatal(err)
	}
	return s, path, file, est
}

// TestFactsMixtureOfExperts: a synthetic mixture of experts (4 experts, 2
// used, a head size that is not embd/heads) runs in llama.cpp; its facts
// from the file and from the shape agree, and a token reads only the
// experts it uses.
func TestFactsMixtureOfExperts(t *testing.T) {
	s, path, file, est := shapeFacts(t, "vocab=512,embd=64,ff=96,layers=2,heads=4,kv_heads=2,head_dim=32,experts=4,experts_used=2")
	if s.Name != "custom-v512-e64-f96-l2-h4-kv2-hd32-x2of4" {
		t.Errorf("name %q", s.Name)
	}
	// Experts: 3 matrices of 64×96 per expert, 4 experts, 2 layers, F16.
	const experts = 3 * 64 * 96 * 4 * 2 * 2
	near := func(a, b uint64) bool { return math.Abs(float64(a)-float64(b)) <= 0.01*float64(b) }
	// The estimate spreads the bytes evenly over the weights (norms are
	// F32, matrices F16): within 1%.
	if file.Experts != 4 || file.ExpertsUsed != 2 || file.HeadDim != 32 || file.ExpertBytes != experts ||
		file.WeightBytes != est.WeightBytes || !near(est.ExpertBytes, file.ExpertBytes) || !near(est.BytesPerToken(), file.BytesPerToken()) {
		t.Errorf("file %+v\nestimate %+v", file, est)
	}
	var all uint64
	for _, b := range file.LayerBytes {
		all += b
	}
	if got, want := file.BytesPerToken(), all-experts/2+file.OutputBytes+file.EmbdRow; got != want {
		t.Errorf("bytes per token %d, want %d (half the experts)", got, want)
	}
	m, err := engine.LoadModel(context.Background(), path, engine.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 64, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := engine.NewBatch(8, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := range 8 {
		b.Add(engine.Token(10+i), engine.Pos(i), i == 7)
	}
	if err := c.Decode(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	logits, err := c.Logits(7)
	if err != nil || len(logits) != 512 {
		t.Fatalf("logits: %d, %v", len(logits), err)
	}
	for _, v := range logits {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatal("non-finite logits")
		}
	}
}

// TestFactsSharedMoE: for GLM-4.5, DeepSeek and Llama 4 shapes (dense
// layers, shared experts; DeepSeek's latent KV cache) the facts from the
// shape agree with those from the file: layer and expert bytes within 1%
// (norms are F32), the same KV cache size.
func TestFactsSharedMoE(t *testing.T) {
	for _, spec := range []string{
		"arch=glm4moe,vocab=512,embd=64,ff=32,layers=3,heads=4,kv_heads=2,head_dim=32,experts=8,experts_used=2,dense_layers=1,dense_ff=128,shared_experts=1,rope_dim=16",
		"arch=deepseek2,vocab=512,embd=64,ff=32,layers=3,heads=4,experts=8,experts_used=2,dense_layers=1,dense_ff=128,shared_experts=2,q_lora=32,kv_lora=64,qk_nope=32,qk_rope=16,v_head=16",
		"arch=llama4,vocab=512,embd=64,ff=32,layers=4,heads=4,kv_heads=2,head_dim=32,experts=4,experts_used=1,moe_step=2,dense_ff=96",
	} {
		s, _, file, est := shapeFacts(t, spec)
		near := func(a, b uint64) bool { return math.Abs(float64(a)-float64(b)) <= 0.01*float64(b) }
		if file.WeightBytes != est.WeightBytes || !near(est.ExpertBytes, file.ExpertBytes) || !near(est.BytesPerToken(), file.BytesPerToken()) ||
			!near(est.LayerBytes[0], file.LayerBytes[0]) || !near(est.LayerBytes[2], file.LayerBytes[2]) {
			t.Errorf("%s:\nfile %+v\nestimate %+v", s.Name, file, est)
		}
		if a, b := file.KVBytes(256, "f16", "f16"), est.KVBytes(256, "f16", "f16"); a != b {
			t.Errorf("%s: KV bytes from the file %d, from the shape %d", s.Name, a, b)
		}
		if s.Arch == "deepseek2" && file.KVBytes(256, "f16", "f16") != 3*256*(80+64)*2 {
			t.Errorf("deepseek2 KV bytes %d, want one head of 64+16 keys and 64 values", file.KVBytes(256, "f16", "f16"))
		}
	}
}

// TestParseSyntheticArchKeys: the keys of one architecture are refused for
// another.
func TestParseSyntheticArchKeys(t *testing.T) {
	for _, spec := range []string{
		"vocab=512,embd=64,ff=96,layers=2,heads=4,dense_layers=1",
		"arch=glm4moe,vocab=512,embd=64,ff=32,layers=3,heads=4,experts=8,experts_used=2,shared_experts=1,q_lora=32",
		"arch=deepseek2,vocab=512,embd=64,ff=32,layers=3,heads=4,experts=8,experts_used=2,shared_experts=1,rope_dim=16",
		"arch=glm4moe,vocab=512,embd=64,ff=32,layers=3,heads=4,experts=8,experts_used=2,shared_experts=1,moe_step=2",
	} {
		if _, err := ParseSynthetic(spec); err == nil || !strings.Contains(err.Error(), "applies to") {
			t.Errorf("%s: %v", spec, err)
		}
	}
}

// TestFactsHybrid: a hybrid model's KV cache is in its attention layers
// only (head_count_kv per layer, 0 elsewhere), and each recurrent layer
// keeps its Mamba-2 state instead; stories260K made hybrid (attention in
// blocks 0 and 4).
func TestFactsHybrid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hybrid.gguf")
	err := gguf.Rewrite(path, tinyModel(t), func(w *gguf.Writer) {
		w.Set("llama.attention.head_count_kv", gguf.Uint32s([]uint32{4, 0, 0, 0, 4}))
		w.Set("llama.ssm.conv_kernel", gguf.Uint32(4))
		w.Set("llama.ssm.inner_size", gguf.Uint32(128))
		w.Set("llama.ssm.state_size", gguf.Uint32(16))
		w.Set("llama.ssm.group_count", gguf.Uint32(1))
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := FactsFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	state := uint64(4 * (3*(128+2*16) + 16*128))
	if !slices.Equal(f.LayerKVHeads, []int{4, 0, 0, 0, 4}) || f.KVHeads != 4 || f.RecurrentBytes != state {
		t.Errorf("facts: KV heads %v (%d), state %d", f.LayerKVHeads, f.KVHeads, f.RecurrentBytes)
	}
	if kv, want := f.KVBytes(1024, "f16", "f16"), uint64(2*1024*4*(8*2+8*2))+3*state; kv != want {
		t.Errorf("KV bytes %d, want %d", kv, want)
	}

	// Nemotron-H's layout: a layer with an MLP of its own (per-layer
	// feed_forward_length) and no KV heads is not recurrent.
	nh := filepath.Join(t.TempDir(), "nemotron.gguf")
	if err := gguf.Rewrite(nh, path, func(w *gguf.Writer) {
		w.Set("llama.feed_forward_length", gguf.Uint32s([]uint32{0, 0, 128, 0, 0}))
	}); err != nil {
		t.Fatal(err)
	}
	if g, err := FactsFromFile(nh); err != nil {
		t.Fatal(err)
	} else if kv, want := g.KVBytes(1024, "f16", "f16"), uint64(2*1024*4*(8*2+8*2))+2*state; kv != want || !slices.Equal(g.LayerRecurrent, []bool{false, true, false, true, false}) {
		t.Errorf("an MLP layer: KV bytes %d, want %d; recurrent %v", kv, want, g.LayerRecurrent)
	}

	// LFM2's layout: the convolution layers keep their last l_cache-1
	// inputs.
	lf := filepath.Join(t.TempDir(), "lfm2.gguf")
	if err := gguf.Rewrite(lf, tinyModel(t), func(w *gguf.Writer) {
		w.Set("llama.attention.head_count_kv", gguf.Uint32s([]uint32{4, 0, 0, 0, 4}))
		w.Set("llama.shortconv.l_cache", gguf.Uint32(3))
	}); err != nil {
		t.Fatal(err)
	}
	if g, err := FactsFromFile(lf); err != nil {
		t.Fatal(err)
	} else if conv := uint64(4 * 2 * g.Embd); g.RecurrentBytes != conv || g.KVBytes(1024, "f16", "f16") != uint64(2*1024*4*(8*2+8*2))+3*conv {
		t.Errorf("LFM2: state %d, want %d; KV bytes %d", g.RecurrentBytes, conv, g.KVBytes(1024, "f16", "f16"))
	}

	// Qwen3-Next's layout: one head_count_kv, but llama.cpp makes all
	// layers but every fourth recurrent (stories260K has 5: layer 3
	// attends).
	q3n := testmodel.AsArch(t, tinyModel(t), "qwen3next", func(set func(string, gguf.Value)) {
		for k, v := range map[string]uint32{"ssm.conv_kernel": 4, "ssm.inner_size": 64, "ssm.state_size": 16, "ssm.time_step_rank": 4, "ssm.group_count": 2} {
			set(k, gguf.Uint32(v))
		}
	})
	if g, err := FactsFromFile(q3n); err != nil {
		t.Fatal(err)
	} else if st := uint64(4 * (3*(64+2*2*16) + 16*64)); g.RecurrentBytes != st || !slices.Equal(g.LayerRecurrent, []bool{true, true, true, false, true}) ||
		g.KVBytes(1024, "f16", "f16") != uint64(2*1024*4*(8*2))+4*st {
		t.Errorf("Qwen3-Next: state %d, recurrent %v, KV bytes %d", g.RecurrentBytes, g.LayerRecurrent, g.KVBytes(1024, "f16", "f16"))
	}

	// Falcon-H1's layout: every layer keeps a KV cache and a Mamba-2 state.
	fh := testmodel.AsArch(t, tinyModel(t), "falcon-h1", func(set func(string, gguf.Value)) {
		for k, v := range map[string]uint32{"ssm.conv_kernel": 4, "ssm.inner_size": 128, "ssm.state_size": 16, "ssm.time_step_rank": 8, "ssm.group_count": 1} {
			set(k, gguf.Uint32(v))
		}
	})
	if g, err := FactsFromFile(fh); err != nil {
		t.Fatal(err)
	} else if perLayer := uint64(2*1024*4*(8*2+8*2)) / 2; g.KVBytes(1024, "f16", "f16") != 5*perLayer+5*state {
		t.Errorf("Falcon-H1: KV bytes %d, want %d: a KV cache and a state in each of 5 layers", g.KVBytes(1024, "f16", "f16"), 5*perLayer+5*state)
	}

	// Granite 4.0-H Tiny's shape: KV in 4 of its 40 layers, the others'
	// Mamba-2 state, as the file says.
	s := synth.Shapes["granite-4.0-h-tiny"]
	est, err := FactsFromShape(s, "Q4_K_M")
	if err != nil {
		t.Fatal(err)
	}
	kvLayers := 0
	for _, n := range est.LayerKVHeads {
		if n > 0 {
			kvLayers++
		}
	}
	if kvLayers != 4 || len(est.LayerKVHeads) != 40 || est.RecurrentBytes != s.RecurrentBytes() {
		t.Errorf("granite-4.0-h-tiny: KV heads %v, state %d", est.LayerKVHeads, est.RecurrentBytes)
	}
	if kv, want := est.KVBytes(4096, "f16", "f16"), uint64(4*4096*4*(128*2+128*2))+36*s.RecurrentBytes(); kv != want {
		t.Errorf("granite-4.0-h-tiny: KV bytes %d, want %d", kv, want)
	}

	// Falcon-H1 7B's shape: a KV cache and a Mamba-2 state in each of its
	// 44 layers.
	fs := synth.Shapes["falcon-h1-7b"]
	ff, err := FactsFromShape(fs, "Q4_K_M")
	if err != nil {
		t.Fatal(err)
	}
	fstate := uint64(4 * (3*(3072+2*256) + 256*3072))
	if kv, want := ff.KVBytes(4096, "f16", "f16"), uint64(44*4096*2*(128*2+128*2))+44*fstate; ff.RecurrentBytes != fstate || kv != want ||
		slices.Contains(ff.LayerRecurrent, false) || len(ff.LayerRecurrent) != 44 {
		t.Errorf("falcon-h1-7b: KV bytes %d, want %d; state %d, want %d; recurrent %v", kv, want, ff.RecurrentBytes, fstate, ff.LayerRecurrent)
	}

	// Nemotron Nano 2's shape: KV in its 4 attention layers, state in its
	// 27 Mamba-2 layers only, nothing in its 25 MLP layers.
	n := synth.Shapes["nemotron-nano-9b-v2"]
	nf, err := FactsFromShape(n, "Q4_K_M")
	if err != nil {
		t.Fatal(err)
	}
	var attn, recurrent []int
	for i := range nf.LayerKVHeads {
		if nf.LayerKVHeads[i] > 0 {
			attn = append(attn, i)
		}
		if nf.LayerRecurrent[i] {
			recurrent = append(recurrent, i)
		}
	}
	if !slices.Equal(attn, []int{14, 21, 30, 39}) || len(recurrent) != 27 || len(nf.LayerKVHeads) != 56 || len(nf.LayerRecurrent) != 56 {
		t.Errorf("nemotron-nano-9b-v2: attention layers %v, %d recurrent layers", attn, len(recurrent))
	}
	for _, i := range recurrent {
		if n.Pattern[i] != 'M' {
			t.Errorf("nemotron-nano-9b-v2: layer %d (%c) counted recurrent", i, n.Pattern[i])
		}
	}
	state = uint64(4 * (3*(10240+2*8*128) + 128*10240))
	if kv, want := nf.KVBytes(4096, "f16", "f16"), uint64(4*4096*8*(128*2+128*2))+27*state; nf.RecurrentBytes != state || kv != want {
		t.Errorf("nemotron-nano-9b-v2: KV bytes %d, want %d; state %d, want %d", kv, want, nf.RecurrentBytes, state)
	}
}
