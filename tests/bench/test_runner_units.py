"""Runner pieces that need no server: request plans, pooling of /metrics deltas, V0 labelling, config checks."""

import pytest

from specwise.bench.aggregate import pool_deltas
from specwise.bench.cell import attach_metrics, cell_id
from specwise.bench.findings import FindingContext, bench_findings
from specwise.bench.runner import BenchConfig, BenchRunner
from specwise.bench.store import RunStore
from specwise.metrics.adapters import EngineFlavor, MetricsDelta, SpecDecodeDelta
from specwise.schemas import CellSummary, Source


def _cfg(**kw):
    base = dict(baseline_url="http://a", speculative_url="http://b", qps=[2.0], num_requests=30, lossless="off")
    base.update(kw)
    return BenchConfig(**base)


def test_cell_requests_do_not_depend_on_role_and_differ_by_cell(tmp_path):
    r = BenchRunner(_cfg(), RunStore(tmp_path))
    a = r.cell_requests(2.0, 0.0, 0)
    b = r.cell_requests(2.0, 0.0, 0)
    assert [(x.prompt.prompt_id, x.scheduled_s) for x in a] == [(x.prompt.prompt_id, x.scheduled_s) for x in b]
    assert [x.scheduled_s for x in r.cell_requests(2.0, 0.0, 1)] != [x.scheduled_s for x in a]
    assert a[-1].scheduled_s == pytest.approx(29 / 2.0)
    assert cell_id("baseline", 0, 2.0, None) == "baseline/r0/q2/tmix"


def test_duration_sets_request_count(tmp_path):
    r = BenchRunner(_cfg(num_requests=None, duration_s=10), RunStore(tmp_path))
    assert len(r.cell_requests(3.0, 0.0, 0)) == 30


def test_config_validation():
    with pytest.raises(ValueError, match="exactly one"):
        BenchConfig(baseline_url="http://a", qps=[1.0])
    with pytest.raises(ValueError, match="concurrency"):
        _cfg(arrival="closed_loop")
    assert _cfg(num_requests=None).num_requests == 100


def _v1(drafts, draft_tokens, accepted, per_pos):
    spec = SpecDecodeDelta(flavor=EngineFlavor.vllm_v1, semantics="v1_accepted_prefix", k=3, drafts=drafts,
                           draft_tokens=draft_tokens, accepted=accepted, acceptance_rate=accepted / draft_tokens,
                           mean_acceptance_length=1 + accepted / drafts, per_position=per_pos)
    return MetricsDelta(flavor=EngineFlavor.vllm_v1, window_s=1.0, spec=spec)


def test_pooling_repeats_weights_by_drafts():
    pooled = pool_deltas([_v1(10, 30, 15, [0.8, 0.5, 0.2]), _v1(30, 90, 30, [0.6, 0.3, 0.1])])
    assert pooled.spec.acceptance_rate == pytest.approx(45 / 120)
    assert pooled.spec.mean_acceptance_length == pytest.approx(1 + 45 / 40)
    assert pooled.spec.per_position == pytest.approx([(8 + 18) / 40, (5 + 9) / 40, (2 + 3) / 40])
    assert pooled.window_s == 2.0


def test_v0_cells_show_the_v1_comparable_rate_and_say_so():
    spec = SpecDecodeDelta(flavor=EngineFlavor.vllm_v0, semantics="v0_all_positions", k=4, draft_tokens=400,
                           accepted=220, emitted=250, acceptance_rate=0.55, acceptance_rate_prefix_equivalent=0.375,
                           mean_acceptance_length=2.5)
    s = CellSummary(role="speculative", source=Source.measured, qps=1.0)
    attach_metrics(s, MetricsDelta(flavor=EngineFlavor.vllm_v0, window_s=1, spec=spec), None, None, [])
    assert s.acceptance_rate_metrics == 0.375 and s.acceptance_semantics_metrics == "v1_prefix_equivalent_from_v0"
    spec_no_k = spec.model_copy(update={"k": None, "acceptance_rate_prefix_equivalent": None})
    s2 = CellSummary(role="speculative", source=Source.measured, qps=1.0)
    attach_metrics(s2, MetricsDelta(flavor=EngineFlavor.vllm_v0, window_s=1, spec=spec_no_k), None, None, [])
    assert s2.acceptance_rate_metrics == 0.55 and s2.acceptance_semantics_metrics == "v0_all_positions"


