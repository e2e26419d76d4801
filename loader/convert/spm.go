package convert

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// A checkpoint without tokenizer.json may carry its SentencePiece model
// instead (tokenizer.model: Llama 2's and Mistral 7B's early repos, ERNIE
// 4.5). It is a protocol buffer (sentencepiece_model.proto's ModelProto):
// the pieces with their scores and types, the trainer's settings and the
// normalizer's. llama.cpp's SentencePiece tokenizer ("llama") merges the
// highest-scoring pair first, which is how a BPE model encodes, with
// unknown characters split into byte pieces. So a BPE model with byte
// fallback is converted; a unigram model (Viterbi over piece scores), a
// normalizer other than identity (llama.cpp normalizes nothing) and
// collapsed whitespace are refused, as llama.cpp would tokenize those
// differently.

// spPiece is one SentencePiece piece.
type spPiece struct {
	piece string
	score float32
	typ   int32 // sentencepiece's Type: NORMAL 1 ... BYTE 6, as GGUF's token types
}

// spModel is what the converter reads of a tokenizer.model.
type spModel struct {
	pieces []spPiece
	// modelType is TrainerSpec.model_type: UNIGRAM 1, BPE 2, WORD 3,
	// CHAR 4.
	modelType    int64
	byteFallback bool
	// unk, bos, eos and pad are the trainer's ids (-1: none).
	unk, bos, eos, pad int
	// normalizer is NormalizerSpec.name; addDummyPrefix,
	// removeExtraWhitespaces and escapeWhitespaces its settings.
	normalizer                                                string
	addDummyPrefix, removeExtraWhitespaces, escapeWhitespaces bool
	// suffixWhitespace is TrainerSpec.treat_whitespace_as_suffix.
	suffixWhitespace bool
}

const spBPE = 2 // TrainerSpec.ModelType BPE

// errProto reports a malformed protocol buffer.
var errProto = errors.New("malformed protocol buffer")

// protoField is one decoded field: its number and wire type, and the
// varint or fixed value (v) or the bytes of a length-delimited one (b).
type protoField struct {
	num  int
	wire int
	v    uint64
	b    []byte
}

// protoFields decodes the top-level fields of a protocol buffer message.
func protoFields(msg []byte) ([]protoField, error) {
	var out []protoField
	for len(msg) > 0 {
		key, n := binary.Uvarint(msg)
		if n <= 0 {
			return nil, errProto
		}
		msg = msg[n:]
		f := protoField{num: int(key >> 3), wire: int(key & 7)}
		switch f.wire {
		case 0: // varint
			f.v, n = binary.Uvarint(msg)
			if n <= 0 {
				return nil, errProto
			}
			msg = msg[n:]
		case 1: // fixed64
			if len(msg) < 8 {
				return nil, errProto
			}
			f.v, msg = binary.LittleEndian.Uint64(msg), msg[8:]
		case 2: // length-delimited
			l, n := binary.Uvarint(msg)
			if n <= 0 || l > uint64(len(msg)-n) {
				return nil, errProto
			}
			f.b, msg = msg[n:n+int(l)], msg[n+int(l):]
		case 5: // fixed32
			if len(msg) < 4 {
				return nil, errProto
			}
			f.v, msg = uint64(binary.LittleEndian.Uint32(msg)), msg[4:]
		default:
			return nil, errProto
		}
		out = append(out, f)
	}
	return out, nil
}

// readSPModel reads and checks dir's tokenizer.model.
func readSPModel(path string) (*spModel, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	m, err := parseSPModel(raw)
	if err != nil {
		return nil, fmt.Errorf("convert: %s: %w", filepath.Base(path), err)
	}
	return m, nil
}

