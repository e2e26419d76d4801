package engine

// #include <stdlib.h>
// #include "llama_api.h"
import "C"

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"unsafe"
)

// ErrState is wrapped by the error for a saved sequence that cannot be
// restored: not a file SaveSequence wrote, damaged, or made with another
// model or a context it does not fit.
var ErrState = errors.New("engine: saved sequence does not fit")

// stateMagic opens a file SaveSequence writes.
const stateMagic = "LLMSEQ\x00\x01"

// stateHeader describes a saved sequence. llama.cpp aborts the process on
// some inconsistent state data, so the data is only handed to it once its
// digest, its model and its size are checked.
type stateHeader struct {
	Model  string `json:"model"`  // the model's identity (Model.identity)
	Tokens int    `json:"tokens"` // tokens saved (int32 each) after the header
	Bytes  int64  `json:"bytes"`  // llama.cpp's state data, after the tokens
	SHA256 string `json:"sha256"` // of the tokens and the state data
}

// SaveSequence writes the memory of sequence seq (its KV cache) and tokens,
// the tokens it holds, to path, replacing it only once complete; with
// LoadSequence a later process resumes from them instead of decoding them
// again (llama-cli's --prompt-cache).
func (c *Context) SaveSequence(path string, seq SeqID, tokens []Token) error {
	id, err := c.model.identity()
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
	h := sha256.New()
	h.Write(toks)
	h.Write(data)
	hdr, err := json.Marshal(stateHeader{Model: id, Tokens: len(tokens), Bytes: int64(len(data)), SHA256: hex.EncodeToString(h.Sum(nil))})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString(stateMagic)
	binary.Write(&buf, binary.LittleEndian, uint32(len(hdr)))
	buf.Write(hdr)
	buf.Write(toks)
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("engine: saving sequence: %w", err)
	}
	_, err = tmp.Write(buf.Bytes())
	if err == nil {
		_, err = tmp.Write(data)
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
// is not one, is damaged (its digest disagrees), was made with another
// model, or holds more tokens than the context does, is an error wrapping
// ErrState, checked before llama.cpp reads anything; llama.cpp refuses a
// state made with other cache types.
func (c *Context) LoadSequence(path string, seq SeqID) ([]Token, error) {
	id, err := c.model.identity()
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
	switch rest := st.Size() - int64(len(pre)) - n; {
	case hdr.Model != id:
		return nil, bad("saved with another model")
	case hdr.Tokens < 0 || hdr.Bytes <= 0 || rest != 4*int64(hdr.Tokens)+hdr.Bytes:
		return nil, bad("%d bytes after the header, not %d tokens and %d bytes of state", rest, hdr.Tokens, hdr.Bytes)
	case hdr.Tokens > c.nCtx:
		return nil, bad("%d tokens, the context holds %d", hdr.Tokens, c.nCtx)
	}
	body := make([]byte, st.Size()-int64(len(pre))-n)
	if _, err := io.ReadFull(f, body); err != nil {
		return nil, bad("truncated")
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != hdr.SHA256 {
		return nil, bad("damaged (its digest disagrees)")
	}
	tokens := make([]Token, hdr.Tokens)
	for i := range tokens {
		tokens[i] = Token(int32(binary.LittleEndian.Uint32(body[4*i:])))
		if tokens[i] < 0 || int(tokens[i]) >= c.model.VocabSize() {
			return nil, bad("token %d is id %d, outside the vocabulary", i, tokens[i])
		}
	}
	data := body[4*hdr.Tokens:]
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
	return tokens, nil
}

// identity returns a digest that tells the model's file from another's:
// of its size, its GGUF header and the first 64 KiB of its tensor data.
func (m *Model) identity() (string, error) {
	m.identityOnce.Do(func() {
		f, err := os.Open(m.path)
		if err != nil {
			m.identityErr = fmt.Errorf("engine: %w", err)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			m.identityErr = fmt.Errorf("engine: %w", err)
			return
		}
		h := sha256.New()
		fmt.Fprintf(h, "%d\n", st.Size())
		if _, err := io.Copy(h, io.LimitReader(f, m.header.DataOffset+64<<10)); err != nil {
			m.identityErr = fmt.Errorf("engine: %w", err)
			return
		}
		m.identityHex = hex.EncodeToString(h.Sum(nil))
	})
	return m.identityHex, m.identityErr
}