def test_missing_metrics_is_said_for_the_speculative_arm():
    s = CellSummary(role="speculative", source=Source.measured, qps=1.0)
    attach_metrics(s, None, "GET http://b/metrics returned HTTP 404", None, [])
    assert "per-request estimate only" in s.metrics_note and s.acceptance_rate_metrics is None


def test_guardrails_for_synthetic_prompts_ignore_eos_and_low_temperature(tmp_path):
    r = BenchRunner(_cfg(workload="random", ignore_eos=True, temperatures=[0.0], production_temperature=0.7),
                    RunStore(tmp_path))
    findings = [f.message for f in r.result().findings]
    assert any("synthetic" in f for f in findings) and any("ignore_eos" in f for f in findings)
    assert any("production temperature 0.7" in f for f in findings)
    assert any("interrupted" in f for f in findings)  # never ran: not complete


def test_bunched_chunks_get_a_finding_naming_the_cell(tmp_path):
    bunched = CellSummary(role="baseline", source=Source.measured, qps=2.0, temperature=0.0, requests_ok=40,
                          chunks_same_read_share=0.6)
    fine = bunched.model_copy(update={"role": "speculative", "chunks_same_read_share": 0.05})
    findings = [f.message for f in bench_findings(FindingContext(cfg=_cfg(temperatures=[0.0]), pooled=[bunched, fine],
                                                                 k=3))]
    hits = [f for f in findings if "same socket read" in f]
    assert len(hits) == 1 and hits[0].startswith("baseline qps=2.0 T=0: 60% of chunks")


def test_client_workers_auto_follows_the_peak_offered_chunk_rate(tmp_path, monkeypatch):
    from specwise.bench import http_stream
    from specwise.bench.client import ClientConfig

    monkeypatch.setattr(http_stream, "kernel_stamps_supported", lambda: True)
    cfg = ClientConfig(base_url="http://a", model="m")
    slow = BenchRunner(_cfg(qps=[1.0, 2.0], max_tokens=100), RunStore(tmp_path / "a"))
    assert slow.client_workers(cfg) == 1
    fast = BenchRunner(_cfg(qps=[500.0], max_tokens=200), RunStore(tmp_path / "b"))  # 100,000 tokens/s at most
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert fast.client_workers(cfg) == 5
    assert fast.client_workers(cfg.model_copy(update={"base_url": "https://a"})) == 63  # loop stamps over TLS
    fixed = BenchRunner(_cfg(qps=[500.0], client_workers=2), RunStore(tmp_path / "c"))
    assert fixed.client_workers(cfg) == 2
    closed = BenchRunner(_cfg(qps=None, arrival="closed_loop", concurrency=8), RunStore(tmp_path / "d"))
    assert closed.client_workers(cfg) == 1


def test_https_endpoints_are_said_to_have_event_loop_arrival_stamps(tmp_path):
    plain = [f.message for f in BenchRunner(_cfg(), RunStore(tmp_path / "a")).result().findings]
    assert not any("event-loop stamps" in f for f in plain)
    tls = [f.message for f in BenchRunner(_cfg(speculative_url="https://b"), RunStore(tmp_path / "b")).result().findings]
    assert any(f.startswith("speculative: chunk arrival times are event-loop stamps") for f in tls)


def test_resume_accepts_a_run_written_before_an_option_existed_but_not_a_changed_one(tmp_path):
    import json

    from specwise.errors import UserError

    cfg = _cfg(top_p=None).model_dump(mode="json")
    old = {k: v for k, v in cfg.items() if k not in ("top_p", "top_k", "extra_body")}
    (tmp_path / "config.json").write_text(json.dumps({"bench": old}))
    store = RunStore(tmp_path)
    store.create({"bench": cfg}, resume=True)  # options added since read as unset
    store.close()
    with pytest.raises(UserError, match=r"differ from the interrupted run \(top_p\)"):
        RunStore(tmp_path).create({"bench": {**cfg, "top_p": 0.9}}, resume=True)


async def test_resume_of_a_damaged_run_says_what_is_wrong_and_leaves_its_summary(tmp_path):
    import json

    from specwise.errors import UserError

    cfg = _cfg()
    (tmp_path / "config.json").write_text(json.dumps({"bench": cfg.model_dump(mode="json")}))
    (tmp_path / "records.jsonl").write_text('{"cell": "c", "attempt": 0, "record": {"role": "x"}}\n')
    (tmp_path / "summary.json").write_text('{"kept": true}')
    with pytest.raises(UserError, match="records.jsonl line 1 is not a request record"):
        await BenchRunner(cfg, RunStore(tmp_path), resume=True).run()
    assert json.loads((tmp_path / "summary.json").read_text()) == {"kept": True}


