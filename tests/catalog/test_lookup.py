"""Name resolution, GPU catalog facts and config.json parsing."""

from __future__ import annotations

import json

import pytest

from specwise.catalog.hf_config import spec_from_path
from specwise.catalog.models import get_gpu, get_model
from specwise.catalog.resolve import load_model_spec
from specwise.errors import UserError
from specwise.schemas.model import Quantization


@pytest.mark.parametrize(
    "name, base, quant",
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B", None),
        ("Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B", None),
        ("neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8", "meta-llama/Llama-3.1-70B", Quantization.fp8),
        ("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "meta-llama/Llama-3.1-70B", Quantization.int4_awq),
        ("Qwen/Qwen2.5-72B-Instruct-GPTQ-Int4", "Qwen/Qwen2.5-72B", Quantization.int4_gptq),
        ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8", "Qwen/Qwen2.5-7B", Quantization.int8_gptq),
        ("Qwen/Qwen2.5-7B-Instruct-AWQ", "Qwen/Qwen2.5-7B", Quantization.int4_awq),
        ("unsloth/Llama-3.2-1B-Instruct-bnb-4bit", "meta-llama/Llama-3.2-1B", Quantization.bnb4),
        ("RedHatAI/Llama-3.3-70B-Instruct-quantized.w8a8", "meta-llama/Llama-3.3-70B-Instruct", Quantization.int8),
        ("Qwen/Qwen3-8B-Base", "Qwen/Qwen3-8B", None),
    ],
)
def test_names_resolve(name, base, quant):
    spec, q = get_model(name)
    assert spec.id == base
    assert q == quant


def test_unknown_model_suggests():
    with pytest.raises(UserError, match="Did you mean.*Llama-3.1-8B"):
        get_model("meta-llama/Llama-3.1-8X")


def test_gpu_facts():
    h100 = get_gpu("H100")
    assert h100.memory_gib == pytest.approx(81559 / 1024)  # nvidia-smi 81559 MiB
    assert (h100.hbm_bandwidth_tbs, h100.bf16_tflops, h100.fp8_tflops) == (3.35, 989, 1979)
    h200 = get_gpu("h200")
    assert h200.hbm_bandwidth_tbs == 4.8 and h200.memory_gib == pytest.approx(143771 / 1024)
    assert get_gpu("A100-40GB").fp8_tflops is None
    with pytest.raises(UserError, match="--gpu-memory-gib"):
        get_gpu("H900")


def _write(tmp_path, cfg, name="my-model"):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    return d


LLAMA_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
    "max_position_embeddings": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}


def test_local_config_matches_catalog(tmp_path):
    d = _write(tmp_path, LLAMA_8B_CONFIG, "Llama-3.1-8B-Instruct-FP8")
    spec, quant = spec_from_path(d)
    assert spec.param_counts().total == 8_030_261_248
    assert spec.kv_bytes_per_token() == 131_072
    assert quant == Quantization.fp8  # from the directory name
    spec2, _ = load_model_spec(str(d / "config.json"))
    assert spec2.num_layers == 32


def test_config_variants(tmp_path):
    gemma3 = {"model_type": "gemma3", "text_config": {"hidden_size": 5376, "num_hidden_layers": 62,
              "num_attention_heads": 32, "num_key_value_heads": 16, "head_dim": 128, "intermediate_size": 21504,
              "vocab_size": 262208, "sliding_window": 1024, "sliding_window_pattern": 6,
              "max_position_embeddings": 131072, "model_type": "gemma3_text"}}
    spec, _ = spec_from_path(_write(tmp_path, gemma3, "g"))
    assert spec.num_sliding_layers == 52 and spec.tie_word_embeddings
    ds = {"model_type": "deepseek_v3", "hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": 128,
          "num_key_value_heads": 128, "intermediate_size": 18432, "moe_intermediate_size": 2048, "vocab_size": 129280,
          "n_routed_experts": 256, "num_experts_per_tok": 8, "n_shared_experts": 1, "first_k_dense_replace": 3,
          "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
          "v_head_dim": 128, "num_nextn_predict_layers": 1, "quantization_config": {"quant_method": "fp8"}}
    spec, quant = spec_from_path(_write(tmp_path, ds, "ds"))
    assert quant == Quantization.fp8
    assert round(spec.param_counts().total / 1e9) == 671
    assert spec.kv_bytes_per_token(1.0) == 576 * 61
    qwen = {**LLAMA_8B_CONFIG, "model_type": "qwen2", "sliding_window": 131072, "use_sliding_window": False,
            "max_window_layers": 28}
    spec, _ = spec_from_path(_write(tmp_path, qwen, "q"))
    assert spec.sliding_window is None and spec.attention_bias


def test_config_missing_fields(tmp_path):
    d = _write(tmp_path, {"model_type": "llama", "hidden_size": 4096})
    with pytest.raises(UserError, match="lacks num_hidden_layers, num_attention_heads, vocab_size"):
        spec_from_path(d)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no config.json"):
        spec_from_path(empty)


def test_hub_offline_names_alternatives(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_hub(name, *a, **kw):
        if name == "huggingface_hub":
            raise ImportError(name)
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(UserError, match="Offline alternatives: a catalog name"):
        load_model_spec("some-org/some-unknown-model")


def test_speculators_format_eagle3_head(tmp_path):
    cfg = {"architectures": ["Eagle3Speculator"], "speculators_model_type": "eagle3", "draft_vocab_size": 32000,
           "transformer_layer_config": {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 1,
                                        "num_attention_heads": 32, "num_key_value_heads": 8,
                                        "intermediate_size": 14336, "vocab_size": 128256},
           "speculators_config": {"verifier": {"name_or_path": "meta-llama/Llama-3.1-8B-Instruct"}}}
    spec, _ = spec_from_path(_write(tmp_path, cfg, "head"))
    assert spec.kind == "eagle3" and spec.speculator_for == ["meta-llama/Llama-3.1-8B-Instruct"]
    catalog_head, _ = get_model("yuhuili/EAGLE3-LLaMA3.1-Instruct-8B")
    assert spec.param_counts().total == catalog_head.param_counts().total


def test_hub_reachable_path(monkeypatch, tmp_path):
    """With huggingface_hub present and answering, an unknown hub id is read from its config.json."""
    import sys
    import types

    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(json.dumps(LLAMA_8B_CONFIG))
    calls = []

    def hf_hub_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename))
        return str(cfg_file)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=hf_hub_download))
    spec, quant = load_model_spec("some-org/finetuned-llama-8b-FP8")
    assert calls == [("some-org/finetuned-llama-8b-FP8", "config.json")]
    assert spec.id == "some-org/finetuned-llama-8b-FP8" and spec.source.startswith("hub:")
    assert spec.param_counts().total == 8_030_261_248 and quant == Quantization.fp8


def test_hub_unreachable(monkeypatch):
    import sys
    import types

    def hf_hub_download(repo_id, filename, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=hf_hub_download))
    with pytest.raises(UserError, match=r"ConnectionError.*Offline alternatives"):
        load_model_spec("some-org/some-model")
