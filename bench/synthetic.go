package bench

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/llm-go/llm/synth"
)

// ParseSynthetic parses a --synthetic value: shape names of package synth
// separated by commas ("llama-3-8b,mistral-7b"), or one shape given by its
// dimensions as comma-separated key=value pairs:
//
//	vocab=32000,embd=4096,ff=11008,layers=32,heads=32,kv_heads=8[,head_dim=128][,experts=8,experts_used=2][,ctx=4096][,rope_theta=10000][,tied=1][,arch=gpt-oss][,name=NAME]
//
// With experts, ff is the size of one expert's MLP; arch=gpt-oss makes an
// OpenAI gpt-oss model (which needs experts) instead of a llama one.
// arch=glm4moe (GLM-4.5) and arch=deepseek2 (DeepSeek's latent attention)
// take dense_layers, dense_ff and shared_experts, glm4moe rope_dim, and
// deepseek2 q_lora, kv_lora, qk_nope, qk_rope and v_head (see
// synth.Shape).
//
// An explicit shape without a name is named after its dimensions
// (custom-v32000-e4096-f11008-l32-h32-kv8), so that its cached file is not
// mistaken for another's.
func ParseSynthetic(spec string) ([]synth.Shape, error) {
	if !strings.Contains(spec, "=") {
		var out []synth.Shape
		for _, name := range strings.Split(spec, ",") {
			s, err := synth.Lookup(strings.TrimSpace(name))
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s := synth.Shape{Context: 4096, RopeTheta: 10000, NormEps: 1e-5}
	ints := map[string]*int{
		"vocab": &s.Vocab, "embd": &s.Embd, "ff": &s.FF, "layers": &s.Layers,
		"heads": &s.Heads, "kv_heads": &s.KVHeads, "ctx": &s.Context,
		"head_dim": &s.HeadSize, "experts": &s.Experts, "experts_used": &s.ExpertsUsed,
		"dense_layers": &s.DenseLayers, "dense_ff": &s.DenseFF, "shared_experts": &s.SharedExperts, "rope_dim": &s.RopeDim,
		"moe_step": &s.MoEStep, "q_lora": &s.QLoraRank, "kv_lora": &s.KVLoraRank, "qk_nope": &s.QKNope, "qk_rope": &s.QKRope, "v_head": &s.VHead,
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("bench: synthetic shape %q: %q is not key=value", spec, kv)
		}
		seen[k] = true
		switch k {
		case "name":
			s.Name = v
			continue
		case "arch":
			s.Arch = v
			continue
		case "rope_theta":
			f, err := strconv.ParseFloat(v, 32)
			if err != nil {
				return nil, fmt.Errorf("bench: synthetic shape: rope_theta %q: %w", v, err)
			}
			s.RopeTheta = float32(f)
			continue
		case "tied":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("bench: synthetic shape: tied %q: %w", v, err)
			}
			s.TiedEmbeddings = b
			continue
		}
		p, ok := ints[k]
		if !ok {
			return nil, fmt.Errorf("bench: synthetic shape: unknown key %q (vocab, embd, ff, layers, heads, kv_heads, head_dim, experts, experts_used, ctx, rope_theta, tied, arch, name; "+
				"for glm4moe and deepseek2 dense_layers, dense_ff, shared_experts, rope_dim, q_lora, kv_lora, qk_nope, qk_rope, v_head; for llama4 moe_step, dense_ff)", k)
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("bench: synthetic shape: %s %q: %w", k, v, err)
		}
		*p = n
	}
	for _, k := range []string{"vocab", "embd", "ff", "layers", "heads"} {
		if !seen[k] {
			return nil, fmt.Errorf("bench: synthetic shape %q: %s is missing", spec, k)
		}
	}
	for k, archs := range map[string]string{
		"dense_layers": "glm4moe deepseek2", "dense_ff": "glm4moe deepseek2 llama4", "shared_experts": "glm4moe deepseek2", "moe_step": "llama4",
		"rope_dim": "glm4moe", "q_lora": "deepseek2", "kv_lora": "deepseek2", "qk_nope": "deepseek2", "qk_rope": "deepseek2", "v_head": "deepseek2",
	} {
		if seen[k] && !slices.Contains(strings.Fields(archs), s.Arch) {
			return nil, fmt.Errorf("bench: synthetic shape: %s applies to arch=%s only", k, strings.ReplaceAll(archs, " ", " or arch="))
		}
	}
	if !seen["kv_heads"] {
		s.KVHeads = s.Heads
	}
	if s.Name == "" {
		s.Name = fmt.Sprintf("custom-v%d-e%d-f%d-l%d-h%d-kv%d", s.Vocab, s.Embd, s.FF, s.Layers, s.Heads, s.KVHeads)
		if s.HeadSize > 0 {
			s.Name += fmt.Sprintf("-hd%d", s.HeadSize)
		}
		if s.Experts > 0 {
			s.Name += fmt.Sprintf("-x%dof%d", s.ExpertsUsed, s.Experts)
		}
		for _, p := range []struct {
			tag string
			v   int
		}{{"d", s.DenseLayers}, {"df", s.DenseFF}, {"s", s.SharedExperts}, {"r", s.RopeDim},
			{"ms", s.MoEStep}, {"ql", s.QLoraRank}, {"kvl", s.KVLoraRank}, {"n", s.QKNope}, {"qr", s.QKRope}, {"vh", s.VHead}} {
			if p.v != 0 {
				s.Name += fmt.Sprintf("-%s%d", p.tag, p.v)
			}
		}
		if s.Arch != "" && s.Arch != "llama" {
			s.Name = strings.Replace(s.Name, "custom-", "custom-"+s.Arch+"-", 1)
		}
	}
	if strings.ContainsAny(s.Name, `/\`) {
		return nil, fmt.Errorf("bench: synthetic shape name %q must not contain a path separator", s.Name)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return []synth.Shape{s}, nil
}