// parseSPModel decodes a ModelProto.
func parseSPModel(raw []byte) (*spModel, error) {
	fields, err := protoFields(raw)
	if err != nil {
		return nil, err
	}
	m := &spModel{modelType: 1, unk: 0, bos: 1, eos: 2, pad: -1, addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true}
	for _, f := range fields {
		switch {
		case f.num == 1 && f.wire == 2: // pieces
			p := spPiece{typ: 1}
			sub, err := protoFields(f.b)
			if err != nil {
				return nil, fmt.Errorf("piece %d: %w", len(m.pieces), err)
			}
			for _, s := range sub {
				switch {
				case s.num == 1 && s.wire == 2:
					p.piece = string(s.b)
				case s.num == 2 && s.wire == 5:
					p.score = math.Float32frombits(uint32(s.v))
				case s.num == 3 && s.wire == 0:
					p.typ = int32(s.v)
				}
			}
			if p.typ < 1 || p.typ > 6 {
				return nil, fmt.Errorf("piece %d (%q) has type %d", len(m.pieces), p.piece, p.typ)
			}
			m.pieces = append(m.pieces, p)
		case f.num == 2 && f.wire == 2: // trainer_spec
			sub, err := protoFields(f.b)
			if err != nil {
				return nil, fmt.Errorf("trainer_spec: %w", err)
			}
			for _, s := range sub {
				if s.wire != 0 {
					continue
				}
				switch s.num {
				case 3:
					m.modelType = int64(s.v)
				case 24:
					m.suffixWhitespace = s.v != 0
				case 35:
					m.byteFallback = s.v != 0
				case 40:
					m.unk = int(int32(s.v))
				case 41:
					m.bos = int(int32(s.v))
				case 42:
					m.eos = int(int32(s.v))
				case 43:
					m.pad = int(int32(s.v))
				}
			}
		case f.num == 3 && f.wire == 2: // normalizer_spec
			sub, err := protoFields(f.b)
			if err != nil {
				return nil, fmt.Errorf("normalizer_spec: %w", err)
			}
			for _, s := range sub {
				switch {
				case s.num == 1 && s.wire == 2:
					m.normalizer = string(s.b)
				case s.num == 3 && s.wire == 0:
					m.addDummyPrefix = s.v != 0
				case s.num == 4 && s.wire == 0:
					m.removeExtraWhitespaces = s.v != 0
				case s.num == 5 && s.wire == 0:
					m.escapeWhitespaces = s.v != 0
				}
			}
		}
	}
	if len(m.pieces) == 0 {
		return nil, errors.New("no pieces")
	}
	return m, nil
}

// spmVocab makes the GGUF vocabulary of a SentencePiece model, after
// checking that llama.cpp tokenizes as it does.
func spmVocab(m *spModel) (*vocab, error) {
	switch {
	case m.modelType != spBPE:
		return nil, fmt.Errorf("%w tokenizer: tokenizer.model is a SentencePiece model of type %d (1 unigram, 3 word, 4 char); llama.cpp's SentencePiece tokenizer encodes as BPE (type 2) does", ErrUnsupported, m.modelType)
	case !m.byteFallback:
		return nil, fmt.Errorf("%w tokenizer: tokenizer.model has no byte fallback; llama.cpp's SentencePiece tokenizer splits unknown characters into byte pieces", ErrUnsupported)
	case m.normalizer != "identity" && m.normalizer != "":
		return nil, fmt.Errorf("%w tokenizer: tokenizer.model normalizes with %q; llama.cpp normalizes nothing (identity)", ErrUnsupported, m.normalizer)
	case m.removeExtraWhitespaces:
		return nil, fmt.Errorf("%w tokenizer: tokenizer.model collapses whitespace (remove_extra_whitespaces); llama.cpp's SentencePiece tokenizer keeps it", ErrUnsupported)
	case !m.escapeWhitespaces:
		return nil, fmt.Errorf("%w tokenizer: tokenizer.model keeps spaces as they are (escape_whitespaces false); llama.cpp's SentencePiece tokenizer writes them as ▁", ErrUnsupported)
	case m.suffixWhitespace:
		return nil, fmt.Errorf("%w tokenizer: tokenizer.model puts ▁ after words (treat_whitespace_as_suffix); llama.cpp's SentencePiece tokenizer puts it before", ErrUnsupported)
	}
	n := len(m.pieces)
	v := &vocab{model: kindSPM, bos: -1, eos: -1, unk: -1, pad: -1, sep: -1, cls: -1, mask: -1, eot: -1, eom: -1,
		tokens: make([]string, n), scores: make([]float32, n), types: make([]int32, n)}
	for i, p := range m.pieces {
		v.tokens[i], v.scores[i], v.types[i] = p.piece, p.score, p.typ
		if p.typ == tokByte && !byteTokenRE.MatchString(p.piece) {
			return nil, fmt.Errorf("convert: tokenizer.model: byte piece %d is %q, not <0xXX>", i, p.piece)
		}
		if p.typ == tokUserDefined {
			// llama.cpp matches a user-defined token against the text as
			// it is, and prints it as it is: spaces, not ▁ (as for the
			// added tokens below).
			v.tokens[i] = strings.ReplaceAll(p.piece, "▁", " ")
		}
	}
	for _, id := range []*int{&m.unk, &m.bos, &m.eos, &m.pad} {
		if *id >= n {
			return nil, fmt.Errorf("convert: tokenizer.model: special token id %d is outside its %d pieces", *id, n)
		}
	}
	v.unk, v.bos, v.eos, v.pad = m.unk, m.bos, m.eos, m.pad
	if !m.addDummyPrefix {
		f := false
		v.addSpacePrefix = &f
	}
	return v, nil
}

