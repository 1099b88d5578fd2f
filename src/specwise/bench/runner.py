"""The A/B bench: the same requests on the same arrival schedule to a baseline and a speculative arm,
over load x temperature cells, with /metrics deltas per cell and comparisons with confidence intervals.

This module orchestrates; the jobs live beside it: :mod:`specwise.bench.config` (the validated inputs),
:mod:`specwise.bench.rateplan` (which load next, and where a sweep stops), :mod:`specwise.bench.cell`
(one cell sent, accounted for and stored), :mod:`specwise.bench.aggregate` (pooling, comparisons,
breakdown) and :mod:`specwise.bench.findings` (rules that return findings).

With already-running endpoints the arms alternate cell by cell (drift hits both equally); with
launched servers (``--baseline-cmd`` / ``--speculative-cmd``) all of one arm's cells run, then the
other's, since a single GPU box holds one server at a time.
"""

from __future__ import annotations

import asyncio
import json
import platform
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from specwise import __version__
from specwise.bench.aggregate import ROLE_ORDER, acceptance_breakdown, comparisons, pooled_cells
from specwise.bench.cell import CellRun, CellRunner, NoProgress, Progress, cell_id
from specwise.bench.client import ClientConfig, StreamingClient, api_key_headers, discover_model
from specwise.bench.config import ROLES, BenchConfig
from specwise.bench.findings import FindingContext, bench_findings
from specwise.bench.http_stream import kernel_stamps_for
from specwise.bench.lossless import LosslessPlan, LosslessSamples, collect_lossless_samples, compare_lossless
from specwise.bench.memory_check import check_server_memory, load_plan_file
from specwise.bench.rateplan import LoadOutcome, RatePlan
from specwise.bench.servers import LaunchedServer, ServerInfo, like_for_like_baseline_cmd, probe_server
from specwise.bench.shards import ShardedSender, default_client_workers
from specwise.bench.store import RunStore, StoreWriteError
from specwise.bench.workloads import RequestSpec, Workload, build_workload
from specwise.crossover import crossovers_from_comparisons
from specwise.errors import UserError
from specwise.schemas.base import Source
from specwise.schemas.findings import Finding
from specwise.schemas.results import LosslessCheck, RequestRecord, Role, RunInputs, RunResult

__all__ = ["BenchConfig", "BenchRunner", "CellRun", "Progress", "run_bench"]

LIKE_FOR_LIKE: Role = "baseline_like_for_like"


