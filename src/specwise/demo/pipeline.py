"""``specwise demo``: the whole pipeline on built-in defaults, with no GPU, no real server and no network.

1. **plan** the seed's example, Llama-3.1-70B-Instruct + Llama-3.1-8B-Instruct on 2x H100: it does not fit,
   so the plan's first alternative that fits (FP8 target weights) is planned too;
2. **simulate** the QPS sweep of that alternative, once per temperature of the workload;
3. start a baseline and a speculative **serve-sim** in this process (a thread with its own event loop) and run
   a short real **bench** against them over QPS x temperature (real HTTP on 127.0.0.1);
4. **decide** from the plan, the acceptance profile and both runs;
5. write the **report** (HTML, Markdown, JSON) and return where it is.

Every stage writes its output as soon as it finishes (bench writes every request as it completes), into a
fresh directory per demo run, so nothing measured is lost if a later stage fails or the user interrupts.
The acceptance of the pair is ASSUMED (simulate's default profile); serve-sim runs in real time
(time scale 1), so the measured and simulated loads are in the same req/s.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from specwise.errors import UserError
from specwise.report.inputs import COMMAND_FILE, ReportInputs, RunInput, read_run_dir
from specwise.schemas.acceptance import AcceptanceProfile
from specwise.schemas.decision import Decision
from specwise.schemas.plan import PlanRequest, PlanResult
from specwise.schemas.results import RunResult
from specwise.schemas.workload import (
    SLO,
    DeploymentSpec,
    LengthDistribution,
    LoadSpec,
    TrafficCategory,
    WorkloadProfile,
)

__all__ = ["DemoResult", "DemoSettings", "run_demo"]

TARGET = "meta-llama/Llama-3.1-70B-Instruct"
DRAFT = "meta-llama/Llama-3.1-8B-Instruct"
GPU = "H100"
GPUS = 2
MAX_MODEL_LEN = 8192
K = 4


DEMO_NOTE = ("This is specwise's demo. Its 'measured' runs were measured by a real specwise bench, but against "
             "serve-sim, a simulated vLLM of the plan's alternative, with an ASSUMED acceptance profile: the report "
             "shows the pipeline and what its answer looks like, not a verdict on real hardware.")


@dataclass
class DemoSettings:
    """The demo's knobs; the defaults keep it under two minutes on a 2-core machine."""

    out: Path = Path("specwise-demo")
    bench_qps: tuple[float, ...] = (2.0, 4.0, 8.0)
    temperatures: tuple[float, ...] = (0.0, 1.0)
    bench_duration_s: float = 4.0
    max_tokens: int = 64
    sim_qps: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    sim_duration_s: float = 30.0
    seed: int = 0


@dataclass
class DemoResult:
    run_dir: Path
    decision: Decision
    report: Path
    timings_s: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def demo_workload() -> WorkloadProfile:
    """The built-in workload: half structured extraction at T=0, half chat at T=1, E2E SLO."""
    return WorkloadProfile(
        name="demo: 70B + 8B draft on 2x H100 (FP8 target)",
        categories=[TrafficCategory(name="json_extraction", share=0.5, temperature=0.0),
                    TrafficCategory(name="chat", share=0.5, temperature=1.0)],
        prompt_tokens=LengthDistribution(mean=200, cv=0.5),
        output_tokens=LengthDistribution(mean=64, cv=0.0),
        load=LoadSpec(kind="qps", typical=2.0, peak=4.0),
        slo=SLO(metric="e2e", p99_target=5.0),
        deployment=DeploymentSpec(target=TARGET, draft=DRAFT, method="draft_model", k=K, gpu=GPU, gpus=GPUS,
                                  tp=GPUS, target_quant="fp8", max_model_len=MAX_MODEL_LEN),
    )


def _write(path: Path, text: str) -> str:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return str(path)


