"""`specwise plan` / `specwise catalog` through the real entry point: JSON paths and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specwise.cli.main import main

FIXTURES = Path(__file__).parent / "fixtures"


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_json_has_documented_paths(capsys):
    code, out, _ = _run(["plan", "--target", "meta-llama/Llama-3.1-70B-Instruct", "--draft",
                         "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H200", "--gpus", "2",
                         "--max-model-len", "8192", "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    m = d["memory"]
    for path in ("weights_gib_per_gpu", "kv_cache_gib", "kv_cache_tokens", "max_concurrency"):
        assert isinstance(m["baseline"][path], (int, float))
    for path in ("kv_cache_gib", "kv_cache_tokens", "kv_tokens_lost_fraction", "max_concurrency"):
        assert isinstance(m["speculative"][path], (int, float))
    assert m["fits"] is True
    assert 0 < m["speculative"]["kv_tokens_lost_fraction"] < 1
    assert d["pairing"]["size_ratio"] > 8 and d["pairing"]["tokenizer_compatible"] is True
    assert {"name", "passed", "value", "threshold", "message"} <= set(d["checks"][0])
    assert d["config"]["vllm_command"].startswith("vllm serve meta-llama/Llama-3.1-70B-Instruct")


def test_rich_output_and_check_log(capsys):
    code, out, _ = _run(["plan", "--target", "meta-llama/Llama-3.1-8B-Instruct", "--draft",
                         "meta-llama/Llama-3.2-1B-Instruct", "--gpu", "H100", "--max-model-len", "8192",
                         "--check-log", str(FIXTURES / "vllm_v1_startup.log")], capsys)
    assert code == 0
    assert "Memory per GPU" in out and "Predicted vs logged" in out and "vllm serve" in out


def test_ngram_and_custom_gpu(capsys):
    code, out, _ = _run(["plan", "--target", "Qwen/Qwen2.5-7B-Instruct", "--method", "ngram", "--gpu-memory-gib",
                         "48", "--max-model-len", "16384", "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    assert d["memory"]["speculative"]["kv_tokens_lost"] == 0
    assert d["memory"]["settings"]["gpu"] == "custom-48GiB"


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--target", "meta-llama/Llama-3.1-8X", "--gpu", "H100"], "Did you mean"),
        (["--target", "meta-llama/Llama-3.1-70B", "--gpu", "H100", "--tp", "3", "--gpus", "3"], "does not divide"),
        (["--target", "meta-llama/Llama-3.1-8B", "--gpu", "H100", "--gpu-memory-utilization", "1.5"], "(0, 1]"),
        (["--target", "meta-llama/Llama-3.1-8B", "--gpu", "H100", "--gpu-memory-utilization", "0"], "(0, 1]"),
        (["--target", "meta-llama/Llama-3.1-8B", "--gpu", "H100", "--max-model-len", "-5"], "positive"),
        (["--target", "meta-llama/Llama-3.1-8B", "--gpu", "H100", "--context", "-1"], "positive"),
        (["--target", "meta-llama/Llama-3.1-8B"], "--gpu NAME"),
        (["--target", "meta-llama/Llama-3.1-8B", "--gpu", "H100", "--tp", "0"], "at least 1"),
        (["--target", "meta-llama/Llama-3.1-8B", "--gpu", "H100", "--target-quant", "int3"], "not a known weight format"),
        (["--target", "meta-llama/Llama-3.1-8B", "--gpu", "H100", "--draft", "meta-llama/Llama-3.2-1B",
          "--vllm-version", "0.10.0"], "NotImplementedError"),
        (["--target", "meta-llama/Llama-3.1-8B", "--gpu", "H100", "--method", "medusa"], "--method"),
        (["--target", "meta-llama/Llama-3.1-8B", "--gpu", "H100", "--check-log", "/nonexistent/log"], "cannot read"),
    ],
)
def test_bad_input_one_line_exit_2(argv, fragment, capsys):
    code, _, err = _run(["plan", *argv], capsys)
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_config_json_missing_fields(tmp_path, capsys):
    d = tmp_path / "broken"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
    code, _, err = _run(["plan", "--target", str(d), "--gpu", "H100"], capsys)
    assert code == 2 and "lacks num_hidden_layers" in err and err.count("\n") == 1


def test_catalog_command(capsys):
    code, out, _ = _run(["catalog", "--json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert len(rows) >= 40
    llama = next(r for r in rows if r["id"] == "meta-llama/Llama-3.1-8B")
    assert llama["params_total"] == 8_030_261_248 and llama["kv_bytes_per_token_bf16"] == 131_072
    code, out, _ = _run(["catalog", "--gpus"], capsys)
    assert code == 0 and "H200" in out


def test_catalog_lists_calibrations_with_their_host_classes(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    code, out, _ = _run(["catalog", "--calibrations"], capsys)
    assert code == 0 and "h200-vllm0.26-llama3.1-8b-llama3.2-1b" in out and "fast, slow" in out
    code, out, _ = _run(["catalog", "--calibrations", "--json"], capsys)
    cal = json.loads(out)[0]
    assert cal["default_host_class"] == "fast" and set(cal["host_classes"]) == {"slow"}


def test_config_file_is_a_plan_request_and_flags_override_it(capsys, tmp_path):
    code, out, _ = _run(["plan", "--target", "meta-llama/Llama-3.1-70B-Instruct", "--draft",
                         "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H200", "--gpus", "2", "--json"], capsys)
    assert code == 0
    first = json.loads(out)
    cfg = tmp_path / "plan.json"
    cfg.write_text(json.dumps(first["request"]))  # a plan's own request repeats it
    code, out, _ = _run(["plan", "--config", str(cfg), "--json"], capsys)
    assert code == 0 and json.loads(out)["memory"] == first["memory"]
    code, out, _ = _run(["plan", "--config", str(cfg), "--gpus", "4", "--json"], capsys)
    assert code == 0 and json.loads(out)["request"]["gpus"] == 4
    cfg.write_text("target: x\ngpu_count: 2\n")
    code, _, err = _run(["plan", "--config", str(cfg)], capsys)
    assert code == 2 and "unknown field(s) gpu_count" in err
    code, _, err = _run(["plan"], capsys)
    assert code == 2 and "give --target MODEL" in err
