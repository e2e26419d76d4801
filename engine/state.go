package engine

// #include <stdlib.h>
// #include "llama_api.h"
import "C"

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// ErrState is wrapped by the error for a saved sequence that cannot be
// restored: not a file SaveSequence wrote (for this user), damaged, or made
// with another model, other adapters, or a context it does not fit.
var ErrState = errors.New("engine: saved sequence does not fit")

// stateMagic opens a file SaveSequence writes.
const stateMagic = "LLMSEQ\x00\x02"

// stateHeader describes a saved sequence. llama.cpp aborts the process on
// some inconsistent state data, so the data is only handed to it once its
// MAC (with a key of this user's, stateKey: a file that is not one this
// user's SaveSequence wrote cannot pass), its model and adapters, and its
// size are checked.
type stateHeader struct {
	Model  string `json:"model"`  // the model's and its adapters' identity (Context.stateIdentity)
	Tokens int    `json:"tokens"` // tokens saved (int32 each) after the header
	Bytes  int64  `json:"bytes"`  // llama.cpp's state data, after the tokens
	MAC    string `json:"mac"`    // HMAC-SHA256 of the identity, the tokens and the state data
}

// SaveSequence writes the memory of sequence seq (its KV cache) and tokens,
// the tokens it holds, to path, replacing it only once complete; with
// LoadSequence a later process resumes from them instead of decoding them
// again (llama-cli's --prompt-cache). A recurrent model's state is not
// saved.
func (c *Context) SaveSequence(path string, seq SeqID, tokens []Token) error {
	if c.model.IsRecurrent() {
		return fmt.Errorf("engine: saving sequence %d: a recurrent model's state: %w", seq, ErrState)
	}
	id, err := c.stateIdentity()
	if err != nil {
		return err
	}
	key, err := stateKey()
	if err != nil {
		return err
	}
	if err := c.lock(); err != nil {
		return err
	}
	if err := c.checkSeq(seq); err != nil {
		c.mu.Unlock()
		return err
	}
	size := C.llama_state_seq_get_size(c.c, C.llama_seq_id(seq))
	data := make([]byte, int(size))
	var n C.size_t
	if size > 0 {
		n = C.llama_state_seq_get_data(c.c, (*C.uint8_t)(unsafe.Pointer(&data[0])), size, C.llama_seq_id(seq))
	}
	c.mu.Unlock()
	if size == 0 || n != size {
		return fmt.Errorf("engine: saving sequence %d: llama.cpp gave %d of %d bytes of state", seq, n, size)
	}
	toks := make([]byte, 4*len(tokens))
	for i, t := range tokens {
		binary.LittleEndian.PutUint32(toks[4*i:], uint32(t))
	}
	hdr, err := json.Marshal(stateHeader{Model: id, Tokens: len(tokens), Bytes: int64(len(data)), MAC: stateMAC(key, id, toks, data)})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString(stateMagic)
	binary.Write(&buf, binary.LittleEndian, uint32(len(hdr)))
	buf.Write(hdr)
	buf.Write(toks)
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("engine: saving sequence: %w", err)
	}
	_, err = tmp.Write(buf.Bytes())
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("engine: saving sequence: %w", err)
	}
	return nil
}

// maxStateHeader bounds a saved sequence's JSON header.
const maxStateHeader = 1 << 16

