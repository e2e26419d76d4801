package hub

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// SafetensorsHeader summarizes the header of a .safetensors file.
type SafetensorsHeader struct {
	Tensors int
	Params  uint64            // weights of all tensors (MXFP4 *_blocks count two per byte, their *_scales none)
	DTypes  map[string]uint64 // weights per dtype ("F32", "BF16", ...)
	Meta    map[string]string // __metadata__
}

// maxSafetensorsHeader bounds the JSON header read (the format allows 100 MB).
const maxSafetensorsHeader = 100 << 20

// ReadSafetensorsHeader reads and sums up the JSON header of a safetensors
// file (an 8-byte little-endian length, then the JSON) without reading the
// tensor data.
func ReadSafetensorsHeader(path string) (SafetensorsHeader, error) {
	var h SafetensorsHeader
	f, err := os.Open(path)
	if err != nil {
		return h, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return h, fmt.Errorf("%s: safetensors header length: %w", path, err)
	}
	if n < 2 || n > maxSafetensorsHeader {
		return h, fmt.Errorf("%s: safetensors header length %d out of range", path, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(f, buf); err != nil {
		return h, fmt.Errorf("%s: safetensors header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(buf, &raw); err != nil {
		return h, fmt.Errorf("%s: safetensors header: %w", path, err)
	}
	h.DTypes = map[string]uint64{}
	for name, v := range raw {
		if name == "__metadata__" {
			json.Unmarshal(v, &h.Meta)
			continue
		}
		var t struct {
			DType string   `json:"dtype"`
			Shape []uint64 `json:"shape"`
		}
		if err := json.Unmarshal(v, &t); err != nil {
			return h, fmt.Errorf("%s: tensor %q: %w", path, name, err)
		}
		el := uint64(1)
		for _, d := range t.Shape {
			el *= d
		}
		h.Tensors++
		switch {
		case t.DType == "U8" && strings.HasSuffix(name, "_scales"):
			// MXFP4 exponents (gpt-oss): part of their blocks' weights.
			el = 0
		case t.DType == "U8" && strings.HasSuffix(name, "_blocks"):
			el *= 2 // MXFP4: two 4-bit weights per byte
		}
		h.Params += el
		h.DTypes[t.DType] += el
	}
	return h, nil
}
