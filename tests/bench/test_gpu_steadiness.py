"""bench's step-steadiness finding on the real H200 records of issue 12's rounds 5 and 6 (vLLM 0.26, draft_model
HIGH against the default baseline): every speculative cell below saturation switched step speeds, no baseline did."""

import gzip
import json
from collections import defaultdict
from pathlib import Path

import pytest

from specwise.bench.findings import FindingContext, bench_findings
from specwise.bench.config import BenchConfig
from specwise.metrics.definitions import summarize_cell
from specwise.schemas import RequestRecord, Source

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks/results/gpu_h200_vllm0.26"


def _pooled(run: str):
    cells = defaultdict(list)
    with gzip.open(RESULTS / run / "records.jsonl.gz", "rt") as fh:
        for line in fh:
            row = json.loads(line)
            cells[row["cell"]].append(RequestRecord.model_validate(row["record"]))
    out = []
    for cid, recs in cells.items():
        role, _, q, _ = cid.split("/")
        s = summarize_cell(recs, role=role, source=Source.measured, qps=float(q[1:]), temperature=0.0, k=4)
        s.load = s.qps
        out.append(s)
    return out


@pytest.mark.parametrize("run", ["round5/U1", "round5/P1", "round5/U2", "round6/S"])
def test_every_speculative_cell_of_rounds_5_and_6_is_flagged_and_no_baseline_is(run):
    pooled = _pooled(run)
    below = [s for s in pooled if s.qps <= 24]
    assert all(s.step_window_spread < 1.1 for s in below if s.role == "baseline")
    assert all(s.step_window_spread > 1.25 for s in below if s.role == "speculative")
    cfg = BenchConfig(baseline_url="http://a", speculative_url="http://b", qps=sorted({s.qps for s in pooled}),
                      temperatures=[0.0], lossless="off")
    flagged = {f.evidence["load"] for f in bench_findings(FindingContext(cfg=cfg, pooled=pooled, k=4))
               if f.code == "step_time_unsteady"}
    assert {s.qps for s in below} <= flagged