async def test_resume_of_generated_damaged_runs_is_a_user_error_never_a_traceback(tmp_path):
    """Fixed-seed damage to records.jsonl / cells.jsonl lines (wrong types, cut lines, junk): resuming either
    reads the run (then fails to reach the endpoint: a UserError too) or names what is wrong."""
    import json
    import random

    from specwise.bench.cell import CellRun
    from specwise.errors import UserError
    from specwise.metrics.definitions import SaturationVerdict

    rng = random.Random(7)
    cfg = _cfg(baseline_url="http://127.0.0.1:9", speculative_url="http://127.0.0.1:9")
    rec = {"cell": "baseline/r0/q2/t0", "attempt": 0,
           "record": {"request_id": "r1", "role": "baseline", "ttft_s": 0.1, "e2e_s": 0.4, "output_tokens": 5}}
    cell = CellRun(cell_id="baseline/r0/q2/t0", role="baseline", qps=2.0, temperature=0.0, repeat=0, attempt=0,
                   summary=CellSummary(role="baseline", source=Source.measured, qps=2.0, requests_ok=1),
                   saturation=SaturationVerdict(saturated=False), sent=1).model_dump(mode="json")
    junk = ["abc", -1, 1e308, None, [], {}, [1], {"a": 1}, True, "9" * 50]

    def damage(obj):
        obj = json.loads(json.dumps(obj))
        cur = obj
        while isinstance(cur, dict) and cur and rng.random() < 0.6:
            key = rng.choice(list(cur))
            if not isinstance(cur[key], dict):
                break
            cur = cur[key]
        if isinstance(cur, dict) and cur:
            cur[rng.choice(list(cur))] = rng.choice(junk)
        return obj

    for i in range(150):
        run = tmp_path / f"run{i}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"bench": cfg.model_dump(mode="json")}))
        recs = [json.dumps(damage(rec) if rng.random() < 0.5 else rec) for _ in range(3)]
        cells = [json.dumps(damage(cell) if rng.random() < 0.5 else cell)]
        text = {"records.jsonl": "\n".join(recs) + "\n", "cells.jsonl": "\n".join(cells) + "\n"}
        name = rng.choice(list(text))
        if rng.random() < 0.3:
            text[name] = text[name][: rng.randrange(len(text[name]))]  # cut anywhere
        for n, t in text.items():
            (run / n).write_text(t)
        with pytest.raises(UserError):
            await BenchRunner(cfg, RunStore(run), resume=True).run()


def _steady(role, p10, p90, **kw):
    return CellSummary(role=role, source=Source.measured, qps=8.0, temperature=0.0, requests_ok=160,
                       step_window_p10_s=p10, step_window_p90_s=p90, step_windows=20, **kw)


def test_a_speculative_step_that_switches_speed_is_a_warning_and_a_steady_one_is_not():
    def unsteady(*cells):
        return [f for f in bench_findings(FindingContext(cfg=_cfg(temperatures=[0.0]), pooled=list(cells), k=4))
                if f.code == "step_time_unsteady"]

    base = _steady("baseline", 0.0047, 0.0048)
    # round 5 of issue 12 (8 req/s): per-second step 15-26 ms against a baseline steady within 2 %
    hit = unsteady(base, _steady("speculative", 0.0157, 0.0259))
    assert len(hit) == 1 and hit[0].severity == "warning"
    assert "speculative qps=8.0 T=0" in hit[0].message and "15.7-25.9 ms" in hit[0].message
    assert hit[0].evidence["spread"] == pytest.approx(1.65, abs=0.01) and "--repeats 3" in hit[0].message
    assert not unsteady(base, _steady("speculative", 0.0157, 0.0180))  # 1.15: steady enough
    # the baseline swung as much (load moving the batch): not the speculative server's doing
    assert not unsteady(_steady("baseline", 0.0050, 0.0080), _steady("speculative", 0.0157, 0.0259))
    assert not unsteady(base, _steady("speculative", 0.0157, 0.0259, saturated=True))
    assert len(unsteady(_steady("speculative", 0.0157, 0.0259))) == 1  # no baseline at that load: judged alone
