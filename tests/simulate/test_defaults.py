"""Deployment building: KV capacity (plan or fallback), tokenizer check, default acceptance labelling."""

import pytest

from specwise.catalog.models import get_gpu, get_model
from specwise.errors import UserError
from specwise.simulate.defaults import build_deployment, default_acceptance, estimate_kv_capacity_tokens


def test_fallback_kv_capacity_is_memory_minus_weights_over_kv_per_token():
    t, _ = get_model("meta-llama/Llama-3.1-70B-Instruct")
    d, _ = get_model("meta-llama/Llama-3.2-1B-Instruct")
    h100 = get_gpu("H100")
    base = estimate_kv_capacity_tokens(t, h100, 4)
    spec = estimate_kv_capacity_tokens(t, h100, 4, draft=d)
    # 4 x (79.6 GiB x 0.92 - 3 GiB) - 141 GB weights, at 320 KiB per token: ~490k tokens
    assert 450_000 < base < 530_000
    assert spec < base  # the draft's weights and KV share the pool (vllm-speculative-decoding.md §7)
    with pytest.raises(UserError):
        estimate_kv_capacity_tokens(t, h100, 1)


def test_build_deployment_checks_the_tokenizer_and_labels_sources():
    with pytest.raises(UserError, match="tokenizer"):
        build_deployment("meta-llama/Llama-3.1-8B-Instruct", "H100", 1, draft_name="Qwen/Qwen2.5-0.5B-Instruct",
                         acceptance=default_acceptance())
    dep, info = build_deployment("meta-llama/Llama-3.1-8B-Instruct", "H100", 1, method="ngram",
                                 acceptance=default_acceptance())
    assert dep.draft.method == "ngram" and info["kv_capacity_tokens"] > 100_000
    assert info["kv_capacity_source"]
    prof = default_acceptance()
    assert prof.source == "assumed" and "ASSUMED" in prof.notes[0]
