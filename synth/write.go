package synth

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/x448/float16"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/gguf"
)

// Options configures Write.
type Options struct {
	// F32 stores the weight matrices in F32 instead of F16. Norm weights
	// are always F32.
	F32 bool
	// Seed makes the weights reproducible: the same shape, type and seed
	// give the same file.
	Seed uint64
	// MXFP4Experts stores the experts' matrices in MXFP4 (random 4-bit
	// values sharing an exponent per 32), as gpt-oss is released: the
	// source of the MXFP4_MOE type, which keeps them.
	MXFP4Experts bool
}

// Write writes a random-weight model of shape s to path as a GGUF file in
// F32 or F16. Matrices hold values of variance 1/fan-in, as in trained
// models, so activations neither vanish nor explode; norm weights are 1.
func Write(ctx context.Context, path string, s Shape, opts Options) error {
	if err := s.Validate(); err != nil {
		return err
	}
	typ, fileType := gguf.TypeF16, uint32(1) // LLAMA_FTYPE_MOSTLY_F16
	if opts.F32 {
		typ, fileType = gguf.TypeF32, 0 // LLAMA_FTYPE_ALL_F32
	}

	w := gguf.NewWriter()
	a := s.arch()
	w.Set("general.architecture", gguf.String(a))
	w.Set("general.name", gguf.String("synthetic "+s.Name))
	w.Set("general.file_type", gguf.Uint32(fileType))
	w.Set(a+".vocab_size", gguf.Uint32(uint32(s.Vocab)))
	w.Set(a+".context_length", gguf.Uint32(uint32(s.Context)))
	w.Set(a+".embedding_length", gguf.Uint32(uint32(s.Embd)))
	w.Set(a+".block_count", gguf.Uint32(uint32(s.Layers)))
	w.Set(a+".feed_forward_length", gguf.Uint32(uint32(s.FF)))
	w.Set(a+".attention.head_count", gguf.Uint32(uint32(s.Heads)))
	w.Set(a+".attention.head_count_kv", gguf.Uint32(uint32(s.KVHeads)))
	if !s.alibi() {
		w.Set(a+".rope.dimension_count", gguf.Uint32(uint32(s.HeadDim())))
		w.Set(a+".rope.freq_base", gguf.Float32(s.RopeTheta))
	}
	w.Set(a+".attention.layer_norm_rms_epsilon", gguf.Float32(s.NormEps))
	if s.HeadDim()*s.Heads != s.Embd {
		w.Set(a+".attention.key_length", gguf.Uint32(uint32(s.HeadDim())))
		w.Set(a+".attention.value_length", gguf.Uint32(uint32(s.HeadDim())))
	}
	if s.Experts > 0 {
		w.Set(a+".expert_count", gguf.Uint32(uint32(s.Experts)))
		w.Set(a+".expert_used_count", gguf.Uint32(uint32(s.ExpertsUsed)))
	}
	if a == "gpt-oss" {
		w.Set(a+".expert_feed_forward_length", gguf.Uint32(uint32(s.FF)))
		sw := s.SlidingWindow
		if sw == 0 {
			sw = 128
		}
		w.Set(a+".attention.sliding_window", gguf.Uint32(uint32(sw)))
	}
	if s.YarnFactor > 0 {
		w.Set(a+".rope.scaling.type", gguf.String("yarn"))
		w.Set(a+".rope.scaling.factor", gguf.Float32(s.YarnFactor))
		w.Set(a+".rope.scaling.original_context_length", gguf.Uint32(uint32(s.YarnContext)))
	}
	switch {
	case s.sharedMoE():
		s.sharedMoEKeys(w)
	case s.graniteHybrid():
		s.graniteHybridKeys(w)
	case s.nemotronH():
		s.nemotronHKeys(w)
	case s.falconH1():
		s.falconH1Keys(w)
	case s.lfm2():
		s.lfm2Keys(w)
	case s.qwen3next():
		s.qwen3NextKeys(w)
	case s.minimax():
		s.miniMaxKeys(w)
	case s.llama4():
		s.llama4Keys(w)
	case s.encoder():
		s.encoderKeys(w)
	}

	tokens, scores, types := vocabulary(s.Vocab)
	w.Set("tokenizer.ggml.model", gguf.String("llama"))
	w.Set("tokenizer.ggml.pre", gguf.String("default"))
	w.Set("tokenizer.ggml.tokens", gguf.Strings(tokens))
	w.Set("tokenizer.ggml.scores", gguf.Float32s(scores))
	w.Set("tokenizer.ggml.token_type", gguf.Int32s(types))
	w.Set("tokenizer.ggml.unknown_token_id", gguf.Uint32(0))
	w.Set("tokenizer.ggml.bos_token_id", gguf.Uint32(1))
	w.Set("tokenizer.ggml.eos_token_id", gguf.Uint32(2))
	w.Set("tokenizer.ggml.add_bos_token", gguf.Bool(true))
	w.Set("tokenizer.ggml.add_eos_token", gguf.Bool(false))

	for i, t := range s.tensors() {
		tt := typ
		switch {
		case t.fanIn == 0 || t.f32:
			tt = gguf.TypeF32
		case opts.MXFP4Experts && t.expert():
			tt = gguf.TypeMXFP4
		}
		seed := opts.Seed*0x9E3779B97F4A7C15 + uint64(i)
		if err := w.AddTensor(t.name, tt, t.shape, func(out io.Writer) error {
			return writeRandom(ctx, out, tt, t, seed)
		}); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
	}
	if err := w.WriteFile(path); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// chunkElems is how many values one generator fills at a time.
const chunkElems = 1 << 20

// writeRandom streams the values of one tensor. Chunks of chunkElems values
// are generated in parallel, each from its own generator seeded by the
// tensor's seed and the chunk's index, so the file does not depend on the
// number of CPUs; they are written in order.
func writeRandom(ctx context.Context, out io.Writer, typ gguf.Type, t tensorSpec, seed uint64) error {
	n := uint64(1)
	for _, d := range t.shape {
		n *= d
	}
	size := uint64(4)
	if typ == gguf.TypeF16 {
		size = 2
	}
	// Uniform on [-a, a) has variance a²/3: a = sqrt(3/fanIn) gives 1/fanIn.
	var a float32
	if t.fanIn > 0 {
		a = float32(math.Sqrt(3 / float64(t.fanIn)))
	}
	if typ == gguf.TypeMXFP4 {
		// Chunks of whole blocks: 32 values in 17 bytes.
		return writeMXFP4(ctx, out, n, t.fanIn, seed)
	}
	if t.fill != fillDefault {
		return writeFilled(out, t.fill, n, seed)
	}
	workers := runtime.GOMAXPROCS(0)
	bufs := make([][]byte, workers)
	for i := range bufs {
		bufs[i] = make([]byte, chunkElems*size)
	}
	nChunks := (n + chunkElems - 1) / chunkElems
	for first := uint64(0); first < nChunks; first += uint64(workers) {
		if err := ctx.Err(); err != nil {
			return err
		}
		round := min(uint64(workers), nChunks-first)
		var wg sync.WaitGroup
		for w := range round {
			wg.Add(1)
			go func() {
				defer wg.Done()
				chunk := first + w
				m := min(chunkElems, n-chunk*chunkElems)
				fillChunk(bufs[w][:m*size], typ, a, t.fanIn > 0 || t.zero, t.zero, seed, chunk)
			}()
		}
		wg.Wait()
		for w := range round {
			chunk := first + w
			m := min(chunkElems, n-chunk*chunkElems)
			if _, err := out.Write(bufs[w][:m*size]); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeMXFP4 streams n random MXFP4 values (n a multiple of 32): random
// 4-bit codes, and per block the exponent that gives the values a
// variance near 1/fanIn (the codes' values have a standard deviation of
// about 2.9).
func writeMXFP4(ctx context.Context, out io.Writer, n uint64, fanIn int, seed uint64) error {
	exp := byte(127 + int(math.Round(math.Log2(1/math.Sqrt(float64(fanIn))/2.93))))
	const blocksPerChunk = chunkElems / 32
	buf := make([]byte, blocksPerChunk*17)
	blocks := n / 32
	for chunk := uint64(0); chunk*blocksPerChunk < blocks; chunk++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		rng := rand.New(rand.NewPCG(seed, chunk^0x5851F42D4C957F2D))
		m := min(blocksPerChunk, blocks-chunk*blocksPerChunk)
		b := buf[:m*17]
		for i := range m {
			b[i*17] = exp
			for j := 1; j < 17; j += 8 {
				binary.LittleEndian.PutUint64(b[i*17+uint64(j):], rng.Uint64())
			}
		}
		if _, err := out.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// writeFilled writes n F32 values drawn as f says (small tensors: one
// generator).
func writeFilled(out io.Writer, f fill, n, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x5851F42D4C957F2D))
	buf := make([]byte, 4*n)
	for i := range n {
		var v float64
		switch f {
		case fillSSMA:
			v = -math.Exp(rng.Float64() * math.Log(16))
		case fillDtBias:
			dt := math.Exp(math.Log(0.01) + rng.Float64()*(math.Log(0.1)-math.Log(0.01)))
			v = dt + math.Log(-math.Expm1(-dt)) // softplus⁻¹(dt) = log(exp(dt) - 1)
		default:
			return fmt.Errorf("synth: unknown fill %d", f)
		}
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(float32(v)))
	}
	_, err := out.Write(buf)
	return err
}

// fillChunk fills buf with the values of one chunk: uniform on [-a, a), or
// ones for norm weights, or zeros (biases).
func fillChunk(buf []byte, typ gguf.Type, a float32, random, zero bool, seed, chunk uint64) {
	if zero {
		clear(buf)
		return
	}
	rng := rand.New(rand.NewPCG(seed, chunk^0x5851F42D4C957F2D))
	if typ == gguf.TypeF16 {
		for i := 0; i < len(buf); i += 2 {
			v := float32(1)
			if random {
				v = a * (2*float32(rng.Uint32()>>8)/(1<<24) - 1)
			}
			binary.LittleEndian.PutUint16(buf[i:], float16.Fromfloat32(v).Bits())
		}
		return
	}
	for i := 0; i < len(buf); i += 4 {
		v := float32(1)
		if random {
			v = a * (2*float32(rng.Uint32()>>8)/(1<<24) - 1)
		}
		binary.LittleEndian.PutUint32(buf[i:], math.Float32bits(v))
	}
}

// Create writes a random-weight model of shape s to path in the llama.cpp
// type quant ("F32", "F16", or any engine.QuantTypes name such as "Q4_0" or
// "Q4_K_M"). Quantized types are made by writing F16 beside path and
// quantizing it through the engine with threads threads (0: all CPUs).
func Create(ctx context.Context, path string, s Shape, quant string, seed uint64, threads int) error {
	switch strings.ToUpper(quant) {
	case "F32":
		return Write(ctx, path, s, Options{F32: true, Seed: seed})
	case "F16", "":
		return Write(ctx, path, s, Options{Seed: seed})
	}
	tmp := path + ".f16.tmp"
	defer os.Remove(tmp)
	// MXFP4_MOE keeps experts that are MXFP4 already (and refuses to
	// requantize any other quantized type): write them so.
	mx := strings.EqualFold(quant, "MXFP4_MOE")
	if err := Write(ctx, tmp, s, Options{Seed: seed, MXFP4Experts: mx}); err != nil {
		return err
	}
	if err := engine.Quantize(ctx, tmp, path, quant, threads); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}
