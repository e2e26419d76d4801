package engine_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/synth"
)

// TestTokenizerVectors runs llama.cpp's tokenizer test vectors: for each
// vocabulary, every input must tokenize (no special tokens added, none
// parsed) to the expected ids.
func TestTokenizerVectors(t *testing.T) {
	dir := shareddata.Path(t, "testdata", "tokenizer_vocab")
	vocabs, _ := filepath.Glob(filepath.Join(dir, "*.gguf"))
	if len(vocabs) != 7 {
		t.Fatalf("found %d vocabularies in %s, want 7", len(vocabs), dir)
	}
	for _, path := range vocabs {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			inp, err := os.ReadFile(path + ".inp")
			if err != nil {
				t.Fatal(err)
			}
			out, err := os.ReadFile(path + ".out")
			if err != nil {
				t.Fatal(err)
			}
			inputs := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
			expected := strings.Split(string(out), "\n")
			if len(inputs) != len(expected) {
				t.Fatalf("%d inputs but %d expected lines", len(inputs), len(expected))
			}
			m, err := engine.LoadModel(context.Background(), path, engine.ModelOptions{VocabOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			pass := 0
			for i, text := range inputs {
				got, err := m.Tokenize(text, false, false)
				if err != nil {
					t.Fatal(err)
				}
				var gs []string
				for _, id := range got {
					gs = append(gs, itoa(int(id)))
				}
				if strings.Join(gs, " ") == strings.TrimSpace(expected[i]) {
					pass++
				} else {
					t.Errorf("case %d %q: got %v, want %s", i, text, got, expected[i])
				}
			}
			t.Logf("%s: %d/%d", name, pass, len(inputs))
		})
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// TestMalformedModels checks that bad files are refused in Go, before
// llama.cpp parses them, and that the process survives.
func TestMalformedModels(t *testing.T) {
	good, err := os.ReadFile(shareddata.Path(t, "models", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := gguf.Read(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	put32 := func(b []byte, off int, v uint32) []byte {
		b = append([]byte(nil), b...)
		b[off], b[off+1], b[off+2], b[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		return b
	}
	put64 := func(b []byte, off int, v uint64) []byte {
		b = put32(b, off, uint32(v))
		return put32(b, off+4, uint32(v>>32))
	}
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, gguf.ErrTruncated},
		{"bad magic", append([]byte("GGUX"), good[4:]...), gguf.ErrNotGGUF},
		{"version 1", put32(good, 4, 1), gguf.ErrVersion},
		{"huge tensor count", put64(good, 8, 1<<62), gguf.ErrTruncated},
		{"huge kv count", put64(good, 16, 1<<62), gguf.ErrTruncated},
		{"truncated header", good[:1000], gguf.ErrTruncated},
		{"truncated data", good[:len(good)-100], gguf.ErrTruncated},
		{"first key length huge", put64(good, 24, 1<<60), gguf.ErrTruncated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".gguf")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := engine.LoadModel(context.Background(), path, engine.ModelOptions{})
			if err == nil {
				m.Close()
				t.Fatal("loaded a malformed file")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v does not wrap %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}

	// A tensor type llama.cpp does not know: rewrite the first tensor's type
	// field in place (it follows the name and its dimensions).
	t.Run("unknown tensor type", func(t *testing.T) {
		first := h.Tensors[0]
		idx := bytes.Index(good, []byte(first.Name))
		if idx < 0 {
			t.Fatal("first tensor name not found")
		}
		off := idx + len(first.Name) + 4 + 8*len(first.Shape)
		path := filepath.Join(dir, "type.gguf")
		os.WriteFile(path, put32(good, off, 99), 0o644)
		_, err := engine.LoadModel(context.Background(), path, engine.ModelOptions{})
		if !errors.Is(err, gguf.ErrUnknownType) {
			t.Errorf("got %v, want ErrUnknownType", err)
		}
	})

	// A well-formed GGUF that is not a model llama.cpp can build (a missing
	// tensor) gets llama.cpp's reason as a Go error.
	t.Run("missing tensor", func(t *testing.T) {
		w := gguf.NewWriter()
		for _, kv := range h.KV {
			w.Set(kv.Key, kv.Value)
		}
		for _, ti := range h.Tensors {
			if ti.Name == "output_norm.weight" {
				continue
			}
			ti := ti
			w.AddTensor(ti.Name, ti.Type, ti.Shape, func(out io.Writer) error {
				_, err := out.Write(good[h.DataOffset+int64(ti.Offset):][:ti.Size])
				return err
			})
		}
		path := filepath.Join(dir, "missing.gguf")
		if err := w.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		_, err := engine.LoadModel(context.Background(), path, engine.ModelOptions{})
		if !errors.Is(err, engine.ErrLoad) || !strings.Contains(err.Error(), "output_norm") {
			t.Errorf("got %v, want ErrLoad naming output_norm", err)
		}
	})

	t.Run("not a file", func(t *testing.T) {
		_, err := engine.LoadModel(context.Background(), dir, engine.ModelOptions{})
		if err == nil {
			t.Error("loaded a directory")
		}
		_, err = engine.LoadModel(context.Background(), filepath.Join(dir, "absent.gguf"), engine.ModelOptions{})
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("missing file: %v", err)
		}
	})
}

// slowModel writes a synthetic model big enough that one large batch takes
// a noticeable time to decode.
func slowModel(t testing.TB) *engine.Model {
	t.Helper()
	s := synth.Shape{Name: "slow", Vocab: 1000, Embd: 1024, FF: 4096, Layers: 4, Heads: 16, KVHeads: 4,
		Context: 2048, RopeTheta: 10000, NormEps: 1e-5}
	path := filepath.Join(t.TempDir(), "slow.gguf")
	if err := synth.Write(context.Background(), path, s, synth.Options{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	m, err := engine.LoadModel(context.Background(), path, engine.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func fillBatch(b *engine.Batch, n int) {
	b.Clear()
	for i := range n {
		b.Add(engine.Token(3+i%900), engine.Pos(i), i == n-1)
	}
}

// TestDecodeCancel checks that cancelling a decode's context aborts it
// promptly, that the context stays usable, and that an already cancelled
// context does not start a decode.
func TestDecodeCancel(t *testing.T) {
	m := slowModel(t)
	c := newContext(t, m, engine.ContextOptions{ContextLength: 1024, BatchSize: 512, MicroBatchSize: 512, Threads: 2})
	b := newBatch(t, 512, 1)
	fillBatch(b, 512)

	// The first decode pays one-time costs (page faults on the mapped
	// weights, buffer allocation); time the second.
	var full time.Duration
	for range 2 {
		c.ClearMemory(false)
		start := time.Now()
		if err := c.Decode(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		full = time.Since(start)
	}
	c.ClearMemory(false)

	// Cancel a tenth of the way in; if the machine is slow and the decode
	// still finishes first, try again with an earlier cancel.
	var err error
	for attempt, delay := 0, full/10; attempt < 4; attempt, delay = attempt+1, delay/2 {
		c.ClearMemory(false)
		ctx, cancel := context.WithCancel(context.Background())
		var cancelledAt time.Time
		time.AfterFunc(delay, func() { cancelledAt = time.Now(); cancel() })
		err = c.Decode(ctx, b)
		returned := time.Now()
		cancel()
		if err == nil {
			continue
		}
		if !errors.Is(err, engine.ErrAborted) || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled decode returned %v, want ErrAborted and context.Canceled", err)
		}
		latency := returned.Sub(cancelledAt)
		t.Logf("full decode of 512 tokens %v; cancelled after %v, returned %v after the cancel", full, delay, latency)
		if latency > full/2 {
			t.Errorf("decode returned %v after its cancel; the whole decode takes %v: not prompt", latency, full)
		}
		break
	}
	if err == nil {
		t.Fatal("every decode finished before its cancel arrived")
	}

	// The context is usable again once the partial batch is removed.
	c.RemoveTokens(0, -1, -1)
	if err := c.Decode(context.Background(), b); err != nil {
		t.Fatalf("decode after an abort: %v", err)
	}
	if _, err := c.Logits(511); err != nil {
		t.Fatal(err)
	}

	done, stop := context.WithCancel(context.Background())
	stop()
	if err := c.Decode(done, b); !errors.Is(err, engine.ErrAborted) {
		t.Errorf("decode with a cancelled context: %v", err)
	}
}

// TestTwoSequencesOneBatch decodes two prompts together, each step one batch
// with a token from each sequence, and requires the same greedy tokens as
// decoding each alone.
func TestTwoSequencesOneBatch(t *testing.T) {
	m := loadModel(t, engine.ModelOptions{}, "models", "stories260K.gguf")
	prompts := []string{"Once upon a time", "The little dog"}
	const n = 24

	alone := newContext(t, m, engine.ContextOptions{ContextLength: 256})
	var want [2][]engine.Token
	var ids [2][]engine.Token
	for s, p := range prompts {
		ids[s], _ = m.Tokenize(p, true, false)
		want[s], _ = greedy(t, alone, ids[s], n, false)
	}

	c := newContext(t, m, engine.ContextOptions{ContextLength: 256, MaxSequences: 2})
	b := newBatch(t, 64, 1)
	rowOf := [2]int{}
	for s := range 2 {
		for i, tok := range ids[s] {
			last := i == len(ids[s])-1
			if last {
				rowOf[s] = b.Len()
			}
			b.Add(tok, engine.Pos(i), last, engine.SeqID(s))
		}
	}
	var got [2][]engine.Token
	pos := [2]int{len(ids[0]), len(ids[1])}
	for range n {
		if err := c.Decode(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		next := [2]engine.Token{}
		for s := range 2 {
			l, err := c.Logits(rowOf[s])
			if err != nil {
				t.Fatal(err)
			}
			next[s] = argmax(l)
			got[s] = append(got[s], next[s])
		}
		b.Clear()
		for s := range 2 {
			rowOf[s] = b.Len()
			b.Add(next[s], engine.Pos(pos[s]), true, engine.SeqID(s))
			pos[s]++
		}
	}
	for s := range 2 {
		if !equalTokens(got[s], want[s]) {
			t.Errorf("sequence %d (%q): batched %v, alone %v", s, prompts[s], got[s], want[s])
		}
	}
}

// TestKVMemory exercises sequence copy, removal and position queries: a
// prompt copied to a second sequence continues exactly as the first.
func TestKVMemory(t *testing.T) {
	m := loadModel(t, engine.ModelOptions{}, "models", "stories260K.gguf")
	c := newContext(t, m, engine.ContextOptions{ContextLength: 256, MaxSequences: 2})
	ids, _ := m.Tokenize("Once upon a time", true, false)
	b := newBatch(t, 16, 2)
	for i, tok := range ids {
		b.Add(tok, engine.Pos(i), i == len(ids)-1, 0)
	}
	ctx := context.Background()
	if err := c.Decode(ctx, b); err != nil {
		t.Fatal(err)
	}
	first, _ := c.LogitsCopy(nil, len(ids)-1)
	if err := c.CopySequence(0, 1, -1, -1); err != nil {
		t.Fatal(err)
	}
	lo, hi, _ := c.PositionRange(1)
	if lo != 0 || hi != engine.Pos(len(ids)-1) {
		t.Errorf("copied sequence spans [%d, %d], want [0, %d]", lo, hi, len(ids)-1)
	}
	// Drop the last prompt token of sequence 1 and decode it again there.
	if ok, err := c.RemoveTokens(1, engine.Pos(len(ids)-1), -1); !ok || err != nil {
		t.Fatalf("RemoveTokens: %v %v", ok, err)
	}
	b.Clear()
	b.Add(ids[len(ids)-1], engine.Pos(len(ids)-1), true, 1)
	if err := c.Decode(ctx, b); err != nil {
		t.Fatal(err)
	}
	again, _ := c.Logits(0)
	if argmax(again) != argmax(first) {
		t.Errorf("recomputed last position picks %d, first time %d", argmax(again), argmax(first))
	}
	if err := c.KeepSequence(1); err != nil {
		t.Fatal(err)
	}
	if lo, hi, _ := c.PositionRange(0); lo != -1 || hi != -1 {
		t.Errorf("sequence 0 should be empty after KeepSequence(1): [%d, %d]", lo, hi)
	}
	if ok, _ := c.CanShift(); !ok {
		t.Error("a llama model's memory should support shifting")
	}
	if err := c.ShiftPositions(1, 0, -1, 10); err != nil {
		t.Fatal(err)
	}
	if lo, _, _ := c.PositionRange(1); lo != 10 {
		t.Errorf("after shifting by 10 the first position is %d", lo)
	}
	if err := c.CopySequence(0, 2, -1, -1); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("copy to sequence 2 of 2: %v", err)
	}
}

// TestInvalidArguments checks that out-of-range input is refused in Go:
// llama.cpp would abort the process on several of these.
func TestInvalidArguments(t *testing.T) {
	m := loadModel(t, engine.ModelOptions{}, "models", "stories260K.gguf")
	c := newContext(t, m, engine.ContextOptions{ContextLength: 256})
	ctx := context.Background()
	b := newBatch(t, 4, 1)

	if _, err := c.Logits(0); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("logits before any decode: %v", err)
	}
	if err := c.Decode(ctx, b); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("empty batch: %v", err)
	}
	b.Add(512, 0, true)
	if err := c.Decode(ctx, b); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("token 512 of 512: %v", err)
	}
	b.Clear()
	b.Add(1, 0, true, 1)
	if err := c.Decode(ctx, b); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("sequence 1 of 1: %v", err)
	}
	b.Clear()
	b.Add(1, 0, false)
	b.Add(403, 1, true)
	if err := c.Decode(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logits(0); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("row decoded without logits: %v", err)
	}
	if _, err := c.Logits(2); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("row past the batch: %v", err)
	}
	b.Clear()
	b.Add(1, 7, true) // does not continue the sequence at position 2
	if err := c.Decode(ctx, b); !errors.Is(err, engine.ErrInvalidBatch) {
		t.Errorf("gap in positions: %v", err)
	}
	for range 3 {
		b.Add(1, 0, false)
	}
	if err := b.Add(1, 0, false); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("adding to a full batch: %v", err)
	}
	if err := b.Add(1, -1, false); err == nil {
		t.Error("negative position accepted")
	}
	if _, err := m.Detokenize([]engine.Token{1, 600}, false, false); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("detokenize of token 600: %v", err)
	}
	if _, err := m.TokenToPiece(-5, false); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("piece of token -5: %v", err)
	}
	if _, err := engine.NewBatch(0, 1); err == nil {
		t.Error("empty batch capacity accepted")
	}
	for _, o := range []engine.ContextOptions{
		{ContextLength: -1}, {BatchSize: 16, MicroBatchSize: 32}, {MaxSequences: 100000},
		{TypeK: "q3_x"}, {Threads: -2}, {FlashAttention: 9},
		// stories260K's heads hold 8 values: a q8_0 cache (blocks of 32) would
		// abort the process inside ggml.
		{TypeK: "q8_0", FlashAttention: engine.FlashAttentionOn},
		{TypeV: "q4_0", FlashAttention: engine.FlashAttentionOn},
	} {
		if c, err := m.NewContext(o); err == nil {
			c.Close()
			t.Errorf("context options %+v accepted", o)
		}
	}
	if _, err := c.Embeddings(0); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("embeddings from a logits context: %v", err)
	}
}

