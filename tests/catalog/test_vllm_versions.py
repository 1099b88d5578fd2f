"""The vLLM version table is consistent and answers the reference's key facts."""

from __future__ import annotations

import json
from importlib import resources

from specwise.catalog.vllm_versions import parse_version, version_facts

DATA = json.loads(resources.files("specwise.catalog").joinpath("data/vllm_versions.json").read_text())


def test_ranges_are_contiguous_and_cover_to_newest():
    rows = DATA["ranges"]
    assert rows[0]["since"] == DATA["oldest_with_speculation"]
    for a, b in zip(rows, rows[1:]):
        assert a["until"] == b["since"]
    assert rows[-1]["until"] is None


def test_intervals_are_ordered():
    for table in ("json_keys", "legacy_flags"):
        for name, info in DATA[table].items():
            if info.get("until"):
                assert parse_version(info["since"]) < parse_version(info["until"]), name


def test_reference_key_facts():
    # key fact 1: legacy flags end with 0.8.2; JSON from 0.8.2
    assert version_facts("0.8.2").legacy_flag("model") == "--speculative-model"
    assert version_facts("0.8.3").legacy_flag("model") is None
    assert "json" in version_facts("0.8.2").config_forms
    # key fact 3: draft_model on V1 only from 0.15
    assert not version_facts("0.14.0").method_available("draft_model")
    assert version_facts("0.15.0").method_available("draft_model")
    assert version_facts("0.9.2").engine_by_method["draft_model"] == "v0"
    # key fact 5: disable_by_batch_size gone in 0.17, schedule from 0.24
    assert version_facts("0.16.0").knows_key("disable_by_batch_size")
    assert not version_facts("0.17.0").knows_key("disable_by_batch_size")
    assert version_facts("0.24.0").knows_key("num_speculative_tokens_per_batch_size")
    # key fact 13: utilisation default and CUDA-graph accounting from 0.20
    assert version_facts("0.19.1").gpu_memory_utilization_default == 0.90
    assert version_facts("0.20.0").gpu_memory_utilization_default == 0.92
    assert version_facts("0.20.0").cudagraph_memory_counted and not version_facts("0.19.1").cudagraph_memory_counted
    # key fact 14: unknown keys rejected 0.8.3-0.9.0 and 0.16+, ignored 0.9.2-0.15.x
    assert [version_facts(v).unknown_keys for v in ("0.8.3", "0.9.2", "0.15.1", "0.16.0")] == [
        "reject", "ignore", "ignore", "reject"]
    assert version_facts("0.10.2").method_name("mtp") == "deepseek_mtp"
    assert version_facts("0.11.0").method_name("mtp") == "mtp"


def test_known_keys_match_real_vllm_0_32():
    """Keys the table allows for 0.32.0 == the user-facing fields of the real 0.32.0 SpeculativeConfig."""
    from pathlib import Path

    real = json.loads((Path(__file__).parent / "fixtures" / "vllm_0.32.0_speculative_config.json").read_text())
    # internal fields set by vLLM itself, and tensor_parallel_size, which exists only to raise an error (§1.3)
    internal = {"target_model_config", "target_parallel_config", "draft_model_config", "draft_parallel_config",
                "tensor_parallel_size"}
    assert sorted(version_facts("0.32.0").known_keys()) == sorted(set(real["fields"]) - internal)
    for method in ("draft_model", "ngram", "eagle", "eagle3", "mtp"):
        assert version_facts("0.32.0").method_name(method) in real["methods"]
