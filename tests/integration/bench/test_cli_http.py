"""`specwise bench --json` end to end against two real streaming servers."""

import json

import pytest

from specwise.cli.main import main

from .sse_server import ServerBehaviour, SSEServer

pytestmark = pytest.mark.integration

CELL_FIELDS = {"role", "qps", "temperature", "requests_ok", "requests_failed", "ttft_p50_s", "ttft_p99_s",
               "tpot_p50_s", "tpot_p99_s", "itl_per_token_p50_s", "itl_per_chunk_p50_s", "e2e_p50_s", "e2e_p99_s",
               "output_tokens_per_s", "acceptance_rate_metrics", "mean_acceptance_length_metrics",
               "acceptance_rate_per_request_p10", "acceptance_rate_per_request_p50",
               "acceptance_rate_per_request_p90"}


def test_bench_json_output(tmp_path, capsys):
    with SSEServer(ServerBehaviour(spec=False)) as base, SSEServer(ServerBehaviour(tokens_per_chunk=[4])) as spec:
        main(["bench", "--baseline", base.url, "--speculative", spec.url, "--qps", "20,40",
              "--temperatures", "0,0.7", "--num-requests", "8", "--max-tokens", "13", "--k", "3",
              "--out", str(tmp_path / "run"), "--json", "--no-lossless"])
    data = json.loads(capsys.readouterr().out)
    assert len(data["cells"]) == 8 and len(data["comparisons"]) == 4
    for cell in data["cells"]:
        assert CELL_FIELDS <= set(cell)
    spec_cell = next(c for c in data["cells"] if c["role"] == "speculative")
    # 13 tokens = prefill + 3 steps of 4 tokens: every draft fully accepted
    assert spec_cell["acceptance_rate_metrics"] == pytest.approx(1.0)
    assert spec_cell["mean_acceptance_length_metrics"] == pytest.approx(4.0)
    assert spec_cell["acceptance_rate_per_request_p50"] == pytest.approx(1.0)  # from chunks (no server metrics)
    comp = data["comparisons"][0]
    assert {"speedup_tpot_p50", "speedup_tpot_p99", "speedup_e2e_p50", "speedup_e2e_p99"} <= set(comp)
    assert comp["speedup_tpot_p50"]["value"] > 1 and comp["speedup_tpot_p50"]["ci_low"] is not None
    assert (tmp_path / "run" / "summary.json").exists()
