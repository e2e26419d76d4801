package convert

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/x448/float16"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// chunkBytes is the size of the source data converted at a time.
const chunkBytes = 4 << 20

// tensorWriter converts and writes tensors one at a time, streaming each in
// chunks of at most chunkBytes of source data through buffers reused for
// every tensor, so memory use does not grow with the tensor size (except
// for GPT-2's transposed tensors, which are converted whole).
type tensorWriter struct {
	st   *safetensors.Model
	raws [2][]byte // source chunks, one being written while the other is read
	outs [2][]byte // converted chunks
	f32  []float32
	// fp8Block is config.json's quantization_config.weight_block_size
	// (nil when not given), for FP8 weights.
	fp8Block []int
	done     int64
	total    int64
	progress func(done, total int64)
}

// emit writes b and reports progress.
func (tw *tensorWriter) emit(w io.Writer, b []byte) error {
	if _, err := w.Write(b); err != nil {
		return err
	}
	tw.done += int64(len(b))
	if tw.progress != nil {
		tw.progress(tw.done, tw.total)
	}
	return nil
}

// encode converts src to typ and writes it.
func (tw *tensorWriter) encode(w io.Writer, src []float32, typ gguf.Type) error {
	out, err := encodeInto(&tw.outs[0], src, typ)
	if err != nil {
		return err
	}
	return tw.emit(w, out)
}

// encodeInto converts src to typ into *dst, growing it as needed. For
// Q8_0, len(src) must be a multiple of 32.
func encodeInto(dst *[]byte, src []float32, typ gguf.Type) ([]byte, error) {
	size := encodedSize(typ, len(src))
	if size == 0 && len(src) > 0 {
		return nil, fmt.Errorf("output type %v: %w", typ, ErrUnsupported)
	}
	if typ == gguf.TypeQ8_0 && len(src)%qk8_0 != 0 {
		return nil, fmt.Errorf("%d values are not whole Q8_0 blocks of %d", len(src), qk8_0)
	}
	if cap(*dst) < size {
		*dst = make([]byte, size)
	}
	out := (*dst)[:size]
	switch typ {
	case gguf.TypeF32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case gguf.TypeF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(out[2*i:], f32ToF16(math.Float32bits(v)))
		}
	case gguf.TypeBF16:
		encodeBF16(out, src)
	case gguf.TypeQ8_0:
		quantizeQ8_0(out, src)
	}
	return out, nil
}

