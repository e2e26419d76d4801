// Package convert turns a Hugging Face checkpoint directory (config.json,
// *.safetensors, tokenizer.json, tokenizer_config.json) into a GGUF file
// that llama.cpp loads, and a PEFT LoRA adapter into a GGUF adapter
// (ConvertLoRA, LoRAFile).
//
// Supported architectures (config.json "architectures"):
//
//   - LlamaForCausalLM → GGUF arch "llama". The q_proj and k_proj rows are
//     permuted from Hugging Face's rotate_half layout into the adjacent-pair
//     layout llama.cpp's llama arch rotates, as convert_hf_to_gguf.py does.
//   - MistralForCausalLM → GGUF arch "llama", exactly as Llama (as
//     convert_hf_to_gguf.py does); a sliding_window in config.json is
//     ignored, as llama.cpp's llama arch does.
//   - Mistral3ForConditionalGeneration (Mistral Small 3.1 and 3.2,
//     Magistral Small, Devstral Small) → GGUF arch "llama": its
//     text_config and language model, as Mistral; the vision tower and
//     projector are skipped (llama.cpp reads them from a separate mmproj
//     file, which this package does not write).
//   - LlavaForConditionalGeneration whose text model is Llama's or
//     Mistral's (LLaVA 1.5, Pixtral 12B, Apriel 1.5 15B Thinker) → GGUF
//     arch "llama": its text_config and language model, as Mistral; the
//     vision tower and projector are skipped.
//   - Ministral3ForCausalLM, and Mistral3ForConditionalGeneration whose
//     text model is Ministral 3 (Ministral 3 3B/8B/14B, Devstral Small 2)
//     → GGUF arch "mistral3": as Mistral, plus Llama 4's attention
//     temperature (llama_4_scaling_beta as attention.temperature_scale)
//     over yarn rope scaling (mscale_all_dim as
//     rope.scaling.yarn_log_multiplier). See ministral3.go.
//   - Qwen2ForCausalLM → GGUF arch "qwen2", with the q/k/v biases and no
//     permutation (llama.cpp uses NEOX rope for qwen2). Tied embeddings
//     write no output tensor.
//   - Qwen3ForCausalLM → GGUF arch "qwen3": as Qwen2 but without the q/k/v
//     biases and with the per-head RMS norm weights q_norm and k_norm
//     (blk.N.attn_q_norm.weight, blk.N.attn_k_norm.weight); head_dim comes
//     from config.json.
//   - Qwen3ForCausalLM whose model card is Qwen3-Reranker's → GGUF arch
//     "qwen3" as a reranker (rank pooling on its "yes" and "no" rows);
//     see qwen3rerank.go.
//   - Qwen2VLForConditionalGeneration, Qwen2_5_VLForConditionalGeneration
//     and Qwen3VLForConditionalGeneration → GGUF arch "qwen2" and "qwen3",
//     and Qwen3VLMoeForConditionalGeneration → "qwen3moe" (its fused
//     experts split and transposed per expert):
//     their text model (text_config when there is one; the language
//     model's tensors in either layout), for text: the multimodal rope's
//     sections (mrope_section) rotate text tokens as a plain rope does,
//     and the vision tower ("visual.") is skipped.
//   - Qwen3MoeForCausalLM → GGUF arch "qwen3moe" and MixtralForCausalLM →
//     "llama" (permuted as Llama): mixtures of experts. Each layer's router
//     (mlp.gate, block_sparse_moe.gate) becomes blk.N.ffn_gate_inp.weight,
//     kept F32, and the experts' projections are stacked, expert first,
//     into blk.N.ffn_{gate,up,down}_exps.weight; expert_count,
//     expert_used_count and (Qwen3-MoE) expert_feed_forward_length are
//     written. llama.cpp's graphs put experts in every layer and
//     renormalise the top-k weights, so norm_topk_prob false,
//     decoder_sparse_step other than 1 and mlp_only_layers are refused.
//   - Qwen2MoeForCausalLM → "qwen2moe": as Qwen3-MoE but with Qwen2's q/k/v
//     biases, no q/k norms and no renormalisation of the top-k weights
//     (norm_topk_prob true is refused), and a shared expert
//     (ffn_{gate,up,down}_shexp, its sigmoid gate ffn_gate_inp_shexp kept
//     F32, expert_shared_feed_forward_length).
//   - GptOssForCausalLM (gpt-oss-20b, gpt-oss-120b) → GGUF arch "gpt-oss":
//     Qwen2's q/k/v biases plus the output projection's, per-head
//     attention sinks (attn_sinks.weight), post_attention_layernorm as
//     post_attention_norm, the router with its bias as ffn_gate_inp, and
//     each layer's fused experts split into ffn_{gate,up,down}_exps and
//     their biases (gate and up interleaved by row in gate_up_proj). The
//     released MXFP4 experts (*_blocks and *_scales, U8) are repacked
//     losslessly into ggml's MXFP4 blocks whatever Options.Type says, as
//     convert_hf_to_gguf.py keeps them; dequantized checkpoints' experts
//     ([experts, in, out]) are transposed and written as Options.Type.
//     Fields config.json leaves out take GptOssConfig's defaults (yarn
//     rope scaling ×32 over 4096, rope_theta 150000, sliding_window 128);
//     llama.cpp fixes the sliding window to the even layers, the SwiGLU
//     clamp to 7 and the attention biases, so other layer_types,
//     swiglu_limit or attention_bias false are refused. See gptoss.go.
//   - Olmo2ForCausalLM and Olmo3ForCausalLM → GGUF arch "olmo2":
//     unpermuted (NEOX rope), no input norm, post_attention_layernorm and
//     post_feedforward_layernorm after the attention and the MLP
//     (post_attention_norm, post_ffw_norm), q_norm/k_norm over the whole
//     projections; OLMo 3's sliding_window is written and its layer_types
//     must be llama.cpp's fixed pattern (three sliding layers, then a full
//     one); its rope scaling applies to the full layers only. See olmo.go.
//   - OlmoeForCausalLM → GGUF arch "olmoe": pre-norm blocks, q_norm/k_norm
//     over the whole projections, unpermuted, experts in every layer with
//     the top-k weights not renormalised; as many KV heads as heads, no
//     clip_qkv. See olmo.go.
//   - SmolLM3ForCausalLM → GGUF arch "smollm3": as Llama (permuted q/k),
//     without attention biases; every fourth layer has no rotary
//     embedding, which llama.cpp's graph hard-codes, so a config.json whose
//     no_rope_layers says otherwise is refused.
//   - CohereForCausalLM (Command R 35B, Aya 23 and Aya Expanse) → GGUF
//     arch "command-r": LayerNorms without bias, attention and MLP in
//     parallel on one norm, interleaved rope, the logit scale; see
//     cohere.go.
//   - Cohere2ForCausalLM (Command R7B, Command A) → GGUF arch "cohere2":
//     as Command R, with sliding-window layers that rotate and every
//     fourth layer global without rope; see cohere.go.
//   - Ernie4_5ForCausalLM (ERNIE 4.5 0.3B) → GGUF arch "ernie4_5": Llama's
//     blocks with the rope on interleaved pairs, so q/k are written
//     unpermuted (llama.cpp's "norm" rope); use_bias true (biases on the
//     MLP too) is refused.
//   - Ernie4_5_MoeForCausalLM (ERNIE 4.5 21B-A3B, 300B-A47B) → GGUF arch
//     "ernie4_5-moe": that attention, dense leading layers, then experts
//     with a softmax router, a selection bias and shared experts; see
//     ernie.go.
//   - ArceeForCausalLM (AFM-4.5B) → GGUF arch "arcee": as Llama (permuted
//     q/k, llama3 or yarn rope scaling) with an MLP of up_proj, ReLU² and
//     down_proj and no gate; hidden_act must be relu2.
//   - GraniteForCausalLM → GGUF arch "granite": as Llama (permuted q/k),
//     with embedding_multiplier, residual_multiplier, attention_multiplier
//     and logits_scaling as embedding_scale, residual_scale,
//     attention.scale and logit_scale (1 when absent, as GraniteConfig's
//     defaults; llama.cpp requires all four).
//   - GraniteMoeForCausalLM (Granite 3.x MoE) → GGUF arch "granitemoe":
//     Granite with experts in every layer, fused per layer as
//     block_sparse_moe.input_linear (each expert's gate rows, then its
//     up rows) and output_linear, split into ffn_{gate,up,down}_exps; the
//     router's top-k logits are softmaxed. GraniteMoeShared is refused.
//   - GraniteMoeHybridForCausalLM (Granite 4.0) → GGUF arch
//     "granitehybrid": Mamba-2 and attention layers, a shared MLP and
//     optional GraniteMoE experts; without Mamba-2 layers "granite" or
//     "granitemoe"; see granite4.go.
//   - Starcoder2ForCausalLM (StarCoder2) → GGUF arch "starcoder2":
//     LayerNorms, biases, an ungated GELU MLP, the rope rotating halves;
//     the context cut to the sliding window llama.cpp does not apply; see
//     starcoder2.go.
//   - NemotronForCausalLM (Nemotron-Mini-4B, Minitron 4B) → GGUF arch
//     "nemotron": LayerNorm1P (weights plus 1), an ungated ReLU² MLP, a
//     partial rope; see starcoder2.go.
//   - PhiForCausalLM (Phi-2, Phi-1.5) → GGUF arch "phi2": one LayerNorm
//     before the attention and the MLP side by side, biases, a partial
//     rope, the head's bias; see starcoder2.go.
//   - GPTNeoXForCausalLM (Pythia, GPT-NeoX-20B, Dolly v2) → GGUF arch
//     "gptneox": query_key_value regrouped from per-head to q, k, v
//     blocks, parallel residual, a partial rope; see starcoder2.go.
//   - StableLmForCausalLM (StableLM-3B-4E1T, stable-code-3b, StableLM 2
//     1.6B and 12B) → GGUF arch "stablelm": LayerNorms, a partial rope,
//     optional q/k/v biases, per-head q/k LayerNorms and parallel blocks;
//     see stablelm.go.
//   - DeepseekForCausalLM (DeepSeek-MoE 16B) → GGUF arch "deepseek":
//     Llama's attention, leading dense layers, then experts behind a
//     softmax router with shared experts; see deepseekmoe.go.
//   - MambaForCausalLM (Mamba 130M to 2.8B) and FalconMambaForCausalLM
//     (Falcon Mamba 7B) → GGUF arch "mamba": Mamba-1 blocks (a selective
//     state-space mixer on an RMS norm), FalconMamba's RMS norms of dt, B
//     and C as ssm.dt_b_c_rms; see mamba.go.
//   - Gemma3nForConditionalGeneration and Gemma3nForCausalLM (Gemma 3n E2B
//     and E4B) → GGUF arch "gemma3n": the text model's AltUp streams,
//     LAuReL, per-layer inputs and shared keys and values; see gemma3n.go.
//   - DeciLMForCausalLM (Llama-3.3-Nemotron-Super-49B, Llama-3.1-Nemotron
//     Nano 4B and 51B) → GGUF arch "deci": Llama's blocks with per-layer
//     heads and MLP widths, no-op and linear attention; see deci.go.
//   - Dots1ForCausalLM (dots.llm1) → GGUF arch "dots1": Qwen3's attention
//     and DeepSeek V3's experts (sigmoid scores with a selection bias,
//     shared experts); see dots1.go.
//   - BloomForCausalLM (BLOOM, BLOOMZ) → GGUF arch "bloom": ALiBi,
//     LayerNorms with biases, query_key_value regrouped; see bloom.go.
//   - MiniCPM3ForCausalLM (MiniCPM3-4B) → GGUF arch "minicpm3": DeepSeek
//     V2's latent attention with Llama's MLP and MiniCPM's scales; see
//     minicpm3.go.
//   - InternLM2ForCausalLM (InternLM2, InternLM2.5) → GGUF arch
//     "internlm2": Llama's blocks under InternLM2's names, the fused wqkv
//     split into q, k and v; see internlm2.go.
//   - MiniCPMForCausalLM (MiniCPM 1B/2B, MiniCPM4) → GGUF arch "minicpm":
//     Llama's blocks with MiniCPM's embedding, residual and logit scales;
//     see minicpm.go.
//   - BailingMoeForCausalLM (Ling-lite, Ling-plus, Ling-Coder-lite) → GGUF
//     arch "bailingmoe": query_key_value split, softmax-routed experts with
//     shared experts in every layer; BailingMoeV2ForCausalLM (Ling 2.0,
//     Ring 2.0) → GGUF arch "bailingmoe2": a fused query_key_value with
//     per-head q/k norms and a partial rope, then DeepSeek V3's experts
//     (sigmoid scores with a selection bias, groups, shared experts); see
//     bailing.go.
//   - JambaForCausalLM (Jamba 1.5/1.6 Mini and Large, Jamba Reasoning 3B)
//     → GGUF arch "jamba": attention without positions in some layers,
//     Mamba-1 mixers with normed dt, B and C in the others, experts in
//     some MLPs; see jamba.go.
//   - Mamba2ForCausalLM (Mamba-Codestral 7B) → GGUF arch "mamba2": Mamba-2
//     blocks, the gated norm per group; see mamba.go.
//   - FalconForCausalLM (Falcon-7B/40B/180B, Falcon2-11B) → GGUF arch
//     "falcon": parallel blocks on one or two LayerNorms, query_key_value
//     regrouped to q, k, v blocks; see falcon.go.
//   - OlmoForCausalLM (OLMo 1) → GGUF arch "olmo": Llama's blocks with
//     LayerNorms that have no weights, and clip_qkv as
//     attention.clamp_kqv; see olmo.go.
//   - ExaoneForCausalLM (EXAONE 3.0, 3.5, EXAONE Deep) → GGUF arch
//     "exaone": Llama's blocks under EXAONE's names and config keys, the
//     rope rotating halves (not permuted); see exaone.go.
//   - Exaone4ForCausalLM (EXAONE 4.0) → GGUF arch "exaone4": OLMo 2's
//     post norms with per-head q/k norms, NEOX rope, and in the 64-layer
//     models a sliding window in three layers of every four (the global
//     ones without rope); see olmo.go.
//   - SeedOssForCausalLM (Seed-OSS 36B) → GGUF arch "seed_oss": Qwen2's
//     blocks (NEOX rope, q/k/v biases with attention_bias) whose pre-MLP
//     norm llama.cpp names post_attention_norm; an output or MLP bias is
//     refused.
//   - NemotronHForCausalLM (Nemotron-H, Nemotron Nano 2) → GGUF arch
//     "nemotron_h": blocks of one Mamba-2 mixer, attention without
//     positions or a ReLU² MLP each; with experts in place of the MLPs
//     (Nemotron 3 Nano) "nemotron_h_moe"; see nemotronh.go.
//   - BambaForCausalLM (Bamba-9B) → GGUF arch "granitehybrid": Mamba-2
//     layers with attention in a few (half of each head rotated) and a
//     gated MLP in every layer; see bamba.go.
//   - ApertusForCausalLM (Apertus 8B, 70B) → GGUF arch "apertus": Llama's
//     attention with per-head q/k norms, NEOX rope, an ungated MLP with
//     per-layer xIELU parameters (written as keys); see apertus.go.
//   - FalconH1ForCausalLM (Falcon-H1, Falcon-H1R) → GGUF arch "falcon-h1":
//     attention and a Mamba-2 mixer side by side in every layer, the µP
//     multipliers folded into the weights; see falconh1.go.
//   - Qwen3NextForCausalLM (Qwen3-Next-80B-A3B) → GGUF arch "qwen3next":
//     Gated DeltaNet layers with a gated attention layer in every four,
//     Qwen2-MoE's experts with a shared expert; see qwen3next.go.
//   - MiniMaxM2ForCausalLM (MiniMax-M2, M2.1) → GGUF arch "minimax-m2":
//     Mixtral's experts with a sigmoid router and its selection bias,
//     q/k norms over the whole projections, NEOX rope over rotary_dim;
//     see minimax.go.
//   - Lfm2ForCausalLM (LFM2, LFM2.5) → GGUF arch "lfm2": gated
//     short-convolution layers and attention layers with per-head q/k
//     norms and NEOX rope; Lfm2MoeForCausalLM (LFM2-8B-A1B) → "lfm2moe",
//     with sigmoid-routed experts after the leading dense layers;
//     Lfm2VlForConditionalGeneration (LFM2-VL) → "lfm2", its language
//     model; see lfm2.go.
//   - Llama4ForConditionalGeneration (Llama 4 Scout, Maverick) and
//     Llama4ForCausalLM → GGUF arch "llama4": the language model, with
//     three chunked-attention layers (rope, weightless q/k norms) to one
//     global layer (no rope, attention temperature), and experts every
//     interleave_moe_layer_step layers beside a shared expert, their
//     input scaled by the sigmoid of the router's logit; see llama4.go.
//   - Gemma3TextModel with use_bidirectional_attention (EmbeddingGemma)
//     → GGUF arch "gemma-embedding": Gemma 3's blocks attending both ways
//     (the sliding layers within a symmetric window), mean-pooled (or as
//     its Pooling module says) and projected by its two Dense modules;
//     see gemmaembed.go.
//   - Phi3ForCausalLM (Phi-3 mini and medium; not Phi3SmallForCausalLM)
//     → GGUF arch "phi3": the fused qkv_proj and gate_up_proj weights are
//     kept fused (blk.N.attn_qkv.weight, and blk.N.ffn_up.weight holding
//     the gate then the up rows), unpermuted (llama.cpp uses NEOX rope for
//     phi3); partial_rotary_factor sets rope.dimension_count; the
//     sliding_window and original_max_position_embeddings are written as
//     convert_hf_to_gguf.py does, and longrope scaling (128k models) as
//     described below. head_dim × heads must be hidden_size.
//   - GemmaForCausalLM → GGUF arch "gemma" and Gemma2ForCausalLM → "gemma2":
//     unpermuted (NEOX rope), every RMS norm weight w written as 1+w
//     (Gemma scales by 1+w, llama.cpp by the weight, as
//     convert_hf_to_gguf.py does), the head always tied (an lm_head.weight
//     is skipped; tie_word_embeddings false is refused). Gemma 2's
//     post_attention_layernorm, pre_feedforward_layernorm and
//     post_feedforward_layernorm become post_attention_norm, ffn_norm and
//     post_ffw_norm; attn_logit_softcapping, final_logit_softcapping and
//     sliding_window are written; llama.cpp always soft-caps, always uses
//     the sliding window and takes the query scale from the shape, so
//     configs that turn these off or set another query_pre_attn_scalar
//     are refused. The embedding scaling by sqrt(hidden_size) and the
//     tanh GELU are llama.cpp's graph.
//   - Gemma3ForCausalLM (e.g. gemma-3-1b, gemma-3-270m) and the text model
//     of Gemma3ForConditionalGeneration (gemma-3-4b and larger) → GGUF
//     arch "gemma3": as Gemma 2 (unpermuted, norms written as 1+w, the
//     same post norms) plus the per-head q_norm/k_norm (attn_q_norm,
//     attn_k_norm, also 1+w). For Gemma3ForConditionalGeneration the
//     text_config fields replace the top-level ones, the
//     language_model.model.* (or model.language_model.*) tensors are
//     converted and the vision tower and multi-modal projector tensors
//     are skipped (logged; llama.cpp reads them from a separate mmproj
//     file, which this package does not write). Fields config.json leaves
//     out take transformers' Gemma3TextConfig defaults (rope_theta 1e6,
//     head_dim 256, sliding_window 4096, ...). rope.freq_base is the
//     global layers' rope_theta and a linear rope_scaling is written as
//     the rope scaling keys, which llama.cpp applies, as transformers
//     does, to the global layers only; llama.cpp fixes the rest: every
//     sixth layer (5, 11, ...) global, the others sliding-window with
//     rope base 10000 and no scaling, and the query scale 1/sqrt(head_dim)
//     (1/sqrt(hidden/heads) for 62 layers), so configs whose layer_types
//     (or sliding_window_pattern), rope_local_base_freq or
//     query_pre_attn_scalar differ, and attn_logit_softcapping, other
//     rope scaling types and activations, are refused. A config with no
//     sliding-window layer writes no sliding_window (llama.cpp then treats
//     every layer as global). attention.sliding_window and, when set,
//     final_logit_softcapping are written; transformers 5's
//     rope_parameters with full_attention/sliding_attention objects are
//     read too. With tied embeddings (the default) an lm_head.weight is
//     skipped; an untied head is written as output.weight. Added tokens
//     whose ids are past vocab_size (gemma-3-1b's <image_soft_token>) are
//     dropped, logged, as convert_hf_to_gguf.py drops them.
//   - DeepseekV2ForCausalLM (DeepSeek-V2, V2-Lite, V2.5) and
//     DeepseekV3ForCausalLM (DeepSeek-V3, R1, V3.1)
//     → GGUF arch "deepseek2": multi-head latent attention with kv_b_proj
//     split into attn_k_b and attn_v_b, leading dense layers, routed and
//     shared experts, softmax or sigmoid routing with V3's score
//     correction and expert groups, yarn with mscale_all_dim; the
//     multi-token-prediction layers are skipped. See deepseek.go.
//   - Glm4ForCausalLM (GLM-4-0414, GLM-Z1) → GGUF arch "glm4": sandwich
//     norms, the fused gate_up_proj, partial rope; see glm4moe.go.
//   - GlmForCausalLM (GLM-4-9B-Chat-HF, GLM-4-9B-HF, GLM-Edge 1.5B and 4B
//     Chat) → GGUF arch "chatglm": GLM-4's blocks without the sandwich
//     norms; see glm4moe.go.
//   - Glm4vForConditionalGeneration (GLM-4.1V-9B-Thinking and -Base) →
//     GGUF arch "glm4": its text model (text_config; the language model's
//     tensors), whose multimodal rope rotates text tokens as GLM-4's does;
//     the vision tower ("model.visual.") is skipped. Likewise
//     Glm4vMoeForConditionalGeneration (GLM-4.5V) → GGUF arch "glm4moe".
//   - Glm4MoeForCausalLM (GLM-4.5, GLM-4.5-Air, GLM-4.6) → GGUF arch
//     "glm4moe": q/k/v biases, optional per-head q/k norms, partial NEOX
//     rope, leading dense layers then routed and shared experts with
//     sigmoid routing; the tokenizer as llama.cpp's glm4 with its turn
//     tokens. See glm4moe.go.
//   - NomicBertModel (nomic-embed-text v1 and v1.5) → GGUF arch
//     "nomic-bert": a post-norm encoder with a fused Wqkv, NEOX rope and a
//     SwiGLU MLP; see nomicbert.go.
//   - XLMRobertaModel (bge-m3, multilingual-e5) and
//     XLMRobertaForSequenceClassification (bge-reranker-v2-m3) → GGUF
//     arch "bert": BERT's tensors under "roberta." or none, the position
//     embeddings without their first pad_token_id+1 rows (RoBERTa counts
//     positions from there), the classification head (dense, tanh,
//     out_proj) as cls and cls.output, and the Unigram tokenizer as
//     llama.cpp's "t5" vocabulary (unigram.go). Checkpoints in the layout
//     of Jina's XLM-RoBERTa implementation (jina-reranker-v2: emb_ln,
//     mixer.Wqkv, ...) are read too, their fused projections written as
//     attn_qkv; see xlmrflash.go.
//   - RobertaModel (granite-embedding, all-distilroberta, all-roberta) and
//     RobertaForSequenceClassification → GGUF arch "bert" as XLM-RoBERTa,
//     with its byte-level BPE tokenizer as GPT-2's and the pre-tokenizer
//     "roberta-bpe" (llama.cpp joins a pair with </s> </s>).
//   - XLMRobertaModel with position_embedding_type "rotary"
//     (jina-embeddings-v3, Jina's xlm-roberta-flash-implementation) → GGUF
//     arch "jina-bert-v3": XLM-RoBERTa's encoder with a fused Wqkv and
//     NEOX rope in place of positions; each task's LoRAs (lora_adaptations)
//     become a LoRA adapter GGUF beside the model, lora-TASK-<model file>,
//     the token type's LoRA folded into the word embeddings'; see
//     jinav3.go.
//   - JinaBertModel and JinaBertForMaskedLM (jina-embeddings-v2, its
//     custom modeling code) → GGUF arch "jina-bert-v2": BERT with ALiBi in
//     place of position embeddings and a GEGLU MLP, in the English
//     models' layout or the code model's (q/k LayerNorms, a second
//     attention norm, its GLU halves swapped), with a WordPiece or
//     byte-level BPE (pre-tokenizer jina-v2-code) tokenizer; see
//     jinabert.go.
//   - GPTBigCodeForCausalLM (StarCoder, StarCoderBase, SantaCoder,
//     WizardCoder, SQLCoder) → GGUF arch "starcoder": GPT-2's blocks with
//     nn.Linear weights (not transposed) and multi-query attention, c_attn
//     holding the queries, then one key and one value head (without
//     multi_query, each head's q, k and v in turn, regrouped).
//   - GPT2LMHeadModel → GGUF arch "gpt2": the Conv1D weights, stored
//     [in, out], are transposed; the head is tied to the embeddings.
//   - BertModel (also in the sentence-transformers layout, whose tensors
//     have no "bert." prefix) and BertForMaskedLM → GGUF arch "bert", for
//     embeddings: the word, position and token type embeddings and their
//     LayerNorm (token_embd, position_embd, token_types, token_embd_norm),
//     per layer the query/key/value projections (attn_q/k/v), the
//     attention output and its LayerNorm (attn_output, attn_output_norm),
//     intermediate.dense as ffn_up, output.dense as ffn_down and the output
//     LayerNorm (layer_output_norm), all with their biases; the pooler and
//     the pre-training heads are skipped. context_length is
//     max_position_embeddings, layer_norm_epsilon layer_norm_eps,
//     attention.causal false, tokenizer.ggml.token_type_count
//     type_vocab_size, and pooling_type comes from the sentence-transformers
//     Pooling module (modules.json, or 1_Pooling/config.json): mean, cls or
//     lasttoken; mean when there is none. llama.cpp's bert graph uses the
//     tanh form of GELU; other activations, non-absolute position
//     embeddings and decoders are refused.
//   - BertForSequenceClassification (cross-encoder rerankers) → GGUF arch
//     "bert" as BertModel, with the pooler as cls (a dense layer and tanh)
//     and the classifier as cls.output, pooled with llama.cpp's rank
//     pooling; id2label's labels are written when there are several.
//
// A decoder checkpoint that is a sentence-transformers embedding model
// (Qwen3-Embedding: modules.json and a Pooling module) gets
// {arch}.pooling_type from its pooling (mean, cls or lasttoken), as
// convert_hf_to_gguf.py writes it for Qwen2 and Qwen3, and may have no
// head (Qwen3-Embedding-4B and 8B are untied without one; llama.cpp uses
// the embeddings) nor the "model." prefix on its tensors (saved as the
// base model); modules other than the model, its pooling and Normalize
// (a Dense projection, ...) are refused, for BERT too, except for
// rerankers, whose modules act on the scores.
//
// Rope scaling (rope_scaling, or transformers 5's rope_parameters): "linear"
// and "yarn" are written as {arch}.rope.scaling.* keys; "llama3" (Llama
// 3.1 and later) as the rope_freqs.weight tensor of per-frequency divisors
// llama.cpp's llama arch applies, so only for Llama and Mistral;
// "longrope" (Phi-3 128k, Phi-3.5-mini, Phi-4-mini; also its old name
// "su") as the rope_factors_long.weight and rope_factors_short.weight
// tensors of long_factor and short_factor, rope.scaling.attn_factor and
// rope.scaling.original_context_length, as convert_hf_to_gguf.py writes
// them, so only for Phi-3. llama.cpp picks the long factors for a context
// (per sequence) longer than the original context and the short ones
// otherwise, once per context, where transformers picks by the length of
// the sequence so far. Other types (dynamic, ...) are refused with
// ErrUnsupported.
// Yarn's magnitude (transformers' attention_factor, given or derived from
// mscale and mscale_all_dim) is written as rope.scaling.attn_factor
// relative to the 1 + 0.1·ln(factor) llama.cpp applies itself.
//
// Weights may be F32, F16, BF16 or FP8 (F8_E4M3 with a scale per tensor,
// row or quantization_config.weight_block_size block, as
// transformers' fp8 and compressed-tensors store them): FP8 weights are
// dequantized and written as the output type; see fp8.go.
//
// The vocabulary is taken from tokenizer.json, not from the architecture:
// a BPE model with byte_fallback and a Prepend("▁") normalizer is a
// SentencePiece-style vocabulary and is written as tokenizer.ggml.model
// "llama", with scores derived from the merge ranks; with a normalizer that
// only replaces spaces by "▁" (Gemma's) it is the same with
// tokenizer.ggml.add_space_prefix false. A byte-level BPE
// (ByteLevel pre-tokenizer, no byte_fallback) is written as "gpt2" with its
// merges, for any architecture, and tokenizer.ggml.pre names the
// pre-tokenizer family, which llama.cpp implements with its own regexes:
// gpt-2, llama-bpe (Llama 3), qwen2, gpt-4o (o200k: Phi-4-mini, gpt-oss),
// tekken (Mistral-Nemo, Mistral Small 3), deepseek-llm, deepseek-coder,
// deepseek-v3, falcon, starcoder, command-r or olmo (see PreTokenizers).
// Without tokenizer.json, a SentencePiece tokenizer.model is read instead
// when it is a BPE model with byte fallback, an identity normalizer and
// whitespace kept, which llama.cpp's "llama" tokenizer reproduces (spm.go).
// convert_hf_to_gguf.py identifies the family by a hash of a test
// tokenization, which needs Hugging Face's tokenizer; this package instead
// matches tokenizer.json's pre_tokenizer (its Split regexes and their
// behaviour, ByteLevel, Digits and Punctuation steps and settings) and
// normalizer step for step against what each family's released
// tokenizer.json declares (a Split that keeps the matches of a regex that
// matches every character, Removed with invert, counts as one that
// isolates them), and refuses any other with ErrUnsupported naming the
// steps found. Added tokens marked
// special, or that look special as convert_hf_to_gguf.py decides (<|...|>,
// <｜...｜>, <pad>, ...), are control tokens, other added tokens
// user-defined. Special token ids come from tokenizer_config.json (or
// special_tokens_map.json), then config.json; add_bos/add_eos from
// tokenizer_config.json, else from tokenizer.json's post_processor
// template, as gguf-py's SpecialVocab does. BERT's WordPiece vocabulary
// is written as "bert" in llama.cpp's phantom-space spelling (a
// word-initial piece gets "▁", a "##" continuation loses its "##"), with
// the [UNK], [CLS], [SEP], [PAD] and [MASK] ids (BOS is [CLS], EOS [SEP],
// as gguf-py writes them); llama.cpp always normalizes as a lowercasing
// BertNormalizer with BertPreTokenizer, so other WordPiece tokenizers are
// refused.
//
// Output types (Options.Type) are written in Go: F32, F16, BF16 (rounded
// to nearest even, as ggml) and Q8_0 (blocks of 32 with an F16 scale
// max|x|/127, halves rounded away from zero, exactly as ggml's reference
// quantizer, which llama.cpp's quantizer uses); ToType converts to the
// other llama.cpp types by quantizing an F16 conversion through the
// engine.
//
// Tensors are converted and written one at a time while the output file is
// streamed, each in chunks of a few MiB through reused buffers (one chunk is
// converted while the previous one is written), so neither the model nor a
// whole tensor is held in memory.
package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// ErrUnsupported is wrapped by the error for an architecture, tokenizer or
// option this package does not convert.
var ErrUnsupported = errors.New("convert: unsupported")

