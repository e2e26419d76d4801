package gguf

import "fmt"

// fileTypes names llama.cpp's llama_ftype values, which general.file_type
// holds.
var fileTypes = map[uint64]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
	10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
	16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
	22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
	28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}

// FileTypeName names a llama_ftype value (general.file_type) as llama.cpp
// does, e.g. "Q4_K_M"; an unknown value is "file type N".
func FileTypeName(ft uint64) string {
	if n, ok := fileTypes[ft]; ok {
		return n
	}
	return fmt.Sprintf("file type %d", ft)
}

// DominantType returns the name of the tensor type that holds most of the
// file's parameters (ties go to the name first in order), and whether it
// is the only type: what a file without general.file_type is quantized as.
func (f *File) DominantType() (name string, only bool) {
	count := map[string]uint64{}
	for _, t := range f.Tensors {
		count[t.Type.String()] += t.Elements()
	}
	var most uint64
	for k, v := range count {
		if v > most || v == most && k < name {
			name, most = k, v
		}
	}
	return name, len(count) == 1
}
