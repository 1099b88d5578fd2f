"""A random-weight EAGLE-1 head shaped for a Llama-3.1-8B target, for vLLM's ``"method": "eagle"`` on the device.

Why: the lent GPU has no model hub, and ``../shared/tools/vllm-gpu/mkmodels.py`` makes only a target and a draft
model. An EAGLE-1 head for Llama-3.1-8B (the layout of yuhuili/EAGLE-LLaMA3.1-Instruct-8B) is one Llama decoder
layer (hidden 4096, 32/8 heads, MLP 14336) without its input layernorm, a ``fc`` of 8192 -> 4096 that fuses the
token embedding with the target's hidden state, and the token embedding itself; the LM head is the target's. The
weight names follow vLLM 0.26's ``EagleLlamaForCausalLM.load_weights`` (``llama_eagle.py``): ``fc.weight``,
``embed_tokens.weight``, ``layers.0.*`` (no ``input_layernorm``: vLLM replaces it with an identity). Random weights
never agree with the target, so use ``rejection_sample_method: synthetic`` to set acceptance.

Usage: python3 mkeagle.py OUTDIR   (writes config.json and model.safetensors, about 1.5 GB, bf16)
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

H, I, HEADS, KV_HEADS, HEAD_DIM, V = 4096, 14336, 32, 8, 128, 128256


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=dev).manual_seed(0)

    def w(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, device=dev) * 0.02).to(torch.bfloat16).cpu()

    tensors = {
        "embed_tokens.weight": w(V, H),
        "fc.weight": w(H, 2 * H),
        "layers.0.self_attn.q_proj.weight": w(HEADS * HEAD_DIM, H),
        "layers.0.self_attn.k_proj.weight": w(KV_HEADS * HEAD_DIM, H),
        "layers.0.self_attn.v_proj.weight": w(KV_HEADS * HEAD_DIM, H),
        "layers.0.self_attn.o_proj.weight": w(H, HEADS * HEAD_DIM),
        "layers.0.mlp.gate_proj.weight": w(I, H),
        "layers.0.mlp.up_proj.weight": w(I, H),
        "layers.0.mlp.down_proj.weight": w(H, I),
        "layers.0.post_attention_layernorm.weight": torch.ones(H, dtype=torch.bfloat16),
    }
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "intermediate_size": I,
        "num_hidden_layers": 1, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
        "vocab_size": V, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "hidden_act": "silu",
        "rope_theta": 500000.0, "rope_scaling": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "bos_token_id": 128000, "eos_token_id": 128001, "attention_bias": False, "mlp_bias": False,
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    n = sum(t.numel() for t in tensors.values())
    print(f"eagle head: {n / 1e9:.3f} B parameters, {os.path.getsize(os.path.join(out, 'model.safetensors'))} bytes")


if __name__ == "__main__":
    main()