// LoadSequence restores into sequence seq, which it clears first, what
// SaveSequence wrote to path, and returns the tokens it holds. A file that
// is not one (or was written with another user's key), is damaged, was
// made with another model or other adapters, or holds more tokens than the
// context does, is an error wrapping ErrState, checked before llama.cpp
// reads anything; llama.cpp refuses a state made with other cache types.
func (c *Context) LoadSequence(path string, seq SeqID) ([]Token, error) {
	if c.model.IsRecurrent() {
		return nil, fmt.Errorf("engine: loading %s: a recurrent model's state: %w", path, ErrState)
	}
	id, err := c.stateIdentity()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("engine: loading sequence: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("engine: loading sequence: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("engine: %s: "+format+": %w", append(append([]any{path}, args...), ErrState)...)
	}
	var pre [len(stateMagic) + 4]byte
	if _, err := io.ReadFull(f, pre[:]); err != nil || string(pre[:len(stateMagic)]) != stateMagic {
		return nil, bad("not a saved sequence")
	}
	n := int64(binary.LittleEndian.Uint32(pre[len(stateMagic):]))
	if n > maxStateHeader || n > st.Size() {
		return nil, bad("a header of %d bytes", n)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(f, raw); err != nil {
		return nil, bad("truncated")
	}
	var hdr stateHeader
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return nil, bad("header: %v", err)
	}
	rest := st.Size() - int64(len(pre)) - n
	switch {
	case hdr.Model != id:
		return nil, bad("saved with another model or other LoRA adapters")
	case hdr.Tokens < 0 || hdr.Tokens > c.nCtx:
		return nil, bad("%d tokens, the context holds %d", hdr.Tokens, c.nCtx)
	case hdr.Bytes <= 8 || rest != 4*int64(hdr.Tokens)+hdr.Bytes:
		return nil, bad("%d bytes after the header, not %d tokens and %d bytes of state", rest, hdr.Tokens, hdr.Bytes)
	}
	body := make([]byte, rest)
	if _, err := io.ReadFull(f, body); err != nil {
		return nil, bad("truncated")
	}
	toks, data := body[:4*hdr.Tokens], body[4*hdr.Tokens:]
	key, err := stateKey()
	if err != nil {
		return nil, err
	}
	if !hmac.Equal([]byte(stateMAC(key, id, toks, data)), []byte(hdr.MAC)) {
		return nil, bad("damaged, or saved by another user (its MAC disagrees)")
	}
	tokens := make([]Token, hdr.Tokens)
	for i := range tokens {
		tokens[i] = Token(int32(binary.LittleEndian.Uint32(toks[4*i:])))
		if tokens[i] < 0 || int(tokens[i]) >= c.model.VocabSize() {
			return nil, bad("token %d is id %d, outside the vocabulary", i, tokens[i])
		}
	}
	// The KV cache's state opens with its streams and the cells of the
	// first: one stream (a unified cache) of at most as many cells as
	// tokens.
	if streams, cells := binary.LittleEndian.Uint32(data), binary.LittleEndian.Uint32(data[4:]); streams != 1 || int64(cells) > int64(hdr.Tokens) {
		return nil, bad("a state of %d streams and %d cells for %d tokens", streams, cells, hdr.Tokens)
	}
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq); err != nil {
		return nil, err
	}
	mem := C.llama_get_memory(c.c)
	C.llama_memory_seq_rm(mem, C.llama_seq_id(seq), -1, -1)
	takeLastError()
	got := C.llama_state_seq_set_data(c.c, (*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data)), C.llama_seq_id(seq))
	if got == 0 {
		C.llama_memory_seq_rm(mem, C.llama_seq_id(seq), -1, -1)
		reason := takeLastError()
		if reason == "" {
			reason = "llama.cpp refused it"
		}
		return nil, bad("%s", reason)
	}
	lo, hi := C.llama_memory_seq_pos_min(mem, C.llama_seq_id(seq)), C.llama_memory_seq_pos_max(mem, C.llama_seq_id(seq))
	if len(tokens) > 0 && (lo != 0 || int(hi) != len(tokens)-1) {
		C.llama_memory_seq_rm(mem, C.llama_seq_id(seq), -1, -1)
		return nil, bad("the state holds positions %d to %d for %d tokens", lo, hi, len(tokens))
	}
	return tokens, nil
}

// stateMAC is the MAC of a saved sequence.
func stateMAC(key []byte, id string, toks, data []byte) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s\n", id)
	m.Write(toks)
	m.Write(data)
	return hex.EncodeToString(m.Sum(nil))
}

var (
	stateKeyOnce sync.Once
	stateKeyVal  []byte
	stateKeyErr  error
)

// stateKey returns this user's key for saved sequences: 32 random bytes in
// <user config dir>/llm/state.key, made on first use (mode 0600).
func stateKey() ([]byte, error) {
	stateKeyOnce.Do(func() {
		dir, err := os.UserConfigDir()
		if err != nil {
			stateKeyErr = fmt.Errorf("engine: the key for saved sequences: %w", err)
			return
		}
		path := filepath.Join(dir, "llm", "state.key")
		if b, err := os.ReadFile(path); err == nil && len(b) == 32 {
			stateKeyVal = b
			return
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			stateKeyErr = fmt.Errorf("engine: the key for saved sequences: %w", err)
			return
		}
		key := make([]byte, 32)
		rand.Read(key)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			stateKeyErr = fmt.Errorf("engine: the key for saved sequences: %w", err)
			return
		}
		if err := os.WriteFile(path, key, 0o600); err != nil {
			stateKeyErr = fmt.Errorf("engine: the key for saved sequences: %w", err)
			return
		}
		stateKeyVal = key
	})
	return stateKeyVal, stateKeyErr
}

// stateIdentity tells the context's weights from others: the model's
// identity and its adapters' with their scales.
func (c *Context) stateIdentity() (string, error) {
	id, err := c.model.identity()
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	parts := make([]string, 0, len(c.adapters))
	for a, scale := range c.adapters {
		parts = append(parts, fmt.Sprintf("%s*%g", a.digest, scale))
	}
	c.mu.Unlock()
	if len(parts) == 0 {
		return id, nil
	}
	slices.Sort(parts)
	sum := sha256.Sum256([]byte(id + "+" + strings.Join(parts, "+")))
	return hex.EncodeToString(sum[:]), nil
}

// identity returns a digest that tells the model's file from another's:
// of its size, its GGUF header and the first 64 KiB of its tensor data.
func (m *Model) identity() (string, error) {
	m.identityOnce.Do(func() {
		m.identityHex, m.identityErr = fileIdentity(m.path, m.header.DataOffset+64<<10)
	})
	return m.identityHex, m.identityErr
}

// fileIdentity is a digest of the file at path: its size and its first n
// bytes (all of it when n < 0).
func fileIdentity(path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", st.Size())
	var r io.Reader = f
	if n >= 0 {
		r = io.LimitReader(f, n)
	}
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