// ErrMismatch is wrapped by the error for a checkpoint whose tensors
// disagree with its config.json.
var ErrMismatch = errors.New("convert: checkpoint does not match config.json")

// Options control a conversion.
type Options struct {
	// Type is the output type of the 2-D weight matrices and stacked
	// experts: "f32" (the default when empty), "f16", "bf16" or "q8_0",
	// all written in Go. Norm weights, biases, learned positions, token
	// types and the experts' router are always F32; a Q8_0 matrix whose rows are not a multiple of 32 values is
	// written as F16 (as convert_hf_to_gguf.py does).
	Type string
	// Name is written as general.name; empty uses the directory's name.
	Name string
	// adapterFor, when not empty, is the model file the task adapters are
	// named for (ToType's quantized output), in place of Convert's out.
	adapterFor string
	// Progress, if not nil, is called as the tensor data is written with
	// the bytes of tensor data written so far and the total, for a
	// progress bar. Calls are made one at a time, in order, but may come
	// from a goroutine other than the caller's.
	Progress func(done, total int64)
}

// archSpec describes one supported Hugging Face architecture.
type archSpec struct {
	hf      string // config.json architectures[0]
	gguf    string // general.architecture
	permute bool   // permute q/k rows for adjacent-pair rope
	qkvBias bool   // q/k/v biases are required
	noBias  bool   // attention biases are not accepted (llama.cpp loads none)
	qkNorm  bool   // per-head q_norm/k_norm weights are required
	// ropeFreqs: llama.cpp loads a rope_freqs tensor (llama3 scaling).
	ropeFreqs bool
	// fused: the attention projections are one qkv_proj and the MLP's
	// gate and up projections one gate_up_proj (Phi-3).
	fused bool
	// partialRotary: partial_rotary_factor is honoured.
	partialRotary bool
	// longrope: llama.cpp loads the rope_factors_long/short tensors of
	// longrope scaling (Phi-3 128k, Phi-3.5, Phi-4-mini).
	longrope bool
	// normShift is added to every RMS norm weight (Gemma stores w for a
	// scale of 1+w; llama.cpp multiplies by the weight).
	normShift float32
	// tiedOnly: llama.cpp has no output tensor for the arch; the head is
	// always the embeddings and an lm_head.weight is skipped.
	tiedOnly bool
	// postNorms: Gemma 2's norms after the attention and the MLP, its
	// soft-capping and sliding window.
	postNorms bool
	// gemma3: Gemma 3's config (Gemma3TextConfig defaults, per-layer-type
	// rope and sliding window, query scale, optional final soft-cap);
	// with tied embeddings an lm_head.weight is skipped.
	gemma3 bool
	// moe: a mixture of experts in every layer's MLP, named so.
	moe *moeSpec
	// classifier: a sequence classification head (BERT's pooler and
	// classifier), pooled with llama.cpp's rank pooling: a reranker.
	classifier bool
	// granite: Granite's embedding, residual, attention and logit
	// multipliers are written (llama.cpp requires all four).
	granite bool
	// untiedOnly: llama.cpp requires an output tensor for the arch: tied
	// embeddings are written again as output.weight.
	untiedOnly bool
	// noRopeStep: every noRopeStep-th layer has no rotary embedding, the
	// pattern llama.cpp's graph hard-codes (SmolLM3's 4); config.json's
	// no_rope_layers must be that pattern.
	noRopeStep int
	// vlm: the text model of a vision-language checkpoint
	// (Gemma3ForConditionalGeneration, Mistral3ForConditionalGeneration):
	// config.json's text_config and the language model's tensors; the
	// vision tower and projector are skipped.
	vlm bool
	// gptOSS: gpt-oss's fused (MXFP4 or float) experts with biases, its
	// router bias, attention sinks and sliding-window layers.
	gptOSS bool
	// deepseek: DeepSeek V2 (2) or V3 (3): multi-head latent attention,
	// leading dense layers, shared experts (deepseek.go).
	deepseek int
	// mrope: a Qwen2-VL/Qwen3-VL text model, whose multimodal rope
	// (mrope_section) rotates text tokens as a plain rope does (their
	// three position ids are equal): written without it, as a text model.
	mrope bool
	// fusedExperts: experts fused into two tensors per layer, named by
	// moe.fusedGateUp and moe.fusedDown (Qwen3-VL-MoE, GraniteMoE;
	// moe.go).
	fusedExperts bool
	// cohere: Command R's LayerNorms (no bias), parallel attention and
	// MLP, logit scale and optional per-head q/k LayerNorms (cohere.go).
	cohere bool
	// cohere2: Command R7B's and Command A's three sliding-window layers
	// (with rope) to one global layer (without), cohere.go.
	cohere2 bool
	// reluSq: Arcee's MLP, up then ReLU² then down, with no gate.
	reluSq bool
	// glm4: GLM-4's sandwich norms (post_self_attn_layernorm,
	// post_mlp_layernorm) and fused gate_up_proj (glm4moe.go).
	glm4 bool
	// chatglm: with glm4, GLM's blocks without the sandwich norms
	// (GlmForCausalLM, llama.cpp's chatglm; glm4moe.go).
	chatglm bool
	// glm4moe: GLM-4.5's attention (q/k/v biases, optional per-head q/k
	// norms, partial NEOX rope) and sharedMoE MLP (glm4moe.go).
	glm4moe bool
	// ernieMoE: ERNIE 4.5 MoE's sharedMoE MLP, with its own config names
	// and router bias (ernie.go).
	ernieMoE bool
	// ministral3: Ministral 3's attention temperature
	// (attention.temperature_scale) over a yarn rope (ministral3.go).
	ministral3 bool
	// olmo2: OLMo 2's norms after the attention and the MLP (none
	// before), and q/k norms over the whole projections; olmo3 adds its
	// sliding-window layers (olmo.go).
	olmo2, olmo3 bool
	// olmo1: OLMo's LayerNorms without weights (none in the checkpoint)
	// and clip_qkv (olmo.go).
	olmo1 bool
	// falcon: Falcon's parallel blocks and fused query_key_value
	// (falcon.go).
	falcon bool
	// deepseekMoE: DeepSeek-MoE's Llama attention and sharedMoE MLP
	// (deepseekmoe.go).
	deepseekMoE bool
	// jamba: Jamba's attention and Mamba-1 layers, dense and expert MLPs
	// (jamba.go).
	jamba bool
	// dots1: dots.llm1's Qwen3 attention and sharedMoE MLP (dots1.go).
	dots1 bool
	// internlm2: InternLM2's names and fused wqkv (internlm2.go).
	internlm2 bool
	// minicpm: MiniCPM's µP scales (minicpm.go).
	minicpm bool
	// bailing: Ling's names, query_key_value (split for Ling 1.0),
	// sharedMoE MLP and normalised head (bailing.go).
	bailing bool
	// deci: DeciLM's blocks, each with its own heads and MLP width
	// (deci.go).
	deci bool
	// wideQKNorm: q_norm and k_norm over the whole projections, not per
	// head (OLMo 2/3, OLMoE, where head_dim × heads must be hidden_size;
	// MiniMax-M2).
	wideQKNorm bool
	// graniteHybrid: Granite 4.0's Mamba-2 and attention layers, shared
	// MLP and optional experts (granite4.go); gguf is decided by the
	// config (granitehybrid, or granite or granitemoe without Mamba-2).
	graniteHybrid bool
	// nemotronH: Nemotron-H's blocks of one Mamba-2 mixer, attention or
	// MLP each (nemotronh.go).
	nemotronH bool
	// lnLlama: StarCoder2's and Nemotron's LayerNorms (with biases) and
	// ungated MLP (starcoder2.go).
	lnLlama bool
	// exaone: EXAONE 3.x's names for Llama's tensors and config keys
	// (exaone.go).
	exaone bool
	// exaone4: EXAONE 4.0's OLMo 2-style post norms with per-head q/k
	// norms, and its 64-layer models' sliding window (olmo.go).
	exaone4 bool
	// seedOSS: Seed-OSS's pre-MLP norm named post_attention_norm, q/k/v
	// biases when attention_bias, no output bias.
	seedOSS bool
	// qwen3next: Qwen3-Next's Gated DeltaNet and gated attention layers
	// (qwen3next.go).
	qwen3next bool
	// falconH1: Falcon-H1's attention and Mamba-2 side by side in every
	// layer, its multipliers folded into the weights (falconh1.go).
	falconH1 bool
	// apertus: Apertus's xIELU MLP and per-head q/k norms (apertus.go).
	apertus bool
	// bamba: Bamba's Mamba-2 hybrid, written as granitehybrid (bamba.go).
	bamba bool
	// minimax: MiniMax-M2's sigmoid-routed experts and whole-projection
	// q/k norms over a partial rope (minimax.go).
	minimax bool
	// lfm2: LFM2's short-convolution and attention layers, and
	// LFM2-MoE's sigmoid-routed experts after its dense layers (lfm2.go).
	lfm2 bool
	// llama4: Llama 4's chunked and NoPE layers, interleaved experts with
	// a shared expert (llama4.go).
	llama4 bool
	// roberta: RoBERTa and XLM-RoBERTa, BERT's encoder with RoBERTa's
	// positions (offset by the padding id) and classification head, and a
	// byte-level BPE (RoBERTa) or Unigram (XLM-RoBERTa, unigram.go)
	// tokenizer.
	roberta bool
	// gemmaEmbed: EmbeddingGemma, Gemma 3's blocks attending both ways,
	// pooled and projected by its sentence-transformers modules
	// (gemmaembed.go).
	gemmaEmbed bool
}