class BenchRunner:
    """Runs a :class:`BenchConfig` into a run directory and returns the :class:`RunResult`."""

    def __init__(self, cfg: BenchConfig, store: RunStore, progress: Progress | None = None,
                 workload: Workload | None = None, resume: bool = False, overwrite: bool = False) -> None:
        self.cfg = cfg
        self.store = store
        self.progress = progress or NoProgress()
        temps = cfg.workload_temperatures or {0.0: 1.0}
        self.workload = workload or build_workload(cfg.workload, temperatures=temps)
        if cfg.max_tokens:
            self.workload.max_tokens_override = cfg.max_tokens
        if cfg.ignore_eos:
            self.workload.ignore_eos = True
        self.resume = resume
        self.overwrite = overwrite
        self.cell_runner = CellRunner(cfg, store, self.workload, self.progress)
        self.servers: dict[str, ServerInfo] = {}
        self.cells: dict[str, CellRun] = {}
        self.records: dict[str, list[RequestRecord]] = {}
        self.lossless_samples: dict[str, LosslessSamples] = {}
        self.lossless: LosslessCheck | None = None
        self.findings_extra: list[Finding] = []
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
                          resume=self.resume, overwrite=self.overwrite)
        try:
            self._load_finished()
        except BaseException:
            self.store.close()  # a damaged run directory is left as it is (no summary over the old one)
            raise
        write_failed = False
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
        except StoreWriteError:
            write_failed = True
            raise
        finally:
            result = self.result()
            try:
                self.store.write_json("summary.json", result)
            except StoreWriteError:
                if not write_failed:  # the first write error is the one to report
                    raise
            finally:
                self.store.close()
        return result

    def _load_finished(self) -> None:
        for note in self.store.notes:
            self.findings_extra.append(Finding(code="store_repaired", severity="info", message=note))
        if not self.resume:
            return
        recs = self.store.records()
        for cid, attempt in recs:
            self._attempts[cid] = max(self._attempts.get(cid, 0), attempt + 1)
        for row in self.store.finished_cells():
            try:
                cell = CellRun(**row)
            except (TypeError, ValueError) as exc:
                raise UserError(f"--resume: {self.store.path('cells.jsonl')} holds a line that is not a finished "
                                f"cell ({type(exc).__name__}); remove it, or start a new run with --out NEW") from None
            self.cells[cell.cell_id] = cell
            self.records[cell.cell_id] = recs.get((cell.cell_id, cell.attempt), [])
        for role in ROLE_ORDER:
            p = self.store.path(f"servers/{role}.json")
            if p.exists():
                try:
                    self.servers[role] = ServerInfo.model_validate_json(p.read_text())
                except ValueError:
                    self.progress.message(f"resuming: {p} unreadable, probing the server again")
        lossless_path = self.store.path("lossless_samples.json")
        if lossless_path.exists():
            try:
                data = json.loads(lossless_path.read_text())
                self.lossless_samples = {r: LosslessSamples(**v) for r, v in data.items()}
            except (ValueError, TypeError, AttributeError):
                self.progress.message("resuming: lossless_samples.json unreadable, sampling again")
                self.lossless_samples = {}
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

    # --- loads -----------------------------------------------------------------------------------
    def rate_plan(self, role: Role = "baseline") -> RatePlan:
        """The loads ``role`` runs: --qps, a sweep to saturation, closed loop; a launched speculative (or
        like-for-like) arm runs the rates its baseline's sweep ran."""
        if self.cfg.arrival == "closed_loop":
            return RatePlan.closed_loop()
        if self.cfg.qps is not None:
            return RatePlan.fixed(self.cfg.qps)
        if role != "baseline" and self.cfg.launches and self.sweep_rates is not None:
            return RatePlan.fixed(self.sweep_rates)
        return RatePlan.sweep(self.cfg.sweep_start, self.cfg.sweep_factor, self.cfg.sweep_max)

    async def _run_loads(self, plan: RatePlan, roles: Sequence[Role],
                         run_cell: Callable[[Role, float | None, float | None, int], Awaitable[CellRun]]) -> None:
        """Every cell of every load the plan hands out (repeat x temperature x role), telling it each outcome."""
        load = plan.next()
        while load is not None:
            saturated = False
            for repeat in range(self.cfg.repeats):
                for temp in self.cfg.temperatures:
                    for role in roles:
                        cell = await run_cell(role, load.qps, temp, repeat)
                        saturated |= cell.saturation.saturated
            if plan.stop_when_saturated and load.qps is not None:
                self.sweep_rates = sorted(set(self.sweep_rates or []) | {load.qps})
            load = plan.next(LoadOutcome(load.qps, saturated))

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

                async def run_cell(role: Role, qps: float | None, temp: float | None, repeat: int) -> CellRun:
                    return await self._run_cell(clients[role], role, qps, temp, repeat, senders[role])

                await self._run_loads(self.rate_plan(), ROLES, run_cell)
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
        peak_rate = self.rate_plan().peak or 0.0
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
            self.findings_extra.append(Finding(
                code="like_for_like_nothing_to_force", severity="info",
                message="--like-for-like: no non-speculative setting of the speculative arm is known to force; "
                "the default baseline is already the like-for-like one"))
            return
        self.progress.message(f"like-for-like baseline: {cmd}")
        await self._run_launched_role(LIKE_FOR_LIKE, cmd=cmd)

    def _sweep_done(self) -> bool:
        """A resumed sweep is finished when its plan, told the baseline's finished loads, has nothing left."""
        if not self.sweep_rates:
            return False
        outcomes = [LoadOutcome(q, any(c.saturation.saturated for c in self.cells.values()
                                       if c.role == "baseline" and c.qps == q)) for q in self.sweep_rates]
        return self.rate_plan().finished_after(outcomes)

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

                async def run_cell(r: Role, qps: float | None, temp: float | None, repeat: int) -> CellRun:
                    return await self._run_cell(client, r, qps, temp, repeat, sender)

                await self._run_loads(self.rate_plan(role), (role,), run_cell)
        finally:
            if sender is not None:
                sender.close()
            if launched:
                self.progress.message(f"stopping {role} server")
                launched.stop()

    def _planned_cells(self, role: str) -> list[str]:
        plan = self.rate_plan(role) if not (self.cfg.qps is None and self.sweep_rates) \
            else RatePlan.fixed(self.sweep_rates)
        return [cell_id(role, rep, q, t) for q in plan.rates for rep in range(self.cfg.repeats)
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
            out = await ids_client.send(probe, role=role)  # type: ignore[arg-type]
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

    # --- cells -----------------------------------------------------------------------------------
    def cell_requests(self, qps: float | None, temperature: float | None, repeat: int) -> list[RequestSpec]:
        """The cell's requests with their send times; independent of the role by construction."""
        return self.cell_runner.requests(qps, temperature, repeat)

    async def _run_cell(self, client: StreamingClient, role: Role, qps: float | None, temperature: float | None,
                        repeat: int, sender: ShardedSender | None = None) -> CellRun:
        cid = cell_id(role, repeat, qps, temperature)
        if cid in self.cells:
            return self.cells[cid]
        attempt = self._attempts.get(cid, 0)
        self._attempts[cid] = attempt + 1
        info = self.servers.get(role)
        try:
            coalesced = info is not None and int(info.settings.get("stream_interval", "1")) > 1
        except ValueError:
            coalesced = False
        cell, records = await self.cell_runner.run(client, role, qps, temperature, repeat, attempt=attempt,
                                                   k=self._k(), coalesced=coalesced, sender=sender)
        self.cells[cid] = cell
        self.records[cid] = records
        return cell

    # --- result ----------------------------------------------------------------------------------
    def result(self) -> RunResult:
        k = self._k()
        cells = list(self.cells.values())
        pooled = pooled_cells(cells, self.records, k)
        comps = comparisons(cells, self.records, self.cfg.seed)
        result = RunResult(source=Source.measured, tool_version=__version__, inputs=RunInputs.for_bench(self.cfg),
                           servers=dict(self.servers), cells=pooled, comparisons=comps,
                           crossovers=crossovers_from_comparisons(comps, Source.measured),
                           acceptance_breakdown=acceptance_breakdown(cells, self.records, k),
                           lossless=self.lossless, complete=self.complete)
        ctx = FindingContext(cfg=self.cfg, pooled=pooled, k=k, servers=self.servers, cells=cells,
                             lossless=self.lossless, complete=self.complete,
                             synthetic_workload=self.workload.synthetic)
        result.findings = bench_findings(ctx, self.findings_extra)
        if self.cfg.qps is None and self.sweep_rates:
            result.inputs.sweep_rates_run = self.sweep_rates
        # Host-side engine costs (scheduling, launches between a draft's passes) depend on the CPU: the same
        # speculative server ran at 4.3 and 6.3 ms TPOT on two H200 hosts. Launched servers share this host.
        from specwise.bench.host import host_info

        result.inputs.bench = {**(result.inputs.bench or {}), "client_host": host_info()}
        return result


async def run_bench(cfg: BenchConfig, out_dir: str, *, resume: bool = False, overwrite: bool = False,
                    progress: Progress | None = None, workload: Workload | None = None) -> RunResult:
    """Run (or resume) a bench into ``out_dir``; Ctrl-C keeps everything measured and writes summary.json."""
    runner = BenchRunner(cfg, RunStore(out_dir), progress=progress, workload=workload, resume=resume,
                         overwrite=overwrite)
    return await runner.run()