// TestCloseSafety checks that Close is idempotent, that using a closed Model
// or Context returns ErrClosed, and that closing a Model closes its contexts.
func TestCloseSafety(t *testing.T) {
	m, err := engine.LoadModel(context.Background(), shareddata.Path(t, "models", "stories260K.gguf"), engine.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := m.NewContext(engine.ContextOptions{ContextLength: 256})
	c2, _ := m.NewContext(engine.ContextOptions{ContextLength: 256})
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c1.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	b := newBatch(t, 4, 1)
	b.Add(1, 0, true)
	if err := c1.Decode(context.Background(), b); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("decode on a closed context: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second model Close: %v", err)
	}
	if err := c2.Decode(context.Background(), b); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("decode on a context of a closed model: %v", err)
	}
	if _, err := c2.Logits(0); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("logits on a closed context: %v", err)
	}
	if _, err := m.Tokenize("x", true, false); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("tokenize on a closed model: %v", err)
	}
	if _, err := m.NewContext(engine.ContextOptions{}); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("new context on a closed model: %v", err)
	}
	if m.IsEOG(2) {
		t.Error("IsEOG on a closed model should be false")
	}
	b.Close()
	b.Close()
}

// TestVocabOnly checks that a vocabulary-only model reports its facts from
// the metadata and refuses to create a context.
func TestVocabOnly(t *testing.T) {
	m := loadModel(t, engine.ModelOptions{VocabOnly: true}, "models", "stories260K.gguf")
	info := m.Info()
	if info.Layers != 5 || info.EmbeddingSize != 64 || info.Heads != 8 || info.KVHeads != 4 || info.Parameters != 292800 {
		t.Errorf("vocab-only facts %+v", info)
	}
	if _, err := m.NewContext(engine.ContextOptions{}); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("context of a vocab-only model: %v", err)
	}
}