// readVocabSPM reads the vocabulary of a checkpoint that has
// tokenizer.model and no tokenizer.json: the SentencePiece pieces, then
// added_tokens.json and tokenizer_config.json's added_tokens_decoder over
// them (as convert_hf_to_gguf.py reads them: ids at or above config.json's
// vocab_size ignored, a special one a control token, another
// user-defined), then the special tokens.
func readVocabSPM(dir string, cfg *hfConfig, arch archSpec) (*vocab, error) {
	if arch.encoder() {
		return nil, fmt.Errorf("%w tokenizer: %s is converted only with a WordPiece tokenizer.json, not a tokenizer.model", ErrUnsupported, arch.hf)
	}
	m, err := readSPModel(filepath.Join(dir, "tokenizer.model"))
	if err != nil {
		return nil, err
	}
	v, err := spmVocab(m)
	if err != nil {
		return nil, err
	}
	var added map[string]int
	if err := readOptionalJSON(filepath.Join(dir, "added_tokens.json"), &added); err != nil {
		return nil, err
	}
	var tc struct {
		Decoder map[string]struct {
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens_decoder"`
	}
	if err := readOptionalJSON(filepath.Join(dir, "tokenizer_config.json"), &tc); err != nil {
		return nil, err
	}
	set := func(id int, content string, typ int32) {
		if cfg.VocabSize > 0 && id >= cfg.VocabSize {
			slog.Warn("convert: added token ignored: its id is outside config.json's vocab_size", "token", content, "id", id, "vocab_size", cfg.VocabSize)
			return
		}
		for len(v.tokens) <= id {
			n := len(v.tokens)
			v.tokens, v.scores, v.types = append(v.tokens, fmt.Sprintf("[PAD%d]", n)), append(v.scores, padScore), append(v.types, tokUnused)
		}
		if v.types[id] != tokUnused && v.tokens[id] != content {
			slog.Warn("convert: an added token replaces a SentencePiece piece", "id", id, "piece", v.tokens[id], "token", content)
		}
		v.tokens[id], v.scores[id], v.types[id] = content, -1000, typ
	}
	for _, tok := range slices.Sorted(maps.Keys(added)) {
		if id := added[tok]; id >= 0 {
			set(id, tok, tokUserDefined)
		} else {
			return nil, fmt.Errorf("convert: added_tokens.json: %q has negative id %d", tok, id)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(tc.Decoder)) {
		id, err := strconv.Atoi(key)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("convert: tokenizer_config.json: added_tokens_decoder key %q is not a token id", key)
		}
		d := tc.Decoder[key]
		if d.Special || looksSpecial(d.Content) {
			set(id, d.Content, tokControl)
		} else {
			set(id, strings.ReplaceAll(d.Content, "▁", " "), tokUserDefined)
		}
	}
	if err := v.readSpecial(dir, cfg, nil); err != nil {
		return nil, err
	}
	// With no BOS, EOS or padding named by the checkpoint's files, the
	// tokenizer's own; with no BOS at all, none is added (llama.cpp would
	// take token 1 for it).
	for _, p := range []struct {
		dst     *int
		trainer int
	}{{&v.bos, m.bos}, {&v.eos, m.eos}, {&v.pad, m.pad}} {
		if *p.dst < 0 && p.trainer >= 0 && p.trainer < len(v.tokens) {
			*p.dst = p.trainer
		}
	}
	if v.bos < 0 && v.addBOS == nil {
		f := false
		v.addBOS = &f
	}
	if err := v.checkBytes(); err != nil {
		return nil, err
	}
	return v, nil
}

// checkBytes checks that a byte-fallback vocabulary has all 256 byte
// tokens: llama.cpp's SentencePiece tokenizer looks up the byte token of
// any character it has no piece for, and a missing one throws out of the
// C API, which ends the program.
func (v *vocab) checkBytes() error {
	have := make([]bool, 256)
	for i, t := range v.tokens {
		if v.types[i] != tokByte || !byteTokenRE.MatchString(t) {
			continue
		}
		b, err := strconv.ParseUint(t[3:5], 16, 8)
		if err == nil {
			have[b] = true
		}
	}
	if i := slices.Index(have, false); i >= 0 {
		return fmt.Errorf("convert: tokenizer.model has byte fallback but no byte token <0x%02X> (or an added token replaced it)", i)
	}
	return nil
}

// readOptionalJSON decodes the JSON file at path into v; a missing file
// leaves v as it is.
func readOptionalJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("convert: %s: %w", filepath.Base(path), err)
	}
	return nil
}