var archs = []archSpec{
	{hf: "LlamaForCausalLM", gguf: "llama", permute: true, ropeFreqs: true},
	{hf: "MistralForCausalLM", gguf: "llama", permute: true, ropeFreqs: true},
	{hf: "SmolLM3ForCausalLM", gguf: "smollm3", permute: true, noBias: true, noRopeStep: 4},
	{hf: "CohereForCausalLM", gguf: "command-r", noBias: true, tiedOnly: true, cohere: true},
	{hf: "Cohere2ForCausalLM", gguf: "cohere2", noBias: true, tiedOnly: true, cohere: true, cohere2: true},
	{hf: "Ernie4_5ForCausalLM", gguf: "ernie4_5", noBias: true},
	{hf: "Ernie4_5_MoeForCausalLM", gguf: "ernie4_5-moe", noBias: true, ernieMoE: true},
	{hf: "ArceeForCausalLM", gguf: "arcee", permute: true, ropeFreqs: true, reluSq: true, noBias: true},
	{hf: "GraniteForCausalLM", gguf: "granite", permute: true, ropeFreqs: true, granite: true},
	{hf: "GraniteMoeForCausalLM", gguf: "granitemoe", permute: true, ropeFreqs: true, granite: true, moe: graniteMoE, fusedExperts: true},
	{hf: "GraniteMoeHybridForCausalLM", gguf: "granitehybrid", permute: true, ropeFreqs: true, granite: true, graniteHybrid: true},
	{hf: "NemotronHForCausalLM", gguf: "nemotron_h", nemotronH: true},
	{hf: "BambaForCausalLM", gguf: "granitehybrid", permute: true, partialRotary: true, bamba: true},
	{hf: "FalconH1ForCausalLM", gguf: "falcon-h1", noBias: true, falconH1: true},
	{hf: "ApertusForCausalLM", gguf: "apertus", noBias: true, qkNorm: true, ropeFreqs: true, apertus: true},
	{hf: "Qwen3NextForCausalLM", gguf: "qwen3next", noBias: true, qkNorm: true, partialRotary: true, moe: qwen3NextMoE, fusedExperts: true, qwen3next: true},
	{hf: "MiniMaxM2ForCausalLM", gguf: "minimax-m2", noBias: true, qkNorm: true, wideQKNorm: true, partialRotary: true, untiedOnly: true,
		moe: minimaxMoE, minimax: true},
	{hf: "Lfm2ForCausalLM", gguf: "lfm2", lfm2: true},
	{hf: "Lfm2MoeForCausalLM", gguf: "lfm2moe", lfm2: true, moe: lfm2MoE, fusedExperts: true},
	{hf: "Lfm2VlForConditionalGeneration", gguf: "lfm2", lfm2: true, vlm: true},
	{hf: "Llama4ForConditionalGeneration", gguf: "llama4", noBias: true, ropeFreqs: true, moe: llama4MoE, llama4: true, vlm: true},
	{hf: "Llama4ForCausalLM", gguf: "llama4", noBias: true, ropeFreqs: true, moe: llama4MoE, llama4: true},
	{hf: "Mistral3ForConditionalGeneration", gguf: "llama", permute: true, ropeFreqs: true, vlm: true},
	{hf: "LlavaForConditionalGeneration", gguf: "llama", permute: true, ropeFreqs: true, vlm: true},
	{hf: "Ministral3ForCausalLM", gguf: "mistral3", permute: true, ropeFreqs: true, ministral3: true},
	{hf: "MixtralForCausalLM", gguf: "llama", permute: true, ropeFreqs: true, moe: mixtralMoE},
	{hf: "Qwen2ForCausalLM", gguf: "qwen2", qkvBias: true},
	{hf: "Qwen3ForCausalLM", gguf: "qwen3", noBias: true, qkNorm: true},
	{hf: "Qwen2VLForConditionalGeneration", gguf: "qwen2", qkvBias: true, vlm: true, mrope: true},
	{hf: "Qwen2_5_VLForConditionalGeneration", gguf: "qwen2", qkvBias: true, vlm: true, mrope: true},
	{hf: "Qwen3VLForConditionalGeneration", gguf: "qwen3", noBias: true, qkNorm: true, vlm: true, mrope: true},
	{hf: "Qwen3VLMoeForConditionalGeneration", gguf: "qwen3moe", noBias: true, qkNorm: true, moe: qwenVLMoE, vlm: true, mrope: true, fusedExperts: true},
	{hf: "Qwen3MoeForCausalLM", gguf: "qwen3moe", noBias: true, qkNorm: true, moe: qwenMoE},
	{hf: "Qwen2MoeForCausalLM", gguf: "qwen2moe", qkvBias: true, moe: qwen2MoE, untiedOnly: true},
	{hf: "GptOssForCausalLM", gguf: "gpt-oss", qkvBias: true, moe: gptOSSMoE, untiedOnly: true, gptOSS: true},
	{hf: "OlmoForCausalLM", gguf: "olmo", permute: true, noBias: true, olmo1: true},
	{hf: "FalconForCausalLM", gguf: "falcon", falcon: true},
	{hf: "Olmo2ForCausalLM", gguf: "olmo2", noBias: true, qkNorm: true, wideQKNorm: true, olmo2: true, untiedOnly: true},
	{hf: "SeedOssForCausalLM", gguf: "seed_oss", seedOSS: true},
	{hf: "Starcoder2ForCausalLM", gguf: "starcoder2", lnLlama: true},
	{hf: "NemotronForCausalLM", gguf: "nemotron", partialRotary: true, lnLlama: true},
	{hf: "PhiForCausalLM", gguf: "phi2", partialRotary: true, lnLlama: true},
	{hf: "GPTNeoXForCausalLM", gguf: "gptneox", partialRotary: true, lnLlama: true},
	{hf: "StableLmForCausalLM", gguf: "stablelm", partialRotary: true, lnLlama: true},
	{hf: "MambaForCausalLM", gguf: "mamba"},
	{hf: "Mamba2ForCausalLM", gguf: "mamba2"},
	{hf: "JambaForCausalLM", gguf: "jamba", jamba: true},
	{hf: "Dots1ForCausalLM", gguf: "dots1", dots1: true, untiedOnly: true},
	{hf: "BloomForCausalLM", gguf: "bloom"},
	{hf: "InternLM2ForCausalLM", gguf: "internlm2", permute: true, noBias: true, untiedOnly: true, internlm2: true},
	{hf: "MiniCPMForCausalLM", gguf: "minicpm", permute: true, longrope: true, minicpm: true},
	{hf: "MiniCPM3ForCausalLM", gguf: "minicpm3", longrope: true},
	{hf: "BailingMoeForCausalLM", gguf: "bailingmoe", bailing: true},
	{hf: "BailingMoeV2ForCausalLM", gguf: "bailingmoe2", partialRotary: true, bailing: true},
	{hf: "DeciLMForCausalLM", gguf: "deci", permute: true, ropeFreqs: true, deci: true},
	{hf: "Gemma3nForConditionalGeneration", gguf: "gemma3n", vlm: true},
	{hf: "Gemma3nForCausalLM", gguf: "gemma3n"},
	{hf: "DeepseekForCausalLM", gguf: "deepseek", permute: true, deepseekMoE: true, untiedOnly: true},
	{hf: "FalconMambaForCausalLM", gguf: "mamba"},
	{hf: "ExaoneForCausalLM", gguf: "exaone", noBias: true, ropeFreqs: true, exaone: true},
	{hf: "Exaone4ForCausalLM", gguf: "exaone4", noBias: true, qkNorm: true, olmo2: true, ropeFreqs: true, exaone4: true},
	{hf: "Olmo3ForCausalLM", gguf: "olmo2", noBias: true, qkNorm: true, wideQKNorm: true, olmo2: true, olmo3: true, untiedOnly: true},
	{hf: "OlmoeForCausalLM", gguf: "olmoe", noBias: true, qkNorm: true, wideQKNorm: true, moe: olmoeMoE, untiedOnly: true},
	{hf: "Phi3ForCausalLM", gguf: "phi3", noBias: true, fused: true, partialRotary: true, longrope: true},
	{hf: "GemmaForCausalLM", gguf: "gemma", noBias: true, normShift: 1, tiedOnly: true},
	{hf: "Gemma2ForCausalLM", gguf: "gemma2", noBias: true, normShift: 1, tiedOnly: true, postNorms: true},
	{hf: "Gemma3ForCausalLM", gguf: "gemma3", noBias: true, qkNorm: true, normShift: 1, postNorms: true, gemma3: true},
	{hf: "Gemma3TextModel", gguf: "gemma-embedding", noBias: true, qkNorm: true, normShift: 1, postNorms: true, gemma3: true, gemmaEmbed: true},
	{hf: "Gemma3ForConditionalGeneration", gguf: "gemma3", noBias: true, qkNorm: true, normShift: 1, postNorms: true, gemma3: true, vlm: true},
	{hf: "DeepseekV2ForCausalLM", gguf: "deepseek2", deepseek: 2},
	{hf: "DeepseekV3ForCausalLM", gguf: "deepseek2", deepseek: 3},
	{hf: "Glm4ForCausalLM", gguf: "glm4", partialRotary: true, glm4: true},
	{hf: "GlmForCausalLM", gguf: "chatglm", partialRotary: true, glm4: true, chatglm: true},
	{hf: "Glm4vForConditionalGeneration", gguf: "glm4", partialRotary: true, glm4: true, vlm: true, mrope: true},
	{hf: "Glm4MoeForCausalLM", gguf: "glm4moe", partialRotary: true, glm4moe: true},
	{hf: "Glm4vMoeForConditionalGeneration", gguf: "glm4moe", partialRotary: true, glm4moe: true, vlm: true, mrope: true},
	{hf: "GPT2LMHeadModel", gguf: "gpt2"},
	{hf: "GPTBigCodeForCausalLM", gguf: "starcoder"},
	{hf: "BertModel", gguf: "bert"},
	{hf: "BertForMaskedLM", gguf: "bert"},
	{hf: "BertForSequenceClassification", gguf: "bert", classifier: true},
	{hf: "NomicBertModel", gguf: "nomic-bert"},
	{hf: "JinaBertModel", gguf: "jina-bert-v2"},
	{hf: "JinaBertForMaskedLM", gguf: "jina-bert-v2"},
	{hf: "XLMRobertaModel", gguf: "bert", roberta: true},
	{hf: "RobertaModel", gguf: "bert", roberta: true},
	{hf: "RobertaForSequenceClassification", gguf: "bert", classifier: true, roberta: true},
	{hf: "XLMRobertaForSequenceClassification", gguf: "bert", classifier: true, roberta: true},
}