func TestModelFacts(t *testing.T) {
	m := loadModel(t, engine.ModelOptions{}, "models", "llama-2-tiny-random.gguf")
	info := m.Info()
	want := engine.Info{Architecture: "llama", Name: "LLaMA v2", Parameters: 513048, TrainContext: 4096,
		EmbeddingSize: 8, Layers: 1, Heads: 2, KVHeads: 2, VocabSize: 32000, VocabType: engine.VocabSPM, HasDecoder: true}
	got := info
	got.Description, got.SizeBytes = "", 0
	if got != want {
		t.Errorf("info\n got %+v\nwant %+v", got, want)
	}
	if !strings.Contains(info.Description, "F16") {
		t.Errorf("description %q should name F16", info.Description)
	}
	st := m.SpecialTokens()
	if st.BOS != 1 || st.EOS != 2 || !st.AddBOS || st.AddEOS {
		t.Errorf("special tokens %+v", st)
	}
	if eog := m.EOGTokens(); len(eog) == 0 {
		t.Error("no end-of-generation tokens")
	}
	if !m.IsEOG(2) || m.IsEOG(100) || m.IsEOG(-1) || m.IsEOG(1<<30) {
		t.Error("IsEOG")
	}
	found := false
	for _, kv := range m.Metadata() {
		if kv.Key == "general.name" {
			s, _ := kv.Value.AsString()
			found = s == "LLaMA v2"
		}
	}
	if !found {
		t.Error("general.name missing from Metadata")
	}
	if _, ok := m.ChatTemplate(""); ok {
		t.Error("this model has no chat template")
	}
	if txt, _ := m.TokenText(15043); txt != "▁Hello" {
		t.Errorf("token 15043 is %q", txt)
	}
}

