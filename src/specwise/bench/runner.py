"""The A/B runner: the same requests on the same arrival schedule to a baseline and a speculative arm,
over QPS x temperature cells, with /metrics deltas per cell and comparisons with confidence intervals.

One cell = (role, repeat, qps, temperature). Its requests and send times depend only on
(seed, repeat, qps, temperature), never on the role, so both arms see identical traffic. Every
finished request is appended to the run directory at once; /metrics is scraped right before and
right after the cell (so acceptance belongs to exactly that traffic) and its load gauges are sampled
during it.

With already-running endpoints the arms alternate cell by cell (drift hits both equally); with
launched servers (``--baseline-cmd`` / ``--speculative-cmd``) all of one arm's cells run, then the
other's, since a single GPU box holds one server at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import platform
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import Field, model_validator

from specwise import __version__
from specwise.bench.arrivals import ArrivalSpec, SaturationVerdict, detect_saturation, requests_for_duration, schedule
from specwise.bench.client import ClientConfig, StreamingClient, api_key_headers, discover_model
from specwise.bench.http_stream import kernel_stamps_for
from specwise.bench.lossless import LosslessPlan, LosslessSamples, collect_lossless_samples, compare_lossless
from specwise.bench.memory_check import check_server_memory, load_plan_file
from specwise.bench.servers import (
    LaunchedServer,
    ServerInfo,
    compare_settings,
    like_for_like_baseline_cmd,
    probe_server,
)
from specwise.bench.shards import ShardedSender, default_client_workers
from specwise.bench.store import RunStore
from specwise.bench.workloads import RequestSpec, Workload, build_workload
from specwise.crossover import crossovers_from_comparisons
from specwise.errors import UserError
from specwise.metrics.adapters import GaugeSample, GaugeSummary, MetricsDelta, delta, sample_gauges, summarize_gauges
from specwise.metrics.definitions import per_request_acceptance, summarize_cell
from specwise.metrics.prometheus import MetricsSnapshot, MetricsUnavailable, scrape_metrics
from specwise.schemas.base import Source, SpecwiseModel
from specwise.schemas.results import (
    AcceptanceBreakdown,
    CellSummary,
    Comparison,
    LosslessCheck,
    RequestRecord,
    Role,
    RunInputs,
    RunResult,
    SpeedupCI,
)
from specwise.stats import bootstrap_ratio_ci, percentile

__all__ = ["BenchConfig", "BenchRunner", "CellRun", "Progress", "run_bench"]

ROLES: tuple[Role, Role] = ("baseline", "speculative")
LIKE_FOR_LIKE: Role = "baseline_like_for_like"
ROLE_ORDER = ("baseline", LIKE_FOR_LIKE, "speculative")
P99_MIN_REQUESTS = 100  # below this a P99 is an extrapolation from the top one or two requests
P50_MIN_REQUESTS = 10


# Request fields the bench sets itself (per request or from its own options); --extra-body may not override them.
BENCH_OWNED_FIELDS = frozenset({"model", "messages", "prompt", "stream", "stream_options", "max_tokens",
                                "max_completion_tokens", "temperature", "seed", "n", "top_p", "top_k"})


class BenchConfig(SpecwiseModel):
    """Every input of a bench run (recorded in config.json; ``--resume`` requires the same)."""

    baseline_url: str | None = None
    speculative_url: str | None = None
    baseline_cmd: str | None = None
    speculative_cmd: str | None = None
    model: str | None = None
    api: Literal["chat", "completions"] = "chat"
    api_key_env: str | None = None
    qps: list[float] | None = Field(None, description="request rates; None = automatic sweep to saturation")
    sweep_start: float = 1.0
    sweep_factor: float = 2.0
    sweep_max: float = 256.0
    temperatures: list[float | None] = Field(default_factory=lambda: [0.0],
                                             description="None = the workload's temperature distribution")
    workload: str = "chat"
    workload_temperatures: dict[float, float] | None = None
    num_requests: int | None = Field(None, ge=1)
    duration_s: float | None = Field(None, gt=0)
    arrival: Literal["poisson", "constant", "gamma", "closed_loop"] = "poisson"
    burstiness: float = Field(1.0, gt=0)
    concurrency: int | None = Field(None, ge=1)
    repeats: int = Field(1, ge=1)
    k: int | None = Field(None, ge=1, description="draft length; else from the server's config or /metrics")
    seed: int = 0
    max_tokens: int | None = Field(None, ge=1, description="forces every request's max_tokens (default: per prompt)")
    timeout_s: float = Field(600.0, gt=0)
    error_budget: float = Field(0.2, ge=0, le=1, description="abort a cell when this share of its requests failed")
    gauge_interval_s: float = Field(1.0, gt=0)
    production_temperature: float | None = Field(None, ge=0)
    ignore_eos: bool = False
    token_counting: Literal["auto", "usage", "token_ids", "logprobs", "text"] = "auto"
    request_token_ids: bool = False
    lossless: Literal["off", "quick", "full"] = "quick"
    startup_timeout_s: float = 1800.0
    warmup_requests: int = Field(2, ge=0)
    client_workers: int | None = Field(None, ge=1, description="client processes streaming each cell (open-loop "
                                       "arrivals); None = auto from the peak offered chunk rate "
                                       "(specwise.bench.shards.default_client_workers)")
    like_for_like: bool = Field(False, description="also run the baseline with the speculative arm's other "
                                "engine settings forced (needs --baseline-cmd)")
    top_p: float | None = Field(None, gt=0, le=1, description="top_p sent with every request (None: the server's "
                                "default); verification truncates the target to it, which changes acceptance")
    top_k: int | None = Field(None, description="top_k sent with every request (None: the server's default)")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="further sampling fields sent with every "
                                       "request, e.g. {\"min_p\": 0.05, \"repetition_penalty\": 1.1}")
    gpu: str | None = Field(None, description="catalog GPU of launched servers, for the plan their startup "
                            "memory is compared with")
    gpu_memory_gib: float | None = Field(None, gt=0, description="total memory of a GPU not in the catalog, GiB")
    plan_file: str | None = Field(None, description="`specwise plan --json` output to compare startup memory "
                                  "with, instead of a plan derived from each command")

    def sampling_body(self) -> dict[str, Any]:
        """The request fields besides temperature that shape sampling (the same for both arms)."""
        body = dict(self.extra_body)
        if self.top_p is not None:
            body["top_p"] = self.top_p
        if self.top_k is not None:
            body["top_k"] = self.top_k
        return body

    @model_validator(mode="after")
    def _check(self) -> BenchConfig:
        for role in ROLES:
            url, cmd = getattr(self, f"{role}_url"), getattr(self, f"{role}_cmd")
            if bool(url) == bool(cmd):
                raise UserError(f"give exactly one of --{role} URL or --{role}-cmd COMMAND")
        if self.num_requests is None and self.duration_s is None:
            self.num_requests = 100
        if self.arrival == "closed_loop" and self.concurrency is None:
            raise UserError("--arrival closed_loop needs --concurrency N")
        if self.top_k is not None and self.top_k != -1 and self.top_k < 1:
            raise UserError(f"--top-k must be >= 1 (or -1 for all tokens), not {self.top_k}")
        owned = sorted(set(self.extra_body) & BENCH_OWNED_FIELDS)
        if owned:
            raise UserError(f"--extra-body may not set {', '.join(owned)}: the bench sets them per request "
                            "(use --temperatures, --max-tokens, --top-p, --top-k, --model, --api)")
        if self.like_for_like and not self.baseline_cmd:
            raise UserError("--like-for-like relaunches the baseline with forced settings: it needs --baseline-cmd")
        if (self.gpu or self.gpu_memory_gib or self.plan_file) and not self.launches:
            raise UserError("--gpu / --gpu-memory-gib / --plan compare the startup log of a server the bench "
                            "launches: give --baseline-cmd and/or --speculative-cmd")
        if self.gpu:
            from specwise.catalog.models import get_gpu

            self.gpu = get_gpu(self.gpu).name
        return self

    @property
    def launches(self) -> bool:
        return bool(self.baseline_cmd or self.speculative_cmd)


class CellRun(SpecwiseModel):
    """One finished cell of one arm (a line of cells.jsonl)."""

    cell_id: str
    role: Role
    qps: float | None
    temperature: float | None
    repeat: int
    attempt: int
    summary: CellSummary
    metrics: MetricsDelta | None = None
    metrics_error: str | None = None
    gauges: GaugeSummary | None = None
    saturation: SaturationVerdict
    aborted: str | None = None


class Progress(Protocol):
    def cell_started(self, cell_id: str, n_requests: int) -> None: ...
    def request_done(self, record: RequestRecord) -> None: ...
    def cell_finished(self, cell: CellRun) -> None: ...
    def message(self, text: str) -> None: ...


class _NoProgress:
    def cell_started(self, cell_id: str, n_requests: int) -> None:
        pass

    def request_done(self, record: RequestRecord) -> None:
        pass

    def cell_finished(self, cell: CellRun) -> None:
        pass

    def message(self, text: str) -> None:
        pass


def cell_id(role: str, repeat: int, qps: float | None, temperature: float | None) -> str:
    t = "mix" if temperature is None else f"{temperature:g}"
    q = "closed" if qps is None else f"{qps:g}"
    return f"{role}/r{repeat}/q{q}/t{t}"


def _cell_seed(seed: int, repeat: int, qps: float | None, temperature: float | None) -> int:
    key = f"{seed}|{repeat}|{qps}|{temperature}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little")


class BenchRunner:
    """Runs a :class:`BenchConfig` into a run directory and returns the :class:`RunResult`."""

    def __init__(self, cfg: BenchConfig, store: RunStore, progress: Progress | None = None,
                 workload: Workload | None = None, resume: bool = False) -> None:
        self.cfg = cfg
        self.store = store
        self.progress = progress or _NoProgress()
        temps = cfg.workload_temperatures or {0.0: 1.0}
        self.workload = workload or build_workload(cfg.workload, temperatures=temps)
        if cfg.max_tokens:
            self.workload.max_tokens_override = cfg.max_tokens
        if cfg.ignore_eos:
            self.workload.ignore_eos = True
        self.resume = resume
        self.servers: dict[str, ServerInfo] = {}
        self.cells: dict[str, CellRun] = {}
        self.records: dict[str, list[RequestRecord]] = {}
        self.lossless_samples: dict[str, LosslessSamples] = {}
        self.lossless: LosslessCheck | None = None
        self.findings_extra: list[str] = []
        self.sweep_rates: list[float] | None = None
        self.complete = False
        self._attempts: dict[str, int] = {}
        self.models: dict[str, str] = {}  # per role, from --model or /v1/models; cfg stays as the user wrote it
        # Read before any server starts, so a bad --plan file costs no launch.
        self.plan = load_plan_file(cfg.plan_file) if cfg.plan_file else None

    # --- top level -------------------------------------------------------------------------------
    async def run(self) -> RunResult:
        self.store.create({"tool_version": __version__, "python": platform.python_version(),
                           "platform": platform.platform(), "bench": self.cfg.model_dump(mode="json")},
                          resume=self.resume)
        self._load_finished()
        try:
            if self.cfg.launches:
                for role in ROLES:
                    await self._run_launched_role(role)
                if self.cfg.like_for_like:
                    await self._run_like_for_like()
            else:
                await self._run_urls()
            self._finish_lossless()
            self.complete = True
        finally:
            result = self.result()
            self.store.write_json("summary.json", result)
            self.store.close()
        return result

    def _load_finished(self) -> None:
        if not self.resume:
            return
        recs = self.store.records()
        for cid, attempt in recs:
            self._attempts[cid] = max(self._attempts.get(cid, 0), attempt + 1)
        for row in self.store.finished_cells():
            cell = CellRun(**row)
            self.cells[cell.cell_id] = cell
            self.records[cell.cell_id] = recs.get((cell.cell_id, cell.attempt), [])
        info_dir = self.store.path("servers")
        for role in ROLE_ORDER:
            p = info_dir / f"{role}.json"
            if p.exists():
                self.servers[role] = ServerInfo.model_validate_json(p.read_text())
        lossless_path = self.store.path("lossless_samples.json")
        if lossless_path.exists():
            import json

            data = json.loads(lossless_path.read_text())
            self.lossless_samples = {r: LosslessSamples(**v) for r, v in data.items()}
        if self.cfg.qps is None:
            done = sorted({c.qps for c in self.cells.values() if c.role == "baseline" and c.qps is not None})
            self.sweep_rates = done or None
        if self.cells:
            self.progress.message(f"resuming: {len(self.cells)} finished cells kept")

    def _client_config(self, role: str, url: str) -> ClientConfig:
        return ClientConfig(base_url=url, model=self.models[role], api=self.cfg.api,
                            api_key_env=self.cfg.api_key_env, timeout_s=self.cfg.timeout_s,
                            token_counting=self.cfg.token_counting, ignore_eos=self.cfg.ignore_eos,
                            request_token_ids=self.cfg.request_token_ids, extra_body=self.cfg.sampling_body())

    async def _prepare_endpoint(self, role: Role, url: str, launched: LaunchedServer | None) -> ClientConfig:
        self.models[role] = self.cfg.model or await discover_model(url, self.cfg.api_key_env)
        cfg = self._client_config(role, url)
        info = launched.info() if launched else ServerInfo(role=role, url=url)
        info = await probe_server(url, role, headers=api_key_headers(cfg), info=info)
        if launched:
            info.memory_check = check_server_memory(
                role, launched.parsed, launched.log_text(), gpu=self.cfg.gpu,
                gpu_memory_gib=self.cfg.gpu_memory_gib, plan=self.plan, server_settings=info.settings,
                reported_version=info.version)
        self.servers[role] = info
        self.store.write_json(f"servers/{role}.json", info)
        return cfg

    def _k(self) -> int | None:
        if self.cfg.k:
            return self.cfg.k
        spec = self.servers.get("speculative")
        if spec and spec.k:
            return spec.k
        for cell in self.cells.values():
            if cell.metrics and cell.metrics.spec and cell.metrics.spec.k:
                return cell.metrics.spec.k
        return None

    async def _run_urls(self) -> None:
        cfgs = {
            "baseline": await self._prepare_endpoint("baseline", self.cfg.baseline_url, None),  # type: ignore[arg-type]
            "speculative": await self._prepare_endpoint("speculative", self.cfg.speculative_url, None),  # type: ignore
        }
        senders = {role: self._sender(c) for role, c in cfgs.items()}
        try:
            async with StreamingClient(cfgs["baseline"]) as base, StreamingClient(cfgs["speculative"]) as spec:
                clients = {"baseline": base, "speculative": spec}
                for role, client in clients.items():
                    await self._warmup(client, role)
                    await self._collect_lossless(role, client)
                for rate in self._rates():
                    saturated = False
                    for repeat in range(self.cfg.repeats):
                        for temp in self.cfg.temperatures:
                            for role in ROLES:
                                cell = await self._run_cell(clients[role], role, rate, temp, repeat, senders[role])
                                saturated |= cell.saturation.saturated
                    if self.cfg.qps is None:
                        self.sweep_rates = sorted(set(self.sweep_rates or []) | {rate})
                        if saturated:
                            break
        finally:
            for sender in senders.values():
                if sender is not None:
                    sender.close()

    def client_workers(self, cfg: ClientConfig) -> int:
        """``--client-workers``, or its automatic value for this endpoint and the planned peak rate."""
        if self.cfg.client_workers is not None:
            return self.cfg.client_workers
        if self.cfg.arrival == "closed_loop":
            return 1
        peak_rate = max((r for r in self._rates() if r is not None), default=0.0)
        reqs = self.cell_requests(peak_rate or 1.0, self.cfg.temperatures[0], 0)
        mean_tokens = float(np.mean([r.max_tokens for r in reqs])) if reqs else 0.0
        # at most one chunk per token: rate x mean max_tokens bounds the chunk rate from above
        kernel = kernel_stamps_for(cfg.root)
        return default_client_workers(peak_rate * mean_tokens, kernel_stamps=kernel)

    def _sender(self, cfg: ClientConfig) -> ShardedSender | None:
        workers = self.client_workers(cfg)
        if workers <= 1 or self.cfg.arrival == "closed_loop":
            return None
        self.progress.message(f"{workers} client worker processes for {cfg.root}")
        return ShardedSender(cfg, workers)

    async def _run_like_for_like(self) -> None:
        spec = self.servers.get("speculative")
        cmd = like_for_like_baseline_cmd(self.cfg.baseline_cmd, spec) if spec else None  # type: ignore[arg-type]
        if cmd is None:
            self.findings_extra.append("--like-for-like: no non-speculative setting of the speculative arm is known "
                                       "to force; the default baseline is already the like-for-like one")
            return
        self.progress.message(f"like-for-like baseline: {cmd}")
        await self._run_launched_role(LIKE_FOR_LIKE, cmd=cmd)

    async def _run_launched_role(self, role: Role, cmd: str | None = None) -> None:
        url = None if cmd else getattr(self.cfg, f"{role}_url")
        cmd = cmd or getattr(self.cfg, f"{role}_cmd")
        pending = [c for c in self._planned_cells(role) if c not in self.cells]
        need_lossless = self.cfg.lossless != "off" and role in ROLES and role not in self.lossless_samples
        sweeping = self.cfg.qps is None and role == "baseline" and not self._sweep_done()
        if not pending and not need_lossless and not sweeping:
            return
        launched = None
        sender: ShardedSender | None = None
        if cmd:
            launched = LaunchedServer(role, cmd, self.store.path(f"servers/{role}.log"), self.cfg.startup_timeout_s)
            self.progress.message(f"starting {role} server: {cmd}")
            launched.start()
            url = launched.url
        try:
            if launched:
                await launched.wait_healthy()
            cfg = await self._prepare_endpoint(role, url, launched)
            sender = self._sender(cfg)
            async with StreamingClient(cfg) as client:
                await self._warmup(client, role)
                await self._collect_lossless(role, client)
                rates = self._rates() if (role == "baseline" or self.sweep_rates is None) else self.sweep_rates
                for rate in rates:
                    saturated = False
                    for repeat in range(self.cfg.repeats):
                        for temp in self.cfg.temperatures:
                            cell = await self._run_cell(client, role, rate, temp, repeat, sender)
                            saturated |= cell.saturation.saturated
                    if self.cfg.qps is None and role == "baseline":
                        self.sweep_rates = sorted(set(self.sweep_rates or []) | {rate})
                        if saturated:
                            break
        finally:
            if sender is not None:
                sender.close()
            if launched:
                self.progress.message(f"stopping {role} server")
                launched.stop()

    def _sweep_done(self) -> bool:
        """A resumed sweep is finished when its last rate saturated or the next rate exceeds the maximum."""
        if not self.sweep_rates:
            return False
        last = self.sweep_rates[-1]
        if last * self.cfg.sweep_factor > self.cfg.sweep_max:
            return True
        return any(c.saturation.saturated for c in self.cells.values() if c.role == "baseline" and c.qps == last)

    def _rates(self) -> list[float | None]:
        if self.cfg.arrival == "closed_loop":
            return [None]
        if self.cfg.qps is not None:
            return list(self.cfg.qps)
        rates, r = [], self.cfg.sweep_start
        while r <= self.cfg.sweep_max:
            rates.append(r)
            r *= self.cfg.sweep_factor
        return rates

    def _planned_cells(self, role: str) -> list[str]:
        rates = self.sweep_rates if (self.cfg.qps is None and self.sweep_rates) else self._rates()
        return [cell_id(role, rep, q, t) for q in rates for rep in range(self.cfg.repeats)
                for t in self.cfg.temperatures]

    async def _warmup(self, client: StreamingClient, role: str) -> None:
        """A few requests first (not recorded), so lazy initialisation does not land in the first cell."""
        if self.cfg.warmup_requests <= 0:
            return
        reqs = self.workload.sample(self.cfg.warmup_requests, seed=self.cfg.seed + 7, temperature=0.0)
        outs = await asyncio.gather(*(client.send(r.model_copy(update={"max_tokens": 8}), role=role) for r in reqs))
        failed = [o for o in outs if not o.record.ok]
        if len(failed) == len(outs):
            raise UserError(f"{role} endpoint {client.url}: every warm-up request failed "
                            f"({failed[0].record.error_kind}: {failed[0].record.error})")

    # --- losslessness ----------------------------------------------------------------------------
    def _lossless_plan(self) -> LosslessPlan:
        temps = [t for t in self.cfg.temperatures if t]
        t = max(temps) if temps else (self.cfg.production_temperature or 0.8)
        plan = LosslessPlan.full if self.cfg.lossless == "full" else LosslessPlan.quick
        return plan(temperature=t, seed=self.cfg.seed)

    async def _collect_lossless(self, role: str, client: StreamingClient) -> None:
        if self.cfg.lossless == "off" or role in self.lossless_samples or role not in ROLES:
            return
        self.progress.message(f"losslessness check: sampling the {role} arm")
        plan = self._lossless_plan()
        # Token ids make the T>0 test per position (vLLM 0.10.2+ return_token_ids); servers that reject the
        # field get the plain requests and the test compares whole continuations instead.
        ids_cfg = client.cfg.model_copy(update={"request_token_ids": True})
        async with StreamingClient(ids_cfg) as ids_client:
            probe = self.workload.sample(1, seed=self.cfg.seed)[0].model_copy(update={"max_tokens": 2})
            out = await ids_client.send(probe, role=role)
            use = ids_client if out.record.ok and out.token_ids else client
            self.lossless_samples[role] = await collect_lossless_samples(use, self.workload, plan, role)
        self.store.write_json("lossless_samples.json",
                              {r: s.model_dump(mode="json") for r, s in self.lossless_samples.items()})

    def _finish_lossless(self) -> None:
        if self.cfg.lossless == "off":
            return
        if all(r in self.lossless_samples for r in ROLES):
            self.lossless = compare_lossless(self.lossless_samples["baseline"], self.lossless_samples["speculative"],
                                             self._lossless_plan())
            self.store.write_json("lossless.json", self.lossless)

    # --- one cell --------------------------------------------------------------------------------
    def cell_requests(self, qps: float | None, temperature: float | None, repeat: int) -> list[RequestSpec]:
        """The cell's requests with their send times; independent of the role by construction."""
        seed = _cell_seed(self.cfg.seed, repeat, qps, temperature)
        arrival = ArrivalSpec(kind=self.cfg.arrival, rate=qps, burstiness=self.cfg.burstiness,
                              concurrency=self.cfg.concurrency)
        if self.cfg.num_requests is not None:
            n = self.cfg.num_requests
        else:
            n = requests_for_duration(arrival, self.cfg.duration_s)  # type: ignore[arg-type]
        reqs = self.workload.sample(n, seed=seed, temperature=temperature)
        for r, t in zip(reqs, schedule(arrival, n, seed)):
            r.scheduled_s = t
        return reqs

    async def _scrape(self, client: StreamingClient) -> tuple[MetricsSnapshot | None, str | None]:
        try:
            return await scrape_metrics(client.cfg.root, headers=client.auth_headers), None
        except MetricsUnavailable as exc:
            return None, str(exc)

    async def _run_cell(self, client: StreamingClient, role: Role, qps: float | None, temperature: float | None,
                        repeat: int, sender: ShardedSender | None = None) -> CellRun:
        cid = cell_id(role, repeat, qps, temperature)
        if cid in self.cells:
            return self.cells[cid]
        attempt = self._attempts.get(cid, 0)
        self._attempts[cid] = attempt + 1
        reqs = self.cell_requests(qps, temperature, repeat)
        self.progress.cell_started(cid, len(reqs))
        k = self._k()
        max_per_step = (k + 1) if (role == "speculative" and k) else (None if role == "speculative" else 1)
        before, metrics_error = await self._scrape(client)
        gauges: list[GaugeSample] = []
        records: list[RequestRecord] = []
        failures = 0
        budget = max(5, int(np.ceil(self.cfg.error_budget * len(reqs))))
        abort = asyncio.Event()
        t0 = time.perf_counter()

        info = self.servers.get(role)
        try:
            coalesced = info is not None and int(info.settings.get("stream_interval", "1")) > 1
        except ValueError:
            coalesced = False

        def on_done(record: RequestRecord) -> bool:
            nonlocal failures
            if coalesced:  # --stream-interval N > 1: the server itself packs several steps into a chunk
                record.chunk_estimate_safe = False
            records.append(record)
            self.store.append_record(cid, attempt, record)
            self.progress.request_done(record)
            if not record.ok:
                failures += 1
                if failures >= budget and self.cfg.error_budget < 1:
                    abort.set()
            return abort.is_set()

        async def send(req: RequestSpec) -> None:
            out = await client.send(req, role=role, qps=qps, repeat=repeat, phase_t0=t0,
                                    max_tokens_per_step=max_per_step)
            on_done(out.record)

        async def sample_loop() -> None:
            while True:
                snap, _ = await self._scrape(client)
                if snap is not None:
                    gauges.append(sample_gauges(snap, t=time.perf_counter() - t0))
                await asyncio.sleep(self.cfg.gauge_interval_s)

        sampler = asyncio.create_task(sample_loop()) if before is not None else None
        tasks: set[asyncio.Task] = set()
        try:
            if self.cfg.arrival == "closed_loop":
                queue = list(reversed(reqs))

                async def worker() -> None:
                    while queue and not abort.is_set():
                        await send(queue.pop())

                await asyncio.gather(*(worker() for _ in range(self.cfg.concurrency or 1)))
            elif sender is not None:
                await sender.run_cell(reqs, t0=t0, role=role, qps=qps, repeat=repeat, max_per_step=max_per_step,
                                      on_record=on_done)
            else:
                for req in reqs:
                    delay = t0 + req.scheduled_s - time.perf_counter()
                    if delay > 0:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(abort.wait(), delay)
                    if abort.is_set():
                        break
                    task = asyncio.create_task(send(req))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if abort.is_set():
                    for t in list(tasks):
                        t.cancel()
                if tasks:
                    await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            if sampler:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
        after, err_after = await self._scrape(client)
        metrics = delta(before, after, k=k) if (before is not None and after is not None) else None
        metrics_error = metrics_error or err_after
        gauge_summary = summarize_gauges(gauges) if gauges else None
        summary = summarize_cell(records, role=role, source=Source.measured, qps=qps, temperature=temperature,
                                 k=k)
        _attach_metrics(summary, metrics, metrics_error, gauge_summary, records)
        ok = [r for r in records if r.ok and r.sent_s is not None and r.ttft_s is not None]
        ends = sorted(r.sent_s + r.e2e_s for r in ok if r.e2e_s is not None)
        achieved = (len(ends) - 1) / (ends[-1] - ends[0]) if len(ends) > 2 and ends[-1] > ends[0] else None
        saturation = detect_saturation(
            [r.sent_s for r in ok], [r.ttft_s for r in ok],
            offered_rate=qps if self.cfg.arrival != "closed_loop" else None, achieved_rate=achieved,
            waiting_slope_per_s=gauge_summary.waiting_slope_per_s if gauge_summary else None,
            waiting_max=gauge_summary.waiting_max if gauge_summary else None,
        )
        summary.saturated = saturation.saturated
        cell = CellRun(cell_id=cid, role=role, qps=qps, temperature=temperature, repeat=repeat, attempt=attempt,
                       summary=summary, metrics=metrics, metrics_error=metrics_error, gauges=gauge_summary,
                       saturation=saturation,
                       aborted=(f"error budget exceeded: {failures} of {len(records)} requests failed"
                                if abort.is_set() else None))
        self.cells[cid] = cell
        self.records[cid] = records
        self.store.append_cell(cell)
        self.progress.cell_finished(cell)
        return cell

    # --- result ----------------------------------------------------------------------------------
    def result(self) -> RunResult:
        k = self._k()
        pooled = self._pooled_cells(k)
        comparisons = self._comparisons()
        breakdown = self._breakdown(k)
        result = RunResult(source=Source.measured, tool_version=__version__, inputs=RunInputs.for_bench(self.cfg),
                           servers=dict(self.servers),
                           cells=pooled, comparisons=comparisons,
                           crossovers=crossovers_from_comparisons(comparisons, Source.measured),
                           acceptance_breakdown=breakdown,
                           lossless=self.lossless, complete=self.complete)
        result.findings = self._findings(pooled, k)
        if self.cfg.qps is None and self.sweep_rates:
            result.inputs.sweep_rates_run = self.sweep_rates
        # Host-side engine costs (scheduling, launches between a draft's passes) depend on the CPU: the same
        # speculative server ran at 4.3 and 6.3 ms TPOT on two H200 hosts. Launched servers share this host.
        from specwise.bench.host import host_info

        result.inputs.bench = {**(result.inputs.bench or {}), "client_host": host_info()}
        return result

    def _groups(self) -> dict[tuple[str, float | None, float | None], list[CellRun]]:
        groups: dict[tuple[str, float | None, float | None], list[CellRun]] = {}
        for cell in self.cells.values():
            groups.setdefault((cell.role, cell.qps, cell.temperature), []).append(cell)
        return groups

    def _pooled_cells(self, k: int | None) -> list[CellSummary]:
        out = []
        for (role, qps, temp), cells in sorted(self._groups().items(), key=lambda kv: (
                ROLE_ORDER.index(kv[0][0]), kv[0][1] or 0, -1 if kv[0][2] is None else kv[0][2])):
            if len(cells) == 1:
                out.append(cells[0].summary)
                continue
            records = [r for c in cells for r in self.records.get(c.cell_id, [])]
            s = summarize_cell(records, role=role, source=Source.measured, qps=qps, temperature=temp, k=k)
            s.duration_s = sum(c.summary.duration_s for c in cells)
            deltas = [c.metrics for c in cells if c.metrics is not None]
            metrics = _pool_deltas(deltas) if deltas else None
            gauges = [c.gauges for c in cells if c.gauges]
            _attach_metrics(s, metrics, next((c.metrics_error for c in cells if c.metrics_error), None),
                            None, records)
            s.kv_cache_usage_max = max((g.kv_cache_usage_max for g in gauges if g.kv_cache_usage_max is not None),
                                       default=None)
            s.num_requests_waiting_max = max((g.waiting_max for g in gauges if g.waiting_max is not None),
                                             default=None)
            s.saturated = any(c.saturation.saturated for c in cells)
            s.repeats = len(cells)
            out.append(s)
        return out

    def _comparisons(self) -> list[Comparison]:
        groups = self._groups()
        out = []
        keys = sorted({(b, q, t) for (_, q, t) in groups for b in ("baseline", LIKE_FOR_LIKE)},
                      key=lambda x: (x[1] or 0, -1 if x[2] is None else x[2], x[0] != "baseline"))
        for baseline_role, qps, temp in keys:
            base_cells = groups.get((baseline_role, qps, temp), [])
            spec_cells = groups.get(("speculative", qps, temp), [])
            if not base_cells or not spec_cells:
                continue
            base = [r for c in base_cells for r in self.records.get(c.cell_id, []) if r.ok]
            spec = [r for c in spec_cells for r in self.records.get(c.cell_id, []) if r.ok]
            by_rep_b = {c.repeat: [r for r in self.records.get(c.cell_id, []) if r.ok] for c in base_cells}
            by_rep_s = {c.repeat: [r for r in self.records.get(c.cell_id, []) if r.ok] for c in spec_cells}
            repeats = sorted(set(by_rep_b) & set(by_rep_s))
            per_repeat: dict[str, list[float | None]] = {}

            def speedup(metric: Callable[[RequestRecord], float | None], q: float, name: str) -> SpeedupCI:
                b = [v for v in map(metric, base) if v is not None]
                s = [v for v in map(metric, spec) if v is not None]
                point, low, high = bootstrap_ratio_ci(b, s, q=q, seed=self.cfg.seed)
                if len(repeats) > 1:
                    vals = []
                    for rep in repeats:
                        bv = [v for v in map(metric, by_rep_b[rep]) if v is not None]
                        sv = [v for v in map(metric, by_rep_s[rep]) if v is not None]
                        pb, ps = percentile(bv, q), percentile(sv, q)
                        vals.append(pb / ps if pb is not None and ps else None)
                    per_repeat[name] = vals
                    finite = [v for v in vals if v is not None]
                    point = float(np.median(finite)) if finite else point
                return SpeedupCI(value=point, ci_low=low, ci_high=high)

            tpot = lambda r: r.tpot_s  # noqa: E731
            e2e = lambda r: r.e2e_s  # noqa: E731
            ttft = lambda r: r.ttft_s  # noqa: E731
            comp = Comparison(
                qps=qps, temperature=temp, baseline_role=baseline_role,
                speedup_tpot_p50=speedup(tpot, 50, "tpot_p50"), speedup_tpot_p99=speedup(tpot, 99, "tpot_p99"),
                speedup_e2e_p50=speedup(e2e, 50, "e2e_p50"), speedup_e2e_p99=speedup(e2e, 99, "e2e_p99"),
                speedup_ttft_p50=speedup(ttft, 50, "ttft_p50"), repeats=max(1, len(repeats)),
            )
            comp.per_repeat = per_repeat
            b_tp = sum(c.summary.output_tokens_per_s or 0 for c in base_cells)
            s_tp = sum(c.summary.output_tokens_per_s or 0 for c in spec_cells)
            comp.throughput_ratio = (s_tp / b_tp) if b_tp > 0 else None
            out.append(comp)
        return out

    def _breakdown(self, k: int | None) -> list[AcceptanceBreakdown]:
        rows: dict[tuple[float | None, str | None], list[tuple[float | None, float | None, str | None]]] = {}
        for cell in self.cells.values():
            if cell.role != "speculative":
                continue
            for r in self.records.get(cell.cell_id, []):
                if not r.ok:
                    continue
                acc = per_request_acceptance(r, k)
                bucket = cell.temperature if cell.temperature is not None else r.temperature
                rows.setdefault((bucket, None), []).append(acc)
                rows.setdefault((bucket, r.category), []).append(acc)
        out = []
        for (temp, cat), accs in sorted(rows.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or "")):
            rates = [a[0] for a in accs if a[0] is not None]
            lengths = [a[1] for a in accs if a[1] is not None]
            sources = Counter(a[2] for a in accs if a[2])
            out.append(AcceptanceBreakdown(
                temperature=temp, category=cat, requests=len(accs),
                acceptance_rate_p10=percentile(rates, 10), acceptance_rate_p50=percentile(rates, 50),
                acceptance_rate_p90=percentile(rates, 90), acceptance_length_p50=percentile(lengths, 50),
                source=sources.most_common(1)[0][0] if sources else None,
            ))
        return out

    def _findings(self, pooled: list[CellSummary], k: int | None) -> list[str]:
        f: list[str] = []
        if self.lossless is not None and self.lossless.passed is False:
            f.append("NOT LOSSLESS: the speculative arm changes outputs (" + self.lossless.detail + "). "
                     "A speed-up that changes answers is not a speed-up.")
        base, spec = self.servers.get("baseline"), self.servers.get("speculative")
        if base and spec:
            diffs = compare_settings(base, spec, include_kv=False)
            kv_diffs = [d for d in compare_settings(base, spec) if d not in diffs]
            if diffs:
                f.append("ENGINE SETTINGS DIFFER besides speculation, so the comparison is not like-for-like: "
                         + "; ".join(diffs))
            if kv_diffs:
                f.append("KV cache capacity differs (" + "; ".join(kv_diffs) + "): expected when the draft "
                         "takes memory, and part of speculation's cost at high load; the like-for-like baseline "
                         "removes it")
            if diffs or kv_diffs:
                if self.cfg.baseline_cmd:
                    cmd = like_for_like_baseline_cmd(self.cfg.baseline_cmd, spec)
                    if cmd:
                        f.append(f"like-for-like baseline (the speculative arm's other settings forced): {cmd}")
        like = self.servers.get(LIKE_FOR_LIKE)
        if like and spec:
            still = compare_settings(like, spec)
            f.append("like-for-like baseline measured (comparisons with baseline_role=baseline_like_for_like)"
                     + (": settings still differing: " + "; ".join(still) if still else ""))
        for role in ROLE_ORDER:
            check = self.servers[role].memory_check if role in self.servers else None
            if check is not None and check.deviations:
                f.append(f"STARTUP MEMORY DIFFERS FROM THE PLAN ({role}, beyond ±{check.tolerance:.0%}): "
                         + "; ".join(check.deviations) + ". The plan's accounting does not describe this server "
                         "(check GPU, dtype, quantisation, draft); its KV capacity numbers are not to be trusted")
        if spec and spec.synthetic_acceptance:
            f.append("speculative arm uses rejection_sample_method=synthetic: its acceptance is injected, "
                     "not measured, and does not transfer to real traffic")
        loop_stamped = [role for role, url in (("baseline", self.cfg.baseline_url),
                                               ("speculative", self.cfg.speculative_url))
                        if url and not kernel_stamps_for(url)]
        if loop_stamped:
            f.append(f"{' and '.join(loop_stamped)}: chunk arrival times are event-loop stamps (https, or no kernel "
                     "receive timestamps on this OS), not the kernel's: with hundreds of concurrent streams their P99 "
                     "error reaches several ms (benchmarks/client_accuracy.py); for timing-critical cells use the "
                     "server's plain-http address or more --client-workers")
        if self.cfg.ignore_eos:
            f.append("ignore_eos is on: outputs run past their natural end, acceptance is not representative")
        if self.workload.synthetic:
            f.append("synthetic/random prompts: acceptance rates are meaningless for a deployment decision")
        temps = [t for t in self.cfg.temperatures if t is not None]
        if self.cfg.production_temperature and temps and max(temps) < self.cfg.production_temperature:
            f.append(f"all measured temperatures ({', '.join(f'{t:g}' for t in temps)}) are below the declared "
                     f"production temperature {self.cfg.production_temperature:g}: acceptance falls with "
                     "temperature, so these results overstate the benefit")
        few_p50 = [s for s in pooled if s.requests_ok < P50_MIN_REQUESTS]
        few_p99 = [s for s in pooled if P50_MIN_REQUESTS <= s.requests_ok < P99_MIN_REQUESTS]
        if few_p50:
            f.append(f"{len(few_p50)} cells have fewer than {P50_MIN_REQUESTS} successful requests "
                     f"(min {min(s.requests_ok for s in few_p50)}): even their P50 is unreliable")
        if few_p99:
            f.append(f"{len(few_p99)} cells have fewer than {P99_MIN_REQUESTS} successful requests "
                     f"(min {min(s.requests_ok for s in few_p99)}): their P99 is the top one or two requests, "
                     "not a tail estimate; raise --num-requests")
        for s in pooled:
            label = f"{s.role} qps={s.qps if s.qps is not None else 'closed-loop'} T={_t(s.temperature)}"
            total = s.requests_ok + s.requests_failed
            if s.requests_failed and total:
                kinds = ", ".join(f"{k_} x{n}" for k_, n in sorted(s.errors_by_kind.items()))
                f.append(f"{label}: {s.requests_failed}/{total} requests failed ({kinds})")
            if s.saturated:
                f.append(f"{label}: server saturated (queue/TTFT growing); latencies here reflect queueing")
            if s.metrics_note:
                f.append(f"{label}: {s.metrics_note}")
            if s.chunks_same_read_share is not None and s.chunks_same_read_share > BUNCHED_CHUNKS_WARN_SHARE:
                f.append(f"{label}: {100 * s.chunks_same_read_share:.0f}% of chunks arrived in the same socket read "
                         "as the chunk before them (the server's API process bunched its output, e.g. "
                         "--stream-interval or a saturated API server, or this client was starved of CPU: try "
                         "--client-workers); ITL and TPOT understate the engine's step time here")
        for cell in self.cells.values():
            if cell.aborted:
                f.append(f"{cell.cell_id}: stopped early, {cell.aborted}")
            if cell.metrics and cell.metrics.counter_reset:
                f.append(f"{cell.cell_id}: /metrics counters went down (server restart): deltas are partial")
        spec_cells = [s for s in pooled if s.role == "speculative"]
        if spec_cells and k is None:
            f.append("draft length k unknown (pass --k): the per-request acceptance estimate from chunks needs it")
        unsafe = [s for s in spec_cells if s.chunk_estimate_safe_share is not None
                  and s.chunk_estimate_safe_share < 0.9 and s.acceptance_source_per_request != "server"]
        for s in unsafe:
            f.append(f"speculative qps={s.qps} T={_t(s.temperature)}: in "
                     f"{100 * (1 - s.chunk_estimate_safe_share):.0f}% of requests chunks merge engine steps or "
                     f"tokens were not counted exactly (method {s.token_count_method}); their per-request "
                     "acceptance estimate is withheld, use the /metrics numbers")
        if any(s.acceptance_semantics_metrics == "v0_all_positions" for s in spec_cells):
            f.append("server is vLLM V0: acceptance_rate_metrics counts accepted positions after the first "
                     "rejection too and is NOT comparable with vLLM V1's rate (pass --k for the V1-comparable one)")
        if self.lossless is not None and self.lossless.passed is None:
            f.append(f"losslessness check could not run: {self.lossless.detail}")
        if not self.complete:
            f.append("run incomplete (interrupted): rerun with --resume to finish the remaining cells")
        return f + self.findings_extra