// Supported returns the Hugging Face architecture names Convert accepts.
func Supported() []string {
	out := make([]string, len(archs))
	for i, a := range archs {
		out[i] = a.hf
	}
	return out
}

func findArch(names []string) (archSpec, error) {
	for _, n := range names {
		for _, a := range archs {
			if a.hf == n {
				return a, nil
			}
		}
	}
	return archSpec{}, fmt.Errorf("%w architecture %v: supported are %s",
		ErrUnsupported, names, strings.Join(Supported(), ", "))
}

// Convert reads the checkpoint in dir and writes a GGUF file to out. The
// output is written to a temporary file beside out and renamed into place
// only when complete.
//
// The task LoRAs of a checkpoint that has them (jina-embeddings-v3) are
// written first, one adapter per task at TaskAdapterPath(out, task) (or
// beside opts.adapterFor), so that the model's file marks a complete
// conversion.
func Convert(ctx context.Context, dir, out string, opts Options) error {
	b, err := build(ctx, dir, opts)
	if err != nil {
		return err
	}
	defer b.close()
	model := out
	if opts.adapterFor != "" {
		model = opts.adapterFor
	}
	// The task adapters of a model converted to the same path before are
	// stale.
	if err := removeTaskAdapters(model); err != nil {
		return err
	}
	for _, a := range b.adapters {
		if err := writeAtomic(ctx, a.w, TaskAdapterPath(model, a.task)); err != nil {
			return err
		}
	}
	return writeAtomic(ctx, b.w, out)
}