// TestDetokenizerStreamsUTF8 feeds byte-fallback tokens one at a time: a
// multi-byte character must come out whole, never as broken bytes.
func TestDetokenizerStreamsUTF8(t *testing.T) {
	m := loadModel(t, engine.ModelOptions{VocabOnly: true}, "models", "stories260K.gguf")
	const text = "Hi 😀 é 漢字!"
	ids, err := m.Tokenize(text, false, false)
	if err != nil {
		t.Fatal(err)
	}
	d := m.NewDetokenizer(false)
	var out strings.Builder
	partial := 0
	for _, id := range ids {
		s, err := d.Next(id)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8Valid(s) {
			t.Fatalf("emitted invalid UTF-8 %q", s)
		}
		if s == "" {
			partial++
		}
		out.WriteString(s)
	}
	out.WriteString(d.Flush())
	if got := strings.TrimPrefix(out.String(), " "); got != text {
		t.Errorf("streamed %q, want %q", got, text)
	}
	if partial == 0 {
		t.Error("no token was held back: the test did not split a character")
	}
}

// TestQuantize quantizes an F16 model to Q8_0 and checks the result loads
// and still generates; bad requests fail cleanly.
func TestQuantize(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	in := filepath.Join(dir, "f16.gguf")
	out := filepath.Join(dir, "q8.gguf")
	tiny := synth.Shape{Name: "tiny", Vocab: 1000, Embd: 64, FF: 128, Layers: 2, Heads: 4, KVHeads: 2,
		Context: 512, RopeTheta: 10000, NormEps: 1e-5}
	if err := synth.Write(ctx, in, tiny, synth.Options{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := engine.Quantize(ctx, in, out, "q8_0", 2); err != nil {
		t.Fatal(err)
	}
	m, err := engine.LoadModel(ctx, out, engine.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if d := m.Info().Description; !strings.Contains(d, "Q8_0") {
		t.Errorf("quantized model description %q", d)
	}
	c := newContext(t, m, engine.ContextOptions{ContextLength: 256})
	toks, _ := greedy(t, c, []engine.Token{1, 300, 400}, 4, false)
	if len(toks) != 4 {
		t.Errorf("generated %v", toks)
	}
	if err := engine.Quantize(ctx, in, out, "Q9_Z", 2); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("unknown type: %v", err)
	}
	if err := engine.Quantize(ctx, in, in, "Q8_0", 2); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("output over input: %v", err)
	}
	if err := engine.Quantize(ctx, filepath.Join(t.TempDir(), "absent.gguf"), out, "Q8_0", 2); err == nil {
		t.Error("missing input accepted")
	}
	// Rows of 8 values cannot be split into Q8_0 blocks of 32: llama.cpp's
	// refusal comes back as an invalid argument naming the matrix, and no
	// output is left.
	bad := filepath.Join(dir, "bad.gguf")
	err = engine.Quantize(ctx, shareddata.Path(t, "models", "llama-2-tiny-random.gguf"), bad, "Q8_0", 2)
	if !errors.Is(err, engine.ErrInvalidArgument) || !strings.Contains(err.Error(), "token_embd.weight has rows of 8 values") {
		t.Errorf("quantizing 8-wide rows to Q8_0: %v", err)
	}
	if _, statErr := os.Stat(bad); !os.IsNotExist(statErr) {
		t.Error("a failed quantization left its output")
	}
}

// TestEmbeddings checks pooled and per-token embeddings: sizes, determinism
// for identical text, and difference for different text.
func TestEmbeddings(t *testing.T) {
	m := loadModel(t, engine.ModelOptions{}, "models", "stories260K.gguf")
	c := newContext(t, m, engine.ContextOptions{ContextLength: 256, MaxSequences: 3, Embeddings: true, Pooling: engine.PoolingMean})
	b := newBatch(t, 64, 1)
	texts := []string{"The little dog", "The little dog", "Lily and Tom went to the park"}
	for s, text := range texts {
		ids, _ := m.Tokenize(text, true, false)
		for i, id := range ids {
			b.Add(id, engine.Pos(i), true, engine.SeqID(s))
		}
	}
	if err := c.Decode(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	var vecs [][]float32
	for s := range texts {
		v, err := c.SequenceEmbeddings(engine.SeqID(s))
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != 64 {
			t.Fatalf("embedding of %d values, want 64", len(v))
		}
		vecs = append(vecs, v)
	}
	var same, diff float64
	for i := range vecs[0] {
		same = math.Max(same, math.Abs(float64(vecs[0][i]-vecs[1][i])))
		diff = math.Max(diff, math.Abs(float64(vecs[0][i]-vecs[2][i])))
	}
	if same > 1e-5 || diff < 1e-3 {
		t.Errorf("identical texts differ by %g, different texts by %g", same, diff)
	}
	if _, err := c.Embeddings(0); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("per-token embeddings from a pooled context: %v", err)
	}
}

// TestLogRouting checks that llama.cpp's log reaches the configured slog
// logger, tagged with its source.
func TestLogRouting(t *testing.T) {
	var buf bytes.Buffer
	engine.SetLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer engine.SetLogger(nil)
	loadModel(t, engine.ModelOptions{VocabOnly: true}, "models", "stories260K.gguf")
	if !strings.Contains(buf.String(), "source=llama.cpp") || !strings.Contains(buf.String(), "llama_model_loader") {
		t.Errorf("llama.cpp's load log did not reach slog:\n%.500s", buf.String())
	}
}

// TestLoadCancel checks that a cancelled context stops a load.
func TestLoadCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := engine.LoadModel(ctx, shareddata.Path(t, "models", "stories260K.gguf"), engine.ModelOptions{
		Progress: func(p float32) { calls++; cancel() },
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled load: %v (progress called %d times)", err, calls)
	}
	var last float32
	m := loadModel(t, engine.ModelOptions{Progress: func(p float32) { last = p }}, "models", "stories260K.gguf")
	if last != 1 || m == nil {
		t.Errorf("progress ended at %v, want 1", last)
	}
}

// TestVendoredCommit checks that LlamaCppCommit is the commit the Ollama
// module vendors.
func TestVendoredCommit(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ollama/ollama").Output()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "Makefile.sync"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "FETCH_HEAD="+engine.LlamaCppCommit+"\n") {
		t.Errorf("Makefile.sync does not name commit %s", engine.LlamaCppCommit)
	}
}