# Above this share of zero gaps, per-chunk timing no longer describes engine steps (a few same-read pairs are
# normal when two steps land within one scheduler tick of the client).
BUNCHED_CHUNKS_WARN_SHARE = 0.2


def _t(t: float | None) -> str:
    return "mix" if t is None else f"{t:g}"


def _attach_metrics(summary: CellSummary, metrics: MetricsDelta | None, error: str | None,
                    gauges: GaugeSummary | None, records: list[RequestRecord]) -> None:
    if metrics is not None and metrics.spec is not None and metrics.spec.has_traffic:
        sp = metrics.spec
        if sp.semantics == "v0_all_positions" and sp.acceptance_rate_prefix_equivalent is not None:
            summary.acceptance_rate_metrics = sp.acceptance_rate_prefix_equivalent
            summary.acceptance_semantics_metrics = "v1_prefix_equivalent_from_v0"
        else:
            summary.acceptance_rate_metrics = sp.acceptance_rate
            summary.acceptance_semantics_metrics = sp.semantics
        summary.mean_acceptance_length_metrics = sp.mean_acceptance_length
        summary.per_position_acceptance_metrics = sp.per_position
    if summary.role == "speculative":
        if metrics is None:
            summary.metrics_note = (f"/metrics unavailable ({error}); acceptance is the per-request estimate only"
                                    if error else None)
        elif metrics.spec is None or not metrics.spec.has_traffic:
            summary.metrics_note = (f"/metrics has no spec-decode counters ({metrics.flavor}): spec decode off, or "
                                    "--disable-log-stats; acceptance is the per-request estimate only")
    if gauges is not None:
        summary.kv_cache_usage_max = gauges.kv_cache_usage_max
        summary.num_requests_waiting_max = gauges.waiting_max
        summary.mean_batch_size = gauges.running_mean
    ok = [r for r in records if r.ok]
    if ok:
        summary.token_count_method = Counter(r.token_count_method for r in ok).most_common(1)[0][0]
        summary.chunk_estimate_safe_share = sum(r.chunk_estimate_safe for r in ok) / len(ok)


