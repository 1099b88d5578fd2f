"""estimate's default c is the step-time model's (specwise.perf), priced for --gpu/--tp or stated defaults."""

from types import SimpleNamespace

import pytest

from specwise.catalog.models import get_gpu, get_model
from specwise.errors import UserError
from specwise.estimate.models import LoadedModel, deployment_spec
from specwise.estimate.pipeline import Models
from specwise.estimate.runner import default_cost_ratio
from specwise.perf.steptime import draft_cost_ratio

# config.json fields of Llama-3.1-8B and Llama-3.2-1B (model-configs.md), as a loaded model's config holds them
LLAMA_8B = dict(model_type="llama", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=8, intermediate_size=14336, vocab_size=128256, tie_word_embeddings=False,
                max_position_embeddings=131072)
LLAMA_1B = dict(LLAMA_8B, hidden_size=2048, num_hidden_layers=16, head_dim=64, intermediate_size=8192,
                tie_word_embeddings=True)


def _loaded(name: str, cfg: dict, weight_bits: float = 16.0) -> LoadedModel:
    config = SimpleNamespace(to_dict=lambda: dict(cfg))
    return LoadedModel(name=name, model=SimpleNamespace(config=config), tokenizer=None, device="cpu",
                       num_layers=cfg["num_hidden_layers"], params=0, weight_bits=weight_bits, description=name)


def test_default_c_is_the_step_time_model_on_h100_tp1_and_says_so():
    models = Models(target=_loaded("t", LLAMA_8B), draft=_loaded("d", LLAMA_1B))
    c, source = default_cost_ratio(models)
    catalog_8b, catalog_1b = get_model("meta-llama/Llama-3.1-8B")[0], get_model("meta-llama/Llama-3.2-1B")[0]
    assert c == pytest.approx(draft_cost_ratio(catalog_8b, catalog_1b, get_gpu("H100"), 1, 1, "bf16", "bf16"),
                              abs=1e-4)
    assert 0.2 < c < 0.45
    assert "step-time model, H100-SXM, TP1, draft TP1, batch 1" in source
    assert "assumed: GPU H100 (no --gpu), TP1 (no --tp)" in source


def test_gpu_tp_and_quantised_weights_change_c():
    target, draft = _loaded("t", LLAMA_8B), _loaded("d", LLAMA_1B)
    c_h100, _ = default_cost_ratio(Models(target=target, draft=draft))
    c_tp2, source = default_cost_ratio(Models(target=target, draft=draft), gpu="H200", tp=2)
    assert "H200, TP2" in source and "assumed" not in source
    assert c_tp2 > c_h100  # the target's forward halves on TP 2, the TP-1 draft's does not
    c_int4, _ = default_cost_ratio(Models(target=target, draft=_loaded("d4", LLAMA_1B, weight_bits=4.15625)))
    assert c_int4 < c_h100
    assert deployment_spec(_loaded("d8", LLAMA_1B, weight_bits=8.0))[1].value == "gptq-int8"
    assert default_cost_ratio(Models(target=target, draft=None)) == (0.0, "no draft")


def test_unreadable_config_says_to_pass_cost_ratio():
    broken = _loaded("odd", {"model_type": "odd", "num_hidden_layers": 2})
    with pytest.raises(UserError, match="--cost-ratio"):
        default_cost_ratio(Models(target=broken, draft=_loaded("d", LLAMA_1B)))