// writeAtomic writes w to a temporary file beside out and renames it into
// place when complete.
func writeAtomic(ctx context.Context, w *gguf.Writer, out string) error {
	tmp := out + ".tmp"
	if err := w.WriteFile(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("convert: write %s: %w", out, err)
	}
	if err := ctx.Err(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("convert: %w", err)
	}
	return nil
}

// Check validates the checkpoint in dir as far as it can without its
// weights: config.json (the architecture and what llama.cpp needs of its
// hyperparameters) and the tokenizer. Hub pulls run it before fetching a
// checkpoint's weights, so that one that cannot be converted is refused
// before gigabytes are downloaded.
func Check(dir string) error {
	if !hasFile(dir, "config.json") {
		return fmt.Errorf("%w checkpoint: no config.json (the converter reads a transformers checkpoint's config.json and tokenizer.json or tokenizer.model)", ErrUnsupported)
	}
	if !hasFile(dir, "tokenizer.json") && !hasFile(dir, "tokenizer.model") {
		return fmt.Errorf("%w checkpoint: no tokenizer.json or tokenizer.model (the converter reads a transformers checkpoint's config.json and tokenizer.json or tokenizer.model)", ErrUnsupported)
	}
	_, _, _, _, err := prepare(dir)
	return err
}

// prepare reads and validates config.json and the tokenizer of the
// checkpoint in dir.
func prepare(dir string) (*hfConfig, archSpec, hparams, *vocab, error) {
	fail := func(err error) (*hfConfig, archSpec, hparams, *vocab, error) {
		return nil, archSpec{}, hparams{}, nil, err
	}
	cfg, err := readConfig(dir)
	if err != nil {
		return fail(err)
	}
	arch, err := findArch(cfg.Architectures)
	if err != nil {
		return fail(err)
	}
	if arch.hf == "LlavaForConditionalGeneration" {
		if err := cfg.llavaText(); err != nil {
			return fail(err)
		}
	}
	if arch.hf == "Mistral3ForConditionalGeneration" {
		m3, err := cfg.ministral3Text()
		if err != nil {
			return fail(err)
		}
		if m3 {
			arch.gguf, arch.ministral3 = "mistral3", true
		}
	}
	if arch.graniteHybrid {
		if arch.gguf, err = cfg.graniteHybridArch(); err != nil {
			return fail(err)
		}
	}
	if arch.nemotronH {
		arch.gguf = cfg.nemotronHArch()
	}
	if arch, err = cfg.jinaV3Arch(arch); err != nil {
		return fail(err)
	}
	hp, err := cfg.hparams(arch)
	if err != nil {
		return fail(err)
	}
	voc, err := readVocab(dir, cfg, arch)
	if err != nil {
		return fail(err)
	}
	sent, err := readSentence(dir)
	if err != nil {
		return fail(err)
	}
	if err := sent.check(arch.classifier || isQwen3Reranker(arch, dir)); err != nil {
		return fail(err)
	}
	if err := checkDense(arch, hp, sent.dense); err != nil {
		return fail(err)
	}
	hp.embedding = sent.found && !arch.classifier && !isQwen3Reranker(arch, dir)
	if len(voc.tokens) > hp.vocab && arch.gemma3 {
		dropped, err := voc.dropAddedAbove(hp.vocab)
		if err != nil {
			return fail(err)
		}
		slog.Info("convert: added tokens beyond config.json's vocab_size dropped (the embeddings have no row for them)",
			"architecture", arch.hf, "vocab_size", hp.vocab, "tokens", dropped)
	}
	if len(voc.tokens) > hp.vocab {
		return fail(fmt.Errorf("%w: tokenizer has %d tokens, config vocab_size is %d", ErrMismatch, len(voc.tokens), hp.vocab))
	}
	voc.padTo(hp.vocab)
	if err := voc.checkUnique(); err != nil {
		return fail(err)
	}
	return cfg, arch, hp, voc, nil
}

