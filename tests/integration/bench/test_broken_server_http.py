"""Bench against a deliberately broken OpenAI-compatible server: every reply malformed in a different way.

Each request is recorded exactly once per arm (as a failure naming what was wrong and the bytes), the
losslessness check is inconclusive instead of crashing, an unreadable /metrics series is skipped with a
note on the cell, no background task exception goes unobserved, and bench exits 0.
"""

import json
from collections import Counter

import pytest

from tests.cli_support import exit_code

from .sse_server import MALFORMED_MODES, ServerBehaviour, SSEServer

pytestmark = pytest.mark.integration

EXPECTED_KIND = {
    "not_json": "malformed_sse", "top_level_list": "malformed_sse", "deep_nesting": "malformed_sse",
    "choices_string": "malformed_stream", "choices_int_list": "malformed_stream", "content_int": "malformed_stream",
    "delta_list": "malformed_stream", "text_dict": "malformed_stream", "token_ids_strings": "malformed_stream",
    "token_ids_nested": "malformed_stream", "finish_reason_int": "malformed_stream",
    "usage_string": "malformed_usage", "usage_huge": "malformed_usage", "usage_list": "malformed_usage",
    "prompt_tokens_float": "malformed_usage", "spec_metrics_int": "malformed_metrics",
    "spec_metrics_field": "malformed_metrics", "error_object": "stream_error", "no_done_no_finish": "truncated_stream",
}



@pytest.mark.parametrize("workers", ["1", "2"])
def test_every_malformed_reply_is_one_failed_record_and_bench_exits_0(tmp_path, capsys, workers):
    assert set(EXPECTED_KIND) == set(MALFORMED_MODES)
    n = len(MALFORMED_MODES)
    out = tmp_path / "run"
    broken = ServerBehaviour(fault="malformed_modes", bad_position_label=True, itl_s=0.001)
    with SSEServer(broken) as base, SSEServer(broken) as spec:
        # --warmup 0: a warm-up where every request fails refuses the endpoint (exit 2) by design;
        # --error-budget 1: send every request of the cell although all fail
        code = exit_code(["bench", "--baseline", base.url, "--speculative", spec.url, "--qps", "50",
                           "--temperatures", "0", "--num-requests", str(n), "--max-tokens", "6", "--k", "3",
                           "--warmup", "0", "--error-budget", "1", "--client-workers", workers, "--out", str(out),
                           "--json"])
        # the modes each server sent: the cell's requests and the losslessness check's
        sent = {"baseline": Counter(base.modes_sent), "speculative": Counter(spec.modes_sent)}
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err and "never retrieved" not in captured.err
    result = json.loads(captured.out)
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    for role in ("baseline", "speculative"):
        recs = [r["record"] for r in rows if r["record"]["role"] == role]
        assert len(recs) == n and len({r["request_id"] for r in recs}) == n  # once each
        assert all(r.get("error") and r.get("error_kind") for r in recs)
        cell = next(c for c in result["cells"] if c["role"] == role)
        assert cell["requests_ok"] == 0 and cell["requests_failed"] == n
        # the cell's n requests are n consecutive requests to the server: every mode exactly once, each
        # recorded with the kind that names what was wrong
        assert Counter(r["error_kind"] for r in recs) == Counter(EXPECTED_KIND.values())
        assert sum(sent[role].values()) >= n
        detailed = [r for r in recs if r["error_kind"].startswith("malformed")]
        assert detailed and all(r.get("error_detail") for r in detailed)
        assert all(len(r["error_detail"]) <= 210 for r in detailed)
    assert result["complete"] is True
    assert result["lossless"]["passed"] is None  # inconclusive: the check's replies were malformed too
    assert any(f["code"] == "lossless_inconclusive" for f in result["findings"])
    notes = [f["message"] for f in result["findings"] if f["code"] == "cell_note"]
    assert any("unreadable position label" in m for m in notes), notes
    cells = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert all(c["sent"] == n for c in cells)


@pytest.mark.parametrize("reply", [[1, 2], {"data": [5]}, {"data": "abc"}, {"data": [{"id": None}]}, "text"])
def test_a_model_list_of_the_wrong_shape_is_a_one_line_error(tmp_path, capsys, reply):
    with SSEServer(ServerBehaviour(models_reply=reply)) as base, SSEServer(ServerBehaviour()) as spec:
        code = exit_code(["bench", "--baseline", base.url, "--speculative", spec.url, "--qps", "5",
                           "--num-requests", "2", "--no-lossless", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "--model NAME" in err and "Traceback" not in err