def _plan(run_dir: Path, say: Callable[[str], None]) -> tuple[PlanResult, PlanResult, str]:
    from specwise.plan.planner import make_plan
    from specwise.report.provenance import plan_command

    request = PlanRequest(target=TARGET, draft=DRAFT, gpu=GPU, gpus=GPUS, max_model_len=MAX_MODEL_LEN,
                          num_speculative_tokens=K)
    first = make_plan(request)
    _write(run_dir / "plan-2xH100-bf16.json", first.model_dump_json(indent=2))
    fits = [s for s in first.memory.suggestions if s.fits]
    if first.memory.fits or not fits:
        raise UserError("the demo's example was expected not to fit on 2x H100 with a fitting alternative; "
                        "the catalog changed: report this as a bug")
    choice = fits[0]
    alt = make_plan(request.model_copy(update=choice.change))
    _write(run_dir / "plan-alternative.json", alt.model_dump_json(indent=2))
    say(f"plan: {TARGET} + {DRAFT} on {GPUS}x {GPU} does NOT fit (KV budget "
        f"{first.memory.speculative.kv_cache_gib:.1f} GiB per GPU); alternative: {choice.action} -> "
        f"{alt.memory.speculative.kv_cache_tokens:,} KV tokens ({plan_command(alt.request)})")
    return first, alt, choice.action


def _deployments(alt: PlanResult, profile: AcceptanceProfile):
    from specwise.simulate.defaults import build_deployment

    s = alt.memory.settings
    common = dict(method="draft_model", draft_name=DRAFT, draft_tp=s.draft_tp or s.tp, quant=s.target_quant,
                  vllm_version=s.vllm_version, k=K)
    base, base_info = build_deployment(TARGET, s.gpu, s.tp, speculative=False, **common)
    spec, spec_info = build_deployment(TARGET, s.gpu, s.tp, acceptance=profile, speculative=True, **common)
    return base, base_info, spec, spec_info


def _simulate(run_dir: Path, settings: DemoSettings, alt: PlanResult, profile_path: Path,
              prompt_mean: float) -> list[tuple[str, RunResult]]:
    """The plan's alternative simulated over ``sim_qps``, once per temperature (same traffic shape as the bench)."""
    s = alt.memory.settings
    options = dict(target=TARGET, draft=DRAFT, gpu=s.gpu, tp=s.tp, draft_tp=s.draft_tp or s.tp,
                   quantization=s.target_quant, vllm_version=s.vllm_version, k=K,
                   acceptance_profile=str(profile_path), prompt_len=f"{prompt_mean:g}",
                   output_len=str(settings.max_tokens), qps=list(settings.sim_qps),
                   duration_s=settings.sim_duration_s, oracle=False, seed=settings.seed)
    out = []
    for t in settings.temperatures:
        result, command = _simulate_one({**options, "temperature_mix": {t: 1.0}})
        path = run_dir / f"simulated-T{t:g}.json"
        out.append((_write(path, result.model_dump_json(indent=2)), result))
        (run_dir / f"simulated-T{t:g}.command.txt").write_text(command + "\n")
    return out


def _simulate_one(options: dict[str, Any]) -> tuple[RunResult, str]:
    """One simulate run through simulate's stage API, with the `specwise simulate` command it equals."""
    from specwise.report.provenance import simulate_command
    from specwise.schemas.configs import SimulateConfig
    from specwise.simulate.stage import run as simulate

    config = SimulateConfig(**options)
    return simulate(config), simulate_command(options)