def _pool_deltas(deltas: list[MetricsDelta]) -> MetricsDelta:
    """Sum counter deltas of several windows of the same server (repeats of one cell)."""
    first = deltas[0]
    pooled = first.model_copy(deep=True)
    pooled.window_s = sum(d.window_s for d in deltas)
    pooled.counter_reset = any(d.counter_reset for d in deltas)
    specs = [d.spec for d in deltas if d.spec is not None]
    if not specs:
        return pooled
    sp = specs[0].model_copy(deep=True)

    def total(attr: str) -> float | None:
        vals = [getattr(s, attr) for s in specs if getattr(s, attr) is not None]
        return float(sum(vals)) if vals else None

    sp.drafts, sp.draft_tokens, sp.accepted, sp.emitted = (total("drafts"), total("draft_tokens"),
                                                          total("accepted"), total("emitted"))
    sp.acceptance_rate = (sp.accepted / sp.draft_tokens) if sp.accepted is not None and sp.draft_tokens else None
    if sp.semantics == "v1_accepted_prefix" and sp.drafts and sp.accepted is not None:
        sp.mean_acceptance_length = 1.0 + sp.accepted / sp.drafts
        if all(s.per_position is not None and s.drafts for s in specs):
            n = min(len(s.per_position) for s in specs)  # type: ignore[arg-type]
            sp.per_position = [sum(s.per_position[i] * s.drafts for s in specs) / sp.drafts  # type: ignore
                               for i in range(n)]
    elif sp.semantics == "v0_all_positions" and sp.k and sp.draft_tokens and sp.emitted is not None:
        sp.mean_acceptance_length = sp.emitted * sp.k / sp.draft_tokens
        sp.acceptance_rate_prefix_equivalent = max(0.0, sp.emitted / sp.draft_tokens - 1.0 / sp.k)
    else:
        lengths = [s.mean_acceptance_length for s in specs if s.mean_acceptance_length is not None]
        sp.mean_acceptance_length = float(np.mean(lengths)) if lengths else None
    sp.counter_reset = any(s.counter_reset for s in specs)
    pooled.spec = sp
    return pooled


async def run_bench(cfg: BenchConfig, out_dir: str, *, resume: bool = False, progress: Progress | None = None,
                    workload: Workload | None = None) -> RunResult:
    """Run (or resume) a bench into ``out_dir``; Ctrl-C keeps everything measured and writes summary.json."""
    runner = BenchRunner(cfg, RunStore(out_dir), progress=progress, workload=workload, resume=resume)
    return await runner.run()
