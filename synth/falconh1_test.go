package synth

import (
	"slices"
	"testing"
)

// tinyFalconH1 is a small Falcon-H1 shape: heads of 32 whose product with
// the heads (128) is not the hidden size, a Mamba-2 inner size of 4 heads of
// 24 in 2 groups, and its own output matrix.
var tinyFalconH1 = Shape{Name: "tiny-falcon-h1", Arch: "falcon-h1", Vocab: 1000, Embd: 64, FF: 96, Layers: 3, Heads: 4, KVHeads: 2, HeadSize: 32,
	Context: 512, RopeTheta: 1e11, NormEps: 1e-5, SSMHeads: 4, SSMHeadDim: 24, SSMState: 16, SSMGroups: 2, SSMConv: 4}

// TestFalconH1 writes a Falcon-H1 shape in F32, Q8_0 and Q4_0 (createChecked
// checks the sizes WeightBytes gives): the Mamba-2 keys, per-layer KV heads
// in every layer, the MLP norm under llama.cpp's name for it, attention
// and Mamba-2 tensors in every block; llama.cpp loads it as a recurrent
// model and decodes a few hundred tokens to finite logits.
func TestFalconH1(t *testing.T) {
	s := tinyFalconH1
	for _, q := range []string{"F32", "Q8_0", "Q4_0"} {
		t.Run(q, func(t *testing.T) {
			path, f := createChecked(t, s, q)
			checkUints(t, f, map[string]uint64{"ssm.inner_size": 96, "ssm.time_step_rank": 4, "ssm.group_count": 2, "ssm.state_size": 16,
				"ssm.conv_kernel": 4, "attention.key_length": 32, "attention.head_count": 4})
			if kv, ok := f.LayerKVHeads(s.Layers); !ok || !slices.Equal(kv, []uint64{2, 2, 2}) {
				t.Errorf("KV heads %v (%v)", kv, ok)
			}
			for _, name := range []string{"blk.2.ffn_norm", "blk.2.attn_q.weight", "blk.2.ssm_in.weight", "blk.2.ssm_a", "blk.2.ffn_gate.weight", "output.weight"} {
				if _, ok := f.Tensor(name); !ok {
					t.Errorf("%s missing", name)
				}
			}
			if _, ok := f.Tensor("blk.0.ffn_norm.weight"); ok {
				t.Error("ffn_norm.weight written: this llama.cpp looks up blk.N.ffn_norm")
			}
			decodeLong(t, path, s)
		})
	}
}

// TestFalconH1Shapes: Falcon-H1 7B has the parameters its Hugging Face page
// gives (7.59B), a KV cache and a recurrent state in every layer; shapes
// llama.cpp cannot load are refused.
func TestFalconH1Shapes(t *testing.T) {
	s := Shapes["falcon-h1-7b"]
	if got := float64(s.Params()); got < 7.55e9 || got > 7.63e9 {
		t.Errorf("%.4g parameters, want about 7.59e9", got)
	}
	kv, rec := s.LayerKVHeads(), s.LayerRecurrent()
	if s.KVLayers() != 44 || len(kv) != 44 || slices.Contains(kv, 0) || slices.Contains(rec, false) ||
		s.RecurrentBytes() != 4*(3*(3072+2*256)+256*3072) {
		t.Errorf("%d KV layers, KV heads %v, recurrent %v, %d bytes of state per layer", s.KVLayers(), kv, rec, s.RecurrentBytes())
	}
	for name, edit := range map[string]func(*Shape){
		"no Mamba-2 head size":             func(s *Shape) { s.SSMHeadDim = 0 },
		"inner size of 4×20":               func(s *Shape) { s.SSMHeadDim = 20 },
		"groups not dividing heads":        func(s *Shape) { s.SSMGroups = 3 },
		"a convolution of 5 (CUDA aborts)": func(s *Shape) { s.SSMConv = 5 },
		"experts":                          func(s *Shape) { s.Experts, s.ExpertsUsed = 4, 2 },
		"attention layers":                 func(s *Shape) { s.AttnLayers = []int{1} },
		"a pattern":                        func(s *Shape) { s.Pattern = "M*M" },
	} {
		s := tinyFalconH1
		edit(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