// toF16 converts raw F32 or BF16 data straight to F16 bytes in *dst,
// growing it as needed.
func toF16(dst *[]byte, raw []byte, d safetensors.DType) []byte {
	n := len(raw) / int(d.Size())
	if cap(*dst) < 2*n {
		*dst = make([]byte, 2*n)
	}
	out := (*dst)[:2*n]
	if d == safetensors.BF16 {
		tab := bf16ToF16Table()
		i := 0
		for ; i+4 <= n; i += 4 { // four at a time through 64-bit loads
			v := binary.LittleEndian.Uint64(raw[2*i : 2*i+8])
			o := uint64(tab[uint16(v)]) | uint64(tab[uint16(v>>16)])<<16 |
				uint64(tab[uint16(v>>32)])<<32 | uint64(tab[uint16(v>>48)])<<48
			binary.LittleEndian.PutUint64(out[2*i:2*i+8], o)
		}
		for ; i < n; i++ {
			binary.LittleEndian.PutUint16(out[2*i:], tab[binary.LittleEndian.Uint16(raw[2*i:])])
		}
	} else {
		for i := range n {
			binary.LittleEndian.PutUint16(out[2*i:], f32ToF16(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	}
	return out
}

// bf16ToF16Table maps every BF16 bit pattern to its F16 rounding.
var bf16ToF16Table = sync.OnceValue(func() *[1 << 16]uint16 {
	var t [1 << 16]uint16
	for b := range t {
		t[b] = f32ToF16(uint32(b) << 16)
	}
	return &t
})

// f32ToF16 rounds the float32 with bits w to the nearest F16 (ties to
// even), with overflow to infinity and F16 subnormals, as
// float16.Fromfloat32 does but branch-light (the FP16 library's method,
// which ggml also uses). Infinities and NaNs go to float16.Fromfloat32 so
// NaN payloads are kept as before.
func f32ToF16(w uint32) uint16 {
	if w&0x7f800000 == 0x7f800000 {
		return float16.Fromfloat32(math.Float32frombits(w)).Bits()
	}
	const scaleToInf = 0x1.0p+112
	const scaleToZero = 0x1.0p-110
	f := math.Float32frombits(w &^ 0x80000000)
	base := float32(float32(f*scaleToInf) * scaleToZero)
	shl1 := w + w
	sign := w & 0x80000000
	bias := shl1 & 0xff000000
	if bias < 0x71000000 {
		bias = 0x71000000
	}
	base = float32(math.Float32frombits((bias>>1)+0x07800000) + base)
	bits := math.Float32bits(base)
	return uint16(sign>>16) | uint16((bits>>13)&0x7c00+bits&0x0fff)
}

// writeTensor reads one tensor, converts it and writes it as typ.
func (tw *tensorWriter) writeTensor(ctx context.Context, w io.Writer, p tensorPlan, typ gguf.Type) error {
	if (p.scale != 0 || p.colScale != nil) && (p.gen != nil || p.oss != nil || p.derive != nil || p.transpo) {
		// Those paths compute their values and would ignore it.
		return fmt.Errorf("tensor %q: a scale applies only to tensors written as stored (or stacked)", p.ggufName)
	}
	if p.gen != nil {
		return tw.encode(w, p.gen, typ)
	}
	if p.oss != nil {
		return tw.writeOSS(ctx, w, p, typ)
	}
	if p.parts != nil {
		// Stacked: each part's rows in turn.
		for _, name := range p.parts {
			part := p
			part.parts, part.hfName, part.shape = nil, name, p.shape[1:]
			if err := tw.writeTensor(ctx, w, part, typ); err != nil {
				return err
			}
		}
		return nil
	}
	if p.padRows > 0 {
		stored := p
		stored.padRows, stored.shape = 0, append([]int64{p.shape[0] - p.padRows}, p.shape[1:]...)
		if err := tw.writeTensor(ctx, w, stored, typ); err != nil {
			return err
		}
		cols := 1
		for _, d := range p.shape[1:] {
			cols *= int(d)
		}
		row, err := readRows(tw.st, p.hfName, cols, 0)
		if err != nil {
			return err
		}
		for range p.padRows {
			if err := tw.encode(w, row, typ); err != nil {
				return err
			}
		}
		return nil
	}
	if p.derive != nil {
		data, err := p.derive(tw)
		if err != nil {
			return err
		}
		return tw.encode(w, data, typ)
	}
	if p.transpo {
		data, err := loadFloat32s(tw.st, p.hfName, tw.fp8Block)
		if err != nil {
			return err
		}
		return tw.encode(w, transpose(data, int(p.shape[0]), int(p.shape[1])), typ)
	}
	f, ok := tw.st.FileOf(p.hfName)
	info, ok2 := tw.st.Tensor(p.hfName)
	if !ok || !ok2 {
		return fmt.Errorf("tensor %q: not in the checkpoint", p.hfName)
	}
	esz := int(info.DType.Size())
	if !(info.DType.Supported() || info.DType == safetensors.F8E4M3) || esz <= 0 {
		return fmt.Errorf("tensor %q: dtype %s: %w", p.hfName, info.DType, ErrUnsupported)
	}
	rows, cols := int(p.shape[0]), 1
	for _, d := range p.shape[1:] {
		cols *= int(d)
	}
	var fp8 *fp8Scales
	if info.DType == safetensors.F8E4M3 {
		var err error
		if fp8, err = newFP8Scales(tw.st, p.hfName, rows, cols, tw.fp8Block); err != nil {
			return err
		}
	}
	if p.permute > 0 && (rows%p.permute != 0 || (rows/p.permute)%2 != 0 || p.permuteRot < 0 || p.permuteRot%2 != 0 || p.permuteRot > rows/p.permute) {
		return fmt.Errorf("tensor %q: cannot permute %d rows over %d heads (%d of each rotated)", p.hfName, rows, p.permute, p.permuteRot)
	}
	if p.colScale != nil && len(p.colScale) != cols {
		return fmt.Errorf("tensor %q: %d column scales for %d columns", p.hfName, len(p.colScale), cols)
	}
	rowBytes := cols * esz
	step := max(1, chunkBytes/rowBytes)

	// Read and convert one chunk while the previous one is written: two
	// buffer slots go round between this goroutine and the writer.
	work := make(chan outChunk, 1)
	free := make(chan int, 2)
	free <- 0
	free <- 1
	errc := make(chan error, 1)
	var failed atomic.Bool
	go func() {
		var err error
		for c := range work {
			if err == nil {
				if err = tw.emit(w, c.b); err != nil {
					failed.Store(true)
				}
			}
			free <- c.slot
		}
		errc <- err
	}()
	err := tw.produce(ctx, p, typ, f, info, fp8, rows, cols, step, work, free, &failed)
	close(work)
	if werr := <-errc; werr != nil {
		return werr
	}
	return err
}

// outChunk is converted data in buffer slot slot.
type outChunk struct {
	b    []byte
	slot int
}

// produce reads and converts the chunks of a tensor of rows × cols
// elements, step rows at a time, into free slots and sends them to work.
// fp8, when not nil, dequantizes an FP8 tensor.
func (tw *tensorWriter) produce(ctx context.Context, p tensorPlan, typ gguf.Type, f *safetensors.File, info safetensors.TensorInfo,
	fp8 *fp8Scales, rows, cols, step int, work chan<- outChunk, free <-chan int, failed *atomic.Bool) error {
	rowBytes := cols * int(info.DType.Size())
	for r0 := 0; r0 < rows; r0 += step {
		if err := ctx.Err(); err != nil {
			return err
		}
		if failed.Load() {
			return nil // the writer reports its error
		}
		n := min(step, rows-r0)
		slot := <-free
		if cap(tw.raws[slot]) < step*rowBytes {
			tw.raws[slot] = make([]byte, step*rowBytes)
		}
		raw := tw.raws[slot][:n*rowBytes]
		// source gives the checkpoint row of output row r.
		source := func(r int) int { return r }
		if p.permute > 0 {
			// The q/k rows go from Hugging Face's rotate_half layout to
			// the adjacent-pair layout, as convert_hf_to_gguf.py's
			// permute does: within each head, output row 2i+j is source
			// row j*headDim/2+i.
			// With a partial rope only the first permuteRot rows of a
			// head are permuted.
			hd := rows / p.permute
			rot := hd
			if p.permuteRot > 0 {
				rot = p.permuteRot
			}
			half := rot / 2
			source = func(r int) int {
				h, k := r/hd, r%hd
				if k >= rot {
					return r
				}
				return h*hd + (k%2)*half + k/2
			}
		}
		if p.permute > 0 {
			// Read row by row.
			for i := range n {
				src := source(r0 + i)
				if err := readAt(f, raw[i*rowBytes:(i+1)*rowBytes], info.Offset+int64(src)*int64(rowBytes)); err != nil {
					return fmt.Errorf("tensor %q: %w", p.hfName, err)
				}
			}
		} else if err := readAt(f, raw, info.Offset+int64(r0)*int64(rowBytes)); err != nil {
			return fmt.Errorf("tensor %q: %w", p.hfName, err)
		}
		var out []byte
		plain := p.shift == 0 && p.scale == 0 && p.colScale == nil
		switch {
		case plain && ((typ == gguf.TypeF32 && info.DType == safetensors.F32) || (typ == gguf.TypeF16 && info.DType == safetensors.F16) ||
			(typ == gguf.TypeBF16 && info.DType == safetensors.BF16)):
			out = raw
		case plain && typ == gguf.TypeF16 && (info.DType == safetensors.BF16 || info.DType == safetensors.F32):
			out = toF16(&tw.outs[slot], raw, info.DType)
		case plain && typ == gguf.TypeF16 && fp8 != nil:
			if cap(tw.outs[slot]) < 2*len(raw) {
				tw.outs[slot] = make([]byte, 2*len(raw))
			}
			out = tw.outs[slot][:2*len(raw)]
			for i := range n {
				fp8.toF16(out[2*i*cols:2*(i+1)*cols], raw[i*cols:(i+1)*cols], source(r0+i))
			}
		default:
			if cap(tw.f32) < step*cols {
				tw.f32 = make([]float32, step*cols)
			}
			vals := tw.f32[:n*cols]
			if fp8 != nil {
				if err := safetensors.DecodeF8E4M3(vals, raw); err != nil {
					return fmt.Errorf("tensor %q: %w", p.hfName, err)
				}
				for i := range n {
					fp8.apply(vals[i*cols:(i+1)*cols], source(r0+i))
				}
			} else if err := safetensors.DecodeFloat32s(vals, info.DType, raw); err != nil {
				return fmt.Errorf("tensor %q: %w", p.hfName, err)
			}
			if p.scale != 0 {
				for i := range vals {
					vals[i] *= p.scale
				}
			}
			if p.colScale != nil {
				for i := range vals {
					vals[i] *= p.colScale[i%cols]
				}
			}
			if p.shift != 0 {
				for i := range vals {
					vals[i] += p.shift
				}
			}
			var err error
			if out, err = encodeInto(&tw.outs[slot], vals, typ); err != nil {
				return fmt.Errorf("tensor %q: %w", p.hfName, err)
			}
		}
		work <- outChunk{out, slot}
	}
	return nil
}

// readAt fills p from f at off.
func readAt(f *safetensors.File, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// transpose returns the [cols, rows] transpose of a row-major [rows, cols]
// matrix.
func transpose(src []float32, rows, cols int) []float32 {
	dst := make([]float32, len(src))
	for r := range rows {
		for c := range cols {
			dst[c*rows+r] = src[r*cols+c]
		}
	}
	return dst
}

var gpt2LayerRE = regexp.MustCompile(`^h\.(\d+)\.(.+)$`)

// gpt2Ignored are GPT-2 buffers (attention masks) some checkpoints carry.
var gpt2Ignored = regexp.MustCompile(`^h\.\d+\.attn\.(bias|masked_bias)$`)

// planGPT2 maps a GPT2LMHeadModel checkpoint (with or without the
// "transformer." prefix).
func planGPT2(st *safetensors.Model, h hparams, arch archSpec) ([]tensorPlan, error) {
	H, I, V, P := int64(h.hidden), int64(h.ffn), int64(h.vocab), int64(h.ctxLen)
	type gpt2Tensor struct {
		name  string
		shape []int64
		trans bool // a Conv1D weight, stored [in, out]
	}
	layer := map[string]gpt2Tensor{
		"ln_1.weight":        {"attn_norm.weight", []int64{H}, false},
		"ln_1.bias":          {"attn_norm.bias", []int64{H}, false},
		"attn.c_attn.weight": {"attn_qkv.weight", []int64{H, 3 * H}, true},
		"attn.c_attn.bias":   {"attn_qkv.bias", []int64{3 * H}, false},
		"attn.c_proj.weight": {"attn_output.weight", []int64{H, H}, true},
		"attn.c_proj.bias":   {"attn_output.bias", []int64{H}, false},
		"ln_2.weight":        {"ffn_norm.weight", []int64{H}, false},
		"ln_2.bias":          {"ffn_norm.bias", []int64{H}, false},
		"mlp.c_fc.weight":    {"ffn_up.weight", []int64{H, I}, true},
		"mlp.c_fc.bias":      {"ffn_up.bias", []int64{I}, false},
		"mlp.c_proj.weight":  {"ffn_down.weight", []int64{I, H}, true},
		"mlp.c_proj.bias":    {"ffn_down.bias", []int64{H}, false},
	}
	if arch.gguf == "starcoder" {
		// GPTBigCode's nn.Linear weights, [out, in] as stored; c_attn the
		// queries, then the key and value head (multi_query), or each
		// head's q, k, v in turn (regrouped below).
		QKV := H + 2*int64(h.kvHeads*h.headDim)
		for k, l := range layer {
			if l.trans {
				l.shape, l.trans = []int64{l.shape[1], l.shape[0]}, false
				layer[k] = l
			}
		}
		layer["attn.c_attn.weight"] = gpt2Tensor{"attn_qkv.weight", []int64{QKV, H}, false}
		layer["attn.c_attn.bias"] = gpt2Tensor{"attn_qkv.bias", []int64{QKV}, false}
	}
	var plan []tensorPlan
	seen := map[string]bool{}
	for _, t := range st.Tensors() {
		name := strings.TrimPrefix(t.Name, "transformer.")
		p := tensorPlan{layer: -1}
		var want []int64
		switch {
		case gpt2Ignored.MatchString(name):
			continue
		case name == "wte.weight":
			p.ggufName, want = "token_embd.weight", []int64{V, H}
		case name == "wpe.weight":
			p.ggufName, want = "position_embd.weight", []int64{P, H}
		case name == "ln_f.weight":
			p.ggufName, want = "output_norm.weight", []int64{H}
		case name == "ln_f.bias":
			p.ggufName, want = "output_norm.bias", []int64{H}
		case name == "lm_head.weight":
			if h.tied {
				continue // the same values as wte; llama.cpp ties output to token_embd
			}
			p.ggufName, want = "output.weight", []int64{V, H}
		default:
			m := gpt2LayerRE.FindStringSubmatch(name)
			if m == nil {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
			}
			n, err := strconv.Atoi(m[1])
			if err != nil || n >= h.layers {
				return nil, fmt.Errorf("%w: tensor %q: layer %s is outside n_layer %d", ErrMismatch, t.Name, m[1], h.layers)
			}
			l, ok := layer[m[2]]
			if !ok {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
			}
			p.ggufName, want, p.transpo, p.layer = fmt.Sprintf("blk.%d.%s", n, l.name), l.shape, l.trans, n
			if arch.gguf == "starcoder" && h.kvHeads > 1 && strings.HasPrefix(m[2], "attn.c_attn.") {
				name, cols := t.Name, 1
				if len(l.shape) == 2 {
					cols = int(H)
				}
				rows := perHeadQKV(h.heads, h.headDim)
				p.derive = func(*tensorWriter) ([]float32, error) { return readRows(st, name, cols, rows...) }
			}
		}
		if !slices.Equal(t.Shape, want) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, config.json implies %v", ErrMismatch, t.Name, t.Shape, want)
		}
		if !t.DType.Supported() {
			return nil, fmt.Errorf("%w: tensor %q has dtype %s; the converter reads F32, F16 and BF16 weights", ErrUnsupported, t.Name, t.DType)
		}
		if seen[p.ggufName] {
			return nil, fmt.Errorf("%w: tensor %q appears twice", ErrMismatch, p.ggufName)
		}
		p.hfName, p.shape = t.Name, t.Shape
		seen[p.ggufName] = true
		plan = append(plan, p)
	}
	required := []string{"token_embd.weight", "position_embd.weight", "output_norm.weight", "output_norm.bias"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for i := range h.layers {
		for _, l := range layer {
			required = append(required, fmt.Sprintf("blk.%d.%s", i, l.name))
		}
	}
	for _, r := range required {
		if !seen[r] {
			return nil, fmt.Errorf("%w: the checkpoint has no tensor for %s", ErrMismatch, r)
		}
	}
	sortPlan(plan, gpt2Rank)
	return plan, nil
}

// gpt2Rank orders the GPT-2 tensors as llama.cpp's converter writes them.
func gpt2Rank(name string) int {
	switch name {
	case "token_embd.weight":
		return 0
	case "position_embd.weight":
		return 1
	case "output_norm.weight":
		return 3
	case "output_norm.bias":
		return 4
	case "output.weight":
		return 5
	}
	return 2
}