// Build prepares a GGUF writer for the checkpoint in dir: it validates the
// config, every tensor's name and shape, and the tokenizer, and registers
// each tensor with a callback that reads and converts it when the writer
// streams the file. The returned close function releases the checkpoint
// and must be called after the writer is done.
//
// A checkpoint with task LoRAs (jina-embeddings-v3) is written without
// them; Convert writes them as adapters beside the model.
func Build(ctx context.Context, dir string, opts Options) (*gguf.Writer, func() error, error) {
	b, err := build(ctx, dir, opts)
	if err != nil {
		return nil, nil, err
	}
	return b.w, b.close, nil
}

// built is a prepared conversion: the model's writer, its task adapters'
// writers, and the function that releases the checkpoint.
type built struct {
	w        *gguf.Writer
	adapters []taskAdapter
	close    func() error
}

func build(ctx context.Context, dir string, opts Options) (*built, error) {
	outType, fileType, err := parseOutType(opts.Type)
	if err != nil {
		return nil, err
	}

	cfg, arch, hp, voc, err := prepare(dir)
	if err != nil {
		return nil, err
	}

	st, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	closeFn := func() error { return st.Close() }
	fail := func(err error) (*built, error) {
		st.Close()
		return nil, err
	}

	w := gguf.NewWriter()
	name := opts.Name
	if name == "" {
		abs, _ := filepath.Abs(dir)
		name = filepath.Base(abs)
	}
	a := arch.gguf
	w.Set("general.architecture", gguf.String(a))
	w.Set("general.name", gguf.String(name))
	w.Set("general.file_type", gguf.Uint32(fileType))
	w.Set("general.quantization_version", gguf.Uint32(2))
	w.Set(a+".vocab_size", gguf.Uint32(uint32(hp.vocab)))
	w.Set(a+".context_length", gguf.Uint32(uint32(hp.ctxLen)))
	w.Set(a+".embedding_length", gguf.Uint32(uint32(hp.hidden)))
	w.Set(a+".block_count", gguf.Uint32(uint32(hp.layers)))
	w.Set(a+".feed_forward_length", gguf.Uint32(uint32(hp.ffn)))
	w.Set(a+".attention.head_count", gguf.Uint32(uint32(hp.heads)))
	switch a {
	case "gpt2", "starcoder", "bloom":
		// LayerNorm, learned positions or ALiBi (BLOOM's): no rope.
		w.Set(a+".attention.layer_norm_epsilon", gguf.Float32(float32(hp.rmsEps)))
		if a == "starcoder" {
			w.Set(a+".attention.head_count_kv", gguf.Uint32(uint32(hp.kvHeads)))
		}
	case "bert", "jina-bert-v2", "jina-bert-v3":
		// A bidirectional encoder with LayerNorm (and learned positions,
		// jina-bert-v2's ALiBi or jina-bert-v3's rope), pooled into one
		// embedding per sequence.
		pooling := uint32(poolingRank)
		if !arch.classifier {
			sent, err := readSentence(dir)
			if err != nil {
				return fail(err)
			}
			pooling = poolingMean
			switch {
			case sent.found:
				pooling = sent.pooling
			case a == "jina-bert-v3" && cfg.JinaV3.EmbPooler != nil && *cfg.JinaV3.EmbPooler == "cls":
				pooling = poolingCLS
			}
		} else {
			labels, err := cfg.labels()
			if err != nil {
				return fail(err)
			}
			if len(labels) > 1 {
				w.Set(a+".classifier.output_labels", gguf.Strings(labels))
			}
		}
		w.Set(a+".attention.layer_norm_epsilon", gguf.Float32(float32(hp.rmsEps)))
		w.Set(a+".attention.causal", gguf.Bool(false))
		w.Set(a+".pooling_type", gguf.Uint32(pooling))
		if a == "jina-bert-v3" {
			w.Set(a+".rope.freq_base", gguf.Float32(float32(hp.ropeTheta)))
			w.Set(a+".rope.dimension_count", gguf.Uint32(uint32(hp.ropeDim)))
		}
		voc.typeCount = hp.typeVocab
	case "nomic-bert":
		if err := nomicBertKeys(w, a, dir, hp); err != nil {
			return fail(err)
		}
		voc.typeCount = hp.typeVocab
	case "mamba", "mamba2":
		mambaKeys(w, a, hp)
	case "gemma3n":
		gemma3nKeys(w, a, hp)
	default:
		w.Set(a+".attention.head_count_kv", gguf.Uint32(uint32(hp.kvHeads)))
		w.Set(a+".rope.freq_base", gguf.Float32(float32(hp.ropeTheta)))
		w.Set(a+".attention.layer_norm_rms_epsilon", gguf.Float32(float32(hp.rmsEps)))
		w.Set(a+".rope.dimension_count", gguf.Uint32(uint32(hp.ropeDim)))
		if hp.headDim*hp.heads != hp.hidden {
			w.Set(a+".attention.key_length", gguf.Uint32(uint32(hp.headDim)))
			w.Set(a+".attention.value_length", gguf.Uint32(uint32(hp.headDim)))
		}
		if arch.fused {
			phi3Keys(w, cfg)
		}
		// A sentence-transformers embedding model on a decoder
		// (Qwen3-Embedding): its pooling, which llama.cpp's
		// qwen2 and qwen3 read and Embed passes to any other;
		// gemma-embedding requires it (mean by default, as
		// sentence-transformers) and takes the Dense projections.
		sent, err := readSentence(dir)
		if err != nil {
			return fail(err)
		}
		if (sent.found || arch.gemmaEmbed) && !isQwen3Reranker(arch, dir) {
			if !sent.found {
				sent.pooling = poolingMean
			}
			w.Set(a+".pooling_type", gguf.Uint32(sent.pooling))
		}
		if len(sent.dense) == 2 {
			for i, d := range sent.dense {
				n := strconv.Itoa(i + 2)
				w.Set(a+".dense_"+n+"_feat_in", gguf.Uint32(uint32(d.in)))
				w.Set(a+".dense_"+n+"_feat_out", gguf.Uint32(uint32(d.out)))
			}
		}
		if arch.moe != nil {
			moeKeys(w, a, arch, hp)
		}
		if arch.deepseek != 0 {
			deepseekKeys(w, a, hp)
		}
		if arch.glm4moe || arch.deepseekMoE || arch.dots1 || arch.bailing {
			sharedMoEKeys(w, a, hp)
		}
		if arch.ernieMoE {
			ernieMoEKeys(w, a, hp)
		}
		if arch.cohere {
			cohereKeys(w, a, hp)
		}
		if arch.ministral3 && hp.attnTemp != 0 {
			w.Set(a+".attention.temperature_scale", gguf.Float32(float32(hp.attnTemp)))
		}
		if arch.gptOSS || arch.olmo3 || (arch.exaone4 && hp.slidingWindow > 0) {
			w.Set(a+".attention.sliding_window", gguf.Uint32(uint32(hp.slidingWindow)))
		}
		if arch.granite {
			if err := graniteKeys(w, a, cfg); err != nil {
				return fail(err)
			}
		}
		if arch.minicpm {
			miniCPMKeys(w, a, hp)
		}
		if arch.gguf == "minicpm3" {
			minicpm3Keys(w, a, hp)
		}
		if arch.graniteHybrid || arch.bamba {
			graniteHybridKeys(w, a, hp)
		}
		if arch.nemotronH {
			nemotronHKeys(w, a, hp)
		}
		if arch.jamba {
			jambaKeys(w, a, hp)
		}
		if arch.deci {
			deciKeys(w, a, hp)
		}
		if arch.lfm2 {
			lfm2Keys(w, a, hp)
		}
		if arch.qwen3next {
			qwen3NextKeys(w, a, hp)
		}
		if arch.falconH1 {
			falconH1Keys(w, a, hp)
		}
		if arch.llama4 {
			llama4Keys(w, a, hp)
		}
		if arch.lnLlama || arch.olmo1 || arch.falcon {
			lnLlamaKeys(w, a, hp)
		}
		if arch.olmo1 && hp.clampKQV > 0 {
			w.Set(a+".attention.clamp_kqv", gguf.Float32(float32(hp.clampKQV)))
		}
		switch {
		case arch.gemma3:
			gemma3Keys(w, a, arch, hp)
		case arch.postNorms:
			gemma2Keys(w, hp)
		}
		hp.rope.write(w, a)
	}
	voc.write(w)

	var plan []tensorPlan
	switch arch.gguf {
	case "granite", "granitemoe", "granitehybrid":
		switch {
		case arch.bamba:
			plan, err = planBamba(st, arch, hp)
		case arch.graniteHybrid:
			plan, err = planGraniteHybrid(st, arch, hp)
		default:
			plan, err = planTensors(st, arch, hp)
		}
	case "nemotron_h", "nemotron_h_moe":
		plan, err = planNemotronH(st, arch, hp)
	case "lfm2", "lfm2moe":
		plan, err = planLFM2(st, arch, hp)
	case "qwen3next":
		plan, err = planQwen3Next(st, arch, hp)
	case "falcon-h1":
		plan, err = planFalconH1(st, arch, hp)
	case "llama4":
		plan, err = planLlama4(st, arch, hp)
	case "starcoder2", "nemotron", "phi2":
		plan, err = planLNLlama(st, arch, hp)
	case "gptneox":
		plan, err = planGPTNeoX(st, arch, hp)
	case "falcon":
		plan, err = planFalcon(st, arch, hp, cfg)
	case "stablelm":
		plan, err = planStableLM(st, arch, hp, cfg)
	case "mamba", "mamba2":
		plan, err = planMamba(st, arch, hp)
	case "deepseek":
		plan, err = planDeepseekMoE(st, arch, hp)
	case "jamba":
		plan, err = planJamba(st, arch, hp)
	case "dots1":
		plan, err = planDots1(st, arch, hp)
	case "deci":
		plan, err = planDeci(st, arch, hp)
	case "minicpm3":
		plan, err = planMiniCPM3(st, arch, hp)
	case "bloom":
		plan, err = planBloom(st, arch, hp)
	case "bailingmoe", "bailingmoe2":
		plan, err = planBailing(st, arch, hp)
	case "gemma3n":
		plan, err = planGemma3n(st, arch, hp)
	case "apertus":
		if plan, err = planApertus(st, arch, hp); err == nil {
			err = apertusKeys(w, a, st, hp)
		}
	case "gpt2", "starcoder":
		plan, err = planGPT2(st, hp, arch)
	case "bert", "jina-bert-v2":
		plan, err = planBERT(st, hp, arch)
	case "jina-bert-v3":
		plan, err = planFlashXLMR(st, hp, arch)
	case "nomic-bert":
		plan, err = planNomicBert(st, hp)
	case "deepseek2":
		plan, err = planDeepSeek2(st, arch, hp)
	case "glm4moe":
		plan, err = planGLM4MoE(st, arch, hp, cfg.GLM.UseQKNorm)
	case "ernie4_5-moe":
		plan, err = planErnieMoE(st, arch, hp)
	default:
		plan, err = planTensors(st, arch, hp)
	}
	rerank := isQwen3Reranker(arch, dir)
	if err == nil && rerank {
		qwen3RerankKeys(w, a)
		plan, err = qwen3RerankHead(plan, st, voc, hp)
	}
	if err == nil && arch.gemmaEmbed {
		var dense []tensorPlan
		if dense, err = densePlans(dir); err == nil {
			plan = append(plan, dense...)
		}
	}
	var adapters []taskAdapter
	if err == nil && arch.gguf == "jina-bert-v3" {
		adapters, err = jinaV3Adapters(ctx, st, cfg, hp, name)
	}
	if err != nil {
		return fail(err)
	}
	if hp.rope.kind == ropeLlama3 {
		// As convert_hf_to_gguf.py, ahead of the checkpoint's tensors.
		freqs := llama3RopeFreqs(hp.ropeTheta, hp.ropeDim, hp.rope)
		plan = append([]tensorPlan{{ggufName: "rope_freqs.weight", shape: []int64{int64(len(freqs))}, gen: freqs, layer: -1}}, plan...)
	}
	plan = append(hp.rope.factorTensors(), plan...)
	tw := &tensorWriter{st: st, progress: opts.Progress, fp8Block: hp.fp8Block}
	for _, p := range plan {
		typ := tensorType(p.ggufName, p.outShape(), outType)
		if p.oss.mxfp4() {
			typ = gguf.TypeMXFP4 // kept as released, as convert_hf_to_gguf.py keeps it
		}
		n := int64(1)
		for _, d := range p.shape {
			n *= d
		}
		tw.total += int64(encodedSize(typ, int(n)))
		p := p
		err := w.AddTensor(p.ggufName, typ, ggmlShape(p.outShape()), func(wr io.Writer) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return tw.writeTensor(ctx, wr, p, typ)
		})
		if err != nil {
			return fail(fmt.Errorf("convert: %w", err))
		}
	}
	return &built{w: w, adapters: adapters, close: closeFn}, nil
}