class _ServeSims:
    """A baseline and a speculative serve-sim on 127.0.0.1, served by one background event loop."""

    def __init__(self, alt: PlanResult, profile: AcceptanceProfile, seed: int) -> None:
        from specwise.simulate.serve_sim import ServeSimConfig, SimServer

        base, _, spec, _ = _deployments(alt, profile)
        model = f"{TARGET} (simulated)"
        self.servers = {
            "baseline": SimServer(base, ServeSimConfig(served_model_name=model, k=0, time_scale=1.0, seed=seed,
                                                       max_model_len=MAX_MODEL_LEN)),
            "speculative": SimServer(spec, ServeSimConfig(served_model_name=model, k=K, time_scale=1.0, seed=seed,
                                                          max_model_len=MAX_MODEL_LEN,
                                                          per_request_spec_decode_metrics="summary")),
        }
        self.urls: dict[str, str] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="serve-sim", daemon=True)
        self._runners: list[Any] = []

    def __enter__(self) -> _ServeSims:
        from specwise.simulate.serve_sim import start_server

        self._thread.start()
        for role, server in self.servers.items():
            runner, port = asyncio.run_coroutine_threadsafe(start_server(server, "127.0.0.1", 0), self._loop).result(30)
            self._runners.append(runner)
            self.urls[role] = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        for runner in self._runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class _CellProgress:
    """bench progress for the demo's terminal: one line per finished cell (the bench writes every request)."""

    def __init__(self, say: Callable[[str], None], total: int) -> None:
        self.say, self.total, self.done = say, total, 0

    def cell_started(self, cell_id: str, n_requests: int) -> None:
        pass

    def request_done(self, record: Any) -> None:
        pass

    def cell_finished(self, cell: Any) -> None:
        self.done += 1
        s = cell.summary
        e2e = f"E2E P50 {s.e2e_p50_s:.2f} s" if s.e2e_p50_s is not None else "no E2E"
        self.say(f"  cell {self.done}/{self.total}: {cell.role} {cell.qps:g} req/s T={cell.temperature:g}: "
                 f"{s.requests_ok} requests, {e2e}")

    def message(self, text: str) -> None:
        self.say(f"  {text}")


def _bench(run_dir: Path, settings: DemoSettings, alt: PlanResult, profile: AcceptanceProfile,
           say: Callable[[str], None]) -> RunInput:
    from specwise.bench.runner import BenchConfig, run_bench
    from specwise.report.provenance import bench_command

    bench_dir = run_dir / "bench"
    with _ServeSims(alt, profile, settings.seed) as sims:
        cfg = BenchConfig(baseline_url=sims.urls["baseline"], speculative_url=sims.urls["speculative"],
                          api="chat", workload="json_extraction", qps=list(settings.bench_qps),
                          temperatures=list(settings.temperatures), duration_s=settings.bench_duration_s,
                          max_tokens=settings.max_tokens, k=K, seed=settings.seed, warmup_requests=1,
                          client_workers=1, lossless="quick", production_temperature=None,
                          startup_timeout_s=60)
        say(f"bench: serve-sim baseline {sims.urls['baseline']}, speculative {sims.urls['speculative']}: "
            f"{len(settings.bench_qps)} loads x {len(settings.temperatures)} temperatures x 2 arms, "
            f"{settings.bench_duration_s:g} s of arrivals per cell")
        # the serve-sims live only inside the demo: the command is the bench half, the servers are described
        command = bench_command(cfg.model_dump(mode="json")) + (
            "  # baseline / speculative: in-process serve-sim of the plan's alternative (k=0 / k=4), "
            "e.g. specwise serve-sim --target " + TARGET + " --draft " + DRAFT + " --gpu H100 --tp 2 "
            "--quantization fp8 --k 4")
        cells = 2 * len(settings.bench_qps) * len(settings.temperatures)
        try:
            asyncio.run(run_bench(cfg, str(bench_dir), progress=_CellProgress(say, cells)))
        finally:
            # beside the run bench wrote (it starts only in a new or empty directory)
            if bench_dir.is_dir():
                (bench_dir / COMMAND_FILE).write_text(command + "\n")
    return read_run_dir(bench_dir)


def _decide(workload: WorkloadProfile, plan: PlanResult, evidence_paths: list[str]) -> Decision:
    """decide's public API on the files the demo wrote (so the decision's evidence names them)."""
    from specwise.decide import decide, load_evidence

    evidence = load_evidence(evidence_paths)
    return decide(workload, plan=plan, profiles=evidence.profiles, runs=evidence.runs)


