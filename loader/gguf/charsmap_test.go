package gguf

import (
	"encoding/binary"
	"errors"
	"testing"
)

// testCharsmap builds a charsmap of 256 units that maps the byte 'A' to
// "a" (a leaf below the root pointing at replacement 0), with units
// changed by edit.
func testCharsmap(edit func(units []uint32)) []byte {
	units := make([]uint32, 256)
	// Unit 65 ('A' from the root, whose base is 0): lcheck 'A', a leaf,
	// base 37, so its value is in unit 65^37 = 100 (replacement 0).
	units[65] = 37<<10 | 1<<8 | 'A'
	if edit != nil {
		edit(units)
	}
	b := binary.LittleEndian.AppendUint32(nil, uint32(4*len(units)))
	for _, u := range units {
		b = binary.LittleEndian.AppendUint32(b, u)
	}
	return append(b, 'a', 0)
}

func TestCheckCharsmap(t *testing.T) {
	if err := CheckCharsmap(testCharsmap(nil)); err != nil {
		t.Errorf("valid charsmap: %v", err)
	}
	for name, cm := range map[string][]byte{
		"short":            {1, 0},
		"no strings":       testCharsmap(nil)[:4+1024],
		"size not units":   append(binary.LittleEndian.AppendUint32(nil, 6), make([]byte, 8)...),
		"no NUL":           append(testCharsmap(nil)[:4+1024], 'a'),
		"leaf outside":     testCharsmap(func(u []uint32) { u[65] = 300<<10 | 1<<8 | 'A' }),
		"value outside":    testCharsmap(func(u []uint32) { u[100] = 9 }),
		"children outside": testCharsmap(func(u []uint32) { u[0] = 300 << 10 }),
	} {
		if err := CheckCharsmap(cm); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