// TestSystemFeatures checks that the build carries the SIMD level the
// Makefile asks for: with -march=native on a CPU with AVX2, ggml must have
// been compiled with AVX2 and FMA.
func TestSystemFeatures(t *testing.T) {
	sys := engine.System()
	cpu, ok := sys.Backends["CPU"]
	if !ok {
		t.Fatalf("no CPU backend registered: %q", sys.Raw)
	}
	flags := os.Getenv("CGO_CFLAGS")
	info, _ := os.ReadFile("/proc/cpuinfo")
	if !strings.Contains(flags, "-march=native") || !bytes.Contains(info, []byte(" avx2 ")) {
		t.Skipf("not built with -march=native on an AVX2 CPU (CGO_CFLAGS=%q)", flags)
	}
	has := map[string]bool{}
	for _, f := range cpu {
		has[f] = true
	}
	for _, want := range []string{"AVX", "AVX2", "FMA", "F16C"} {
		if !has[want] {
			t.Errorf("CPU backend lacks %s: %v", want, cpu)
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\x00") == s }

// TestContextFreesBackendsLast: closing a context frees its ggml backends
// only after llama_free has freed the scheduler, which reads them (and
// calls CUDA's reset on them) as it goes: bridge.c holds them back through
// the linker's --wrap=ggml_backend_free. A context has at least the CPU
// backend, so at least one free must have been held back.
func TestContextFreesBackendsLast(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the engine wraps ggml_backend_free only on Linux")
	}
	m := loadModel(t, engine.ModelOptions{}, "models", "stories260K.gguf")
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 64, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	before := engine.DeferredBackendFrees()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := engine.DeferredBackendFrees() - before; n < 1 {
		t.Errorf("%d backend frees held back while the context was freed, want at least 1 (is the engine linked with --wrap=ggml_backend_free?)", n)
	}
}

// TestNonCausalMicroBatch: a model without causal attention (BERT) must
// decode a batch in one micro-batch, and within its learned positions;
// otherwise Decode is an error, where llama.cpp would abort the process.
func TestNonCausalMicroBatch(t *testing.T) {
	path, _ := testmodel.BERT(t, false)
	m, err := engine.LoadModel(context.Background(), path, engine.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 64, BatchSize: 32, MicroBatchSize: 8, Embeddings: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := engine.NewBatch(32, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := range 12 {
		if err := b.Add(engine.Token(101+i%3), engine.Pos(i), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Decode(context.Background(), b); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("12 tokens in micro-batches of 8: %v, want ErrInvalidArgument", err)
	}
	b.Clear()
	for i := range 8 {
		if err := b.Add(engine.Token(101+i%3), engine.Pos(i), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Decode(context.Background(), b); err != nil {
		t.Errorf("8 tokens: %v", err)
	}
	// Its learned positions end at testmodel.BERTCtx: a position past
	// them is an error, where llama.cpp would abort.
	b.Clear()
	if err := b.Add(101, engine.Pos(testmodel.BERTCtx+6), true); err != nil {
		t.Fatal(err)
	}
	if err := c.Decode(context.Background(), b); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("a position past the learned ones: %v, want ErrInvalidArgument", err)
	}
}