def _fresh_dir(root: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = root / stamp
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = root / f"{stamp}-{n}"
    try:
        run_dir.mkdir(parents=True)
    except OSError as exc:
        raise UserError(f"--out {root}: cannot create {run_dir} ({exc.strerror}); pick a writable directory") \
            from None
    return run_dir


def run_demo(settings: DemoSettings, say: Callable[[str], None] = print) -> DemoResult:
    run_dir = _fresh_dir(settings.out)
    try:
        return _run(settings, run_dir, say)
    except KeyboardInterrupt:
        say(f"interrupted: everything produced so far is in {run_dir} (the bench keeps every finished request)")
        raise


def _run(settings: DemoSettings, run_dir: Path, say: Callable[[str], None]) -> DemoResult:
    from specwise.report import write_report
    from specwise.simulate.defaults import default_acceptance

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    files: dict[str, str] = {}

    def lap(name: str, start: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - start, 2)
        return now

    workload = demo_workload()
    files["workload"] = _write(run_dir / "workload.yaml",
                               yaml.safe_dump(workload.model_dump(mode="json"), sort_keys=False))
    profile = default_acceptance(TARGET, DRAFT)
    files["acceptance_profile"] = _write(run_dir / "acceptance-profile.json", profile.model_dump_json(indent=2))

    t = time.perf_counter()
    first, alt, _ = _plan(run_dir, say)
    files["plan"], files["plan_alternative"] = str(run_dir / "plan-2xH100-bf16.json"), str(run_dir / "plan-alternative.json")
    t = lap("plan", t)

    sims = _simulate(run_dir, settings, alt, Path(files["acceptance_profile"]),
                     prompt_mean=workload.prompt_tokens.mean)
    for path, res in sims:
        files[Path(path).stem] = path
        cross = res.crossovers[0] if res.crossovers else None
        where = (f"at {cross.value:.2f} req/s" if cross and cross.value is not None
                 else f"{cross.position.replace('_', ' ')}" if cross else "n/a")
        say(f"simulate: {Path(path).name}: crossover {where} (simulated E2E P50 speedup through 1)")
    t = lap("simulate", t)

    measured = _bench(run_dir, settings, alt, profile, say)
    files["bench"] = str(run_dir / "bench")
    for c in measured.result.comparisons:
        s = c.speedup_e2e_p50
        say(f"bench: {c.load:g} req/s T={c.temperature:g}: E2E P50 speedup {s.value:.2f}"
            + (f" (95% CI {s.ci_low:.2f}-{s.ci_high:.2f})" if s.ci_low is not None and s.ci_high is not None else ""))
    t = lap("bench", t)

    decision = _decide(workload, alt, [files["acceptance_profile"], *(p for p, _ in sims), files["bench"]])
    files["decision"] = _write(run_dir / "decision.json", decision.model_dump_json(indent=2))
    t = lap("decide", t)

    inputs = ReportInputs(decision=decision, decision_path=files.get("decision"), workload=workload,
                          workload_path=files["workload"],
                          runs=[RunInput(path=p, result=r, command=Path(p).with_suffix(".command.txt").read_text().strip())
                                for p, r in sims]
                          + [measured],
                          plans=[(files["plan"], first), (files["plan_alternative"], alt)],
                          profiles=[(files["acceptance_profile"], profile)], notes=[DEMO_NOTE])
    report = run_dir / "report.html"
    write_report(decision, inputs, report)
    lap("report", t)
    timings["total"] = round(time.perf_counter() - t0, 2)
    _write(run_dir / "demo.json", json.dumps({"timings_s": timings, "files": files,
                                              "verdict": decision.verdict}, indent=2))
    return DemoResult(run_dir=run_dir, decision=decision, report=report, timings_s=timings, files=files)