// graniteKeys writes Granite's multipliers, which must be positive
// (llama.cpp reads 0 as unset, and divides the logits by logit_scale).
func graniteKeys(w *gguf.Writer, a string, c *hfConfig) error {
	for _, m := range []struct {
		key, name string
		v         *float64
	}{
		{".embedding_scale", "embedding_multiplier", c.EmbeddingMultiplier},
		{".residual_scale", "residual_multiplier", c.ResidualMultiplier},
		{".attention.scale", "attention_multiplier", c.AttentionMultiplier},
		{".logit_scale", "logits_scaling", c.LogitsScaling},
	} {
		v := 1.0
		if m.v != nil {
			v = *m.v
		}
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: config.json: %s is %v; it must be positive", ErrMismatch, m.name, v)
		}
		w.Set(a+m.key, gguf.Float32(float32(v)))
	}
	return nil
}

// labels returns a classifier's labels in id order (id2label, whose ids
// must be 0 to n-1).
func (c *hfConfig) labels() ([]string, error) {
	out := make([]string, len(c.ID2Label))
	for k, v := range c.ID2Label {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= len(out) {
			return nil, fmt.Errorf("%w: config.json: id2label has id %q; the ids must be 0 to %d", ErrMismatch, k, len(out)-1)
		}
		out[i] = v
	}
	return out, nil
}

// keepF32 are the 2-D tensors written as F32 whatever the output type, as
// convert_hf_to_gguf.py writes them and llama.cpp's quantizer leaves them:
// learned positions and token types.
var keepF32 = map[string]bool{"position_embd.weight": true, "token_types.weight": true}

// ggmlShape reverses a row-major shape into ggml order (ne0 first).
func ggmlShape(shape []int64) []uint64 {
	out := make([]uint64, len(shape))
	for i, d := range shape {
		out[len(shape)-1-i] = uint64(d)
	}
	return out
}
