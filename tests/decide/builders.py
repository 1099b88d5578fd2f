"""Typed evidence for decide's tests: RunResults with cells, comparisons and servers as bench writes them.

Measured runs are constructed here (a real GPU A/B takes minutes); the values follow bench's schema exactly so
decide reads them as it reads `bench --out` directories.
"""

from __future__ import annotations

from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile
from specwise.schemas.results import (
    AcceptanceBreakdown,
    CellSummary,
    Comparison,
    Crossover,
    LosslessCheck,
    RunResult,
    SpeedupCI,
)
from specwise.schemas.workload import SLO, DeploymentSpec, LengthDistribution, LoadSpec, TrafficCategory, WorkloadProfile

SETTINGS = {"max_num_seqs": "256", "max_num_batched_tokens": "8192", "enable_prefix_caching": "True",
            "gpu_memory_utilization": "0.92", "kv_cache_dtype": "auto"}


def workload(categories, *, typical=1.0, peak=2.0, kind="qps", slo="e2e", target="meta-llama/Llama-3.1-8B-Instruct",
             draft=None, method="ngram", k=3, gpu="H100", gpus=1, quant=None, max_model_len=8192,
             prompt=600, output=300) -> WorkloadProfile:
    return WorkloadProfile(
        name="test",
        categories=[TrafficCategory(name=n, share=s, temperature=t) for n, s, t in categories],
        prompt_tokens=LengthDistribution(mean=prompt, cv=0.5), output_tokens=LengthDistribution(mean=output, cv=0.5),
        load=LoadSpec(kind=kind, typical=typical, peak=peak), slo=SLO(metric=slo),
        deployment=DeploymentSpec(target=target, draft=draft, method=method, k=k, gpu=gpu, gpus=gpus,
                                  target_quant=quant, max_model_len=max_model_len))


def ci(value: float, half: float | None = 0.05) -> SpeedupCI:
    if half is None:
        return SpeedupCI(value=value)
    return SpeedupCI(value=value, ci_low=value - half, ci_high=value + half)


def comparison(load: float, e2e: float, *, half: float | None = 0.05, p99: float | None = None,
               ttft: float | None = None, temperature: float | None = None, role: str = "baseline",
               kind: str = "qps", repeats: int = 3, throughput: float | None = None,
               per_repeat: list[float] | None = None, tpot: float | None = None) -> Comparison:
    tp = tpot if tpot is not None else e2e
    return Comparison(load_kind=kind, load=load, qps=load if kind == "qps" else None, baseline_role=role,
                      temperature=temperature, speedup_tpot_p50=ci(tp, half), speedup_tpot_p99=ci(p99 or tp, half),
                      speedup_e2e_p50=ci(e2e, half), speedup_e2e_p99=ci(p99 if p99 is not None else e2e, half),
                      speedup_ttft_p50=ci(ttft, half) if ttft is not None else None,
                      throughput_ratio=throughput, repeats=repeats,
                      per_repeat={"speedup_e2e_p50": per_repeat} if per_repeat else {})


def spec_cell(load: float, temperature: float | None, acceptance: float, k: int, *, p10: float | None = None,
              batch: float | None = None, category: str | None = None, kind: str = "qps",
              source: str = "measured") -> CellSummary:
    return CellSummary(role="speculative", source=source, load_kind=kind, load=load,
                       qps=load if kind == "qps" else None, temperature=temperature, category=category,
                       requests_ok=100, acceptance_rate_metrics=acceptance,
                       mean_acceptance_length_metrics=1 + k * acceptance, acceptance_rate_per_request_p10=p10,
                       mean_batch_size=batch)


def base_cell(load: float, temperature: float | None, *, batch: float | None = None, kind: str = "qps",
              source: str = "measured") -> CellSummary:
    return CellSummary(role="baseline", source=source, load_kind=kind, load=load, qps=load if kind == "qps" else None,
                       temperature=temperature, requests_ok=100, mean_batch_size=batch, tpot_p50_s=0.01)


def servers(k: int, method: str, *, differ: dict | None = None, model: str = "meta-llama/Llama-3.1-8B-Instruct",
            spec_config: dict | None = None) -> dict:
    spec_settings = dict(SETTINGS, **(differ or {}))
    cfg = spec_config or {"method": method, "num_speculative_tokens": k}
    return {
        "baseline": {"role": "baseline", "url": "http://127.0.0.1:8001", "model": model, "engine_generation": "V1",
                     "settings": SETTINGS},
        "speculative": {"role": "speculative", "url": "http://127.0.0.1:8002", "model": model,
                        "engine_generation": "V1", "settings": spec_settings, "speculative_config": cfg,
                        "spec_method": method, "k": k},
    }


def measured_run(comparisons, cells, srv, *, lossless: bool | None = True, breakdown=(),
                 crossovers=()) -> RunResult:
    return RunResult(source="measured", tool_version="test", servers=srv, cells=list(cells),
                     comparisons=list(comparisons), crossovers=list(crossovers),
                     acceptance_breakdown=list(breakdown),
                     lossless=LosslessCheck(passed=lossless, greedy_prompts=8,
                                            greedy_mismatches=0 if lossless else 3,
                                            detail="" if lossless else "3 of 8 greedy outputs differ")
                     if lossless is not None else None)


def simulated_run(comparisons, cells=(), crossovers=()) -> RunResult:
    return RunResult(source="simulated", tool_version="test", cells=list(cells), comparisons=list(comparisons),
                     crossovers=list(crossovers))


def crossover(source: str, value: float | None, loads, speedups, position="within") -> Crossover:
    return Crossover(source=source, position=position, value=value, loads=list(loads), speedups=list(speedups))


def profile(classes, *, target="meta-llama/Llama-3.1-8B-Instruct", draft=None, method="draft_model",
            source="estimated") -> AcceptanceProfile:
    """classes: (category, temperature, iid alpha, p10) -> a flat conditional vector."""
    return AcceptanceProfile(target=target, draft=draft, method=method, source=source, classes=[
        AcceptanceClass(category=c, temperature=t, conditional=[a] * 6, rate_p10=p10) for c, t, a, p10 in classes])


def breakdown(temperature: float, p10: float, p50: float, category: str | None = None) -> AcceptanceBreakdown:
    return AcceptanceBreakdown(temperature=temperature, category=category, requests=100, acceptance_rate_p10=p10,
                               acceptance_rate_p50=p50, source="server")
