"""Large-sample check of ``specwise estimate`` against real speculative decoding (issue 4's 0.05 rule).

Runs the estimate and the validating loop (:mod:`specwise.estimate.validate`) on the same requests, as
``specwise estimate --validate`` does, but on enough requests that the comparison means something at
T > 0: there both sides are independent samples of sampled text, and a 10-prompt run swings by +-0.13
for n-gram. Requests are the shipped bench suites (``src/specwise/bench/suites``: chat, code,
json_extraction, rag_qa, summarization) plus the copy prompts of the real-model tests, each repeated
``--repeats`` times with different seeds (the estimate's text and the loop's are drawn afresh for every
repeat). Jobs:

* ``ngram``: prompt lookup with the CLI's defaults (``--prompt-lookup-min/max`` 5, ``--k-max`` 8, rate
  at k = 8, text generated at every evaluated temperature);
* ``draft``: a self-derived draft (``int8``: the target with int8 fake-quantised weights, argmax draft,
  vLLM's default verification; or ``layers:N``: the first N layers, lossless rejection sampling), with
  the CLI's default context temperatures (the grid rounded to 0.5).

Requests are split over ``--workers`` processes (each loads the model once; on one GPU they overlap the
batch-1 loop's launch overhead). Each worker writes the estimate's ``requests.jsonl`` and the loop's
``validation.jsonl`` (per-request counters) as it goes; the merge pools them per (job, temperature):
estimated and measured accepted/drafted (ratio of sums over all requests), standard errors clustered by
prompt (repeats of a prompt are one cluster), the paired difference (estimated - measured) with its
delta-method 95% interval and a paired bootstrap interval over prompts (2000 resamples), per category
too. ``--deadline-s`` stops the workers and merges what finished, so a cut-off run still reports.

    python benchmarks/estimate_validation.py --limit-per-suite 1 --max-new-tokens 16 --workers 2   # CPU smoke
    python benchmarks/estimate_validation.py --target model.gguf --workers 12 --repeats 2 \\
        --machine "H100" --output benchmarks/results/estimate_validation_h100_smollm2.json           # GPU

Cost on one H100 (12 workers, fp32, 424 requests x 128 tokens, SmolLM2-135M; first run,
``benchmarks/results/estimate_validation_h100_smollm2.json``): the n-gram estimate for 3 temperatures took
~280 s (mostly the target re-run over each diverging proposal's branch, full context, fp32), and the loop
~190 s per temperature (batch 1, 12 processes time-sharing the GPU), so that run stopped at its deadline
with T = 0 done. T > 0 alone (``--temperatures 0.7,1 --draft none --tf32``) needs ~8 minutes. The
SmolLM2 GGUF (98 MB) exceeds one device call's 64 MiB upload: send it in two parts over two calls on
the warm machine and ``cat`` them (see the commit that added the results).

Independent runs (other seeds, another day) pool with ``--pool RUN.json ... [--output POOLED.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SUITES = sorted((ROOT / "src/specwise/bench/suites").glob("*.jsonl")) + [ROOT / "tests/estimate/data/copy_prompts.jsonl"]
TOLERANCE = 0.05


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def all_requests(args: argparse.Namespace) -> list[Any]:
    """Every suite's first ``limit_per_suite`` prompts, each repeated ``repeats`` times (ids ``id#r``)."""
    from specwise.estimate.prompts import load_prompts

    out = []
    for path in SUITES:
        for rec in load_prompts(path, args.limit_per_suite or None):
            for r in range(args.repeats):
                out.append(rec.model_copy(update={"id": f"{rec.id}#{r}"}))
    return out


def job_specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    temps = [float(t) for t in args.temperatures.split(",")]
    jobs = []
    if args.ngram_k:
        jobs.append({"name": "ngram", "method": "ngram", "verification": "argmax_draft", "k": args.ngram_k,
                     "temps": temps, "context_temperatures": temps, "max_new": args.max_new_tokens, "draft": None,
                     "repeats": args.repeats})
    if args.draft != "none":
        from specwise.estimate.pipeline import auto_context_temperatures

        verification = "argmax_draft" if args.draft == "int8" else "lossless"
        jobs.append({"name": f"draft-{args.draft.replace(':', '')}", "method": "draft_model",
                     "verification": verification, "k": args.draft_k, "temps": temps,
                     "context_temperatures": auto_context_temperatures(temps), "draft": args.draft,
                     "max_new": args.draft_max_new_tokens or args.max_new_tokens,
                     "repeats": args.draft_repeats or args.repeats})
    return jobs


def job_requests(requests: list[Any], job: dict[str, Any]) -> list[Any]:
    return [r for r in requests if int(r.id.rsplit("#", 1)[1]) < job["repeats"]]


def settings_for(args: argparse.Namespace, job: dict[str, Any], shard: int) -> Any:
    from specwise.schemas.estimate import EstimateSettings

    draft = job["draft"]
    return EstimateSettings(
        target=args.target, draft_layers=int(draft.split(":")[1]) if draft and draft.startswith("layers:") else None,
        draft_quantize="int8" if draft == "int8" else None, methods=[job["method"]], temperatures=job["temps"],
        k_max=job["k"], max_new_tokens=job["max_new"], context_temperatures=job["context_temperatures"],
        prompt_lookup_min=args.prompt_lookup_min, prompt_lookup_max=args.prompt_lookup_max,
        # distinct per shard: repeats of one prompt in two shards must not share the loop's seeds
        seed=args.seed + 7919 * shard, prompts="bench suites + copy prompts")


def worker(args: argparse.Namespace) -> int:
    import torch

    from specwise.estimate.models import default_device, load_model
    from specwise.estimate.pipeline import Models, method_estimate, run_estimation
    from specwise.estimate.runner import validate_estimates

    torch.set_num_threads(1)
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    device = default_device(args.device)
    dtype = torch.float32 if args.dtype == "fp32" else torch.bfloat16
    shard, shards = args.worker_shard, args.workers
    requests = all_requests(args)
    target = load_model(args.target, device, dtype)
    for job in job_specs(args):
        mine = job_requests(requests, job)[shard::shards]
        if not mine:
            continue
        out = Path(args.work_dir) / job["name"] / f"shard-{shard}"
        out.mkdir(parents=True, exist_ok=True)
        (out / "order.json").write_text(json.dumps({"ids": [r.id for r in mine],
                                                    "categories": [r.category for r in mine]}))
        settings = settings_for(args, job, shard)
        if job["method"] == "ngram":
            models = Models(target=target, draft=None, vocab=int(target.model.get_output_embeddings().weight.shape[0]))
        else:
            models = self_derived_draft(target, settings)
        started = time.perf_counter()
        rows = run_estimation(models, mine, settings, out, True, args.batch_size)
        est = method_estimate(rows, job["method"], job["verification"], settings, 0.0, "not used", None, job["k"])
        log(f"shard {shard} {job['name']}: estimate of {len(mine)} requests in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        validate_estimates(models, settings, mine, [est], job["temps"], out, False, rows, job["verification"])
        log(f"shard {shard} {job['name']}: loop in {time.perf_counter() - started:.0f} s")
        (out / "done").write_text("1")
    return 0


def self_derived_draft(target: Any, settings: Any) -> Any:
    """Models for a self-derived draft of the already loaded target (no second load)."""
    from specwise.estimate.models import quantized_copy, truncated_copy
    from specwise.estimate.pipeline import Models

    if settings.draft_quantize:
        draft = quantized_copy(target, settings.draft_quantize)
    else:
        draft = truncated_copy(target, settings.draft_layers)
    vocab = int(target.model.get_output_embeddings().weight.shape[0])
    return Models(target=target, draft=draft, vocab=vocab)


# ------------------------------------------------------------------------------------------------
# Merge
# ------------------------------------------------------------------------------------------------


def cluster_sums(ids: list[str], values: list[tuple[float, float, float, float]]) -> tuple[list[str], Any]:
    """Sum (est accepted, est drafted, measured accepted, measured drafted) over the repeats of a prompt."""
    import numpy as np

    order: dict[str, int] = {}
    sums: list[list[float]] = []
    for rid, v in zip(ids, values):
        key = rid.rsplit("#", 1)[0]
        if key not in order:
            order[key] = len(sums)
            sums.append([0.0, 0.0, 0.0, 0.0])
        row = sums[order[key]]
        for i in range(4):
            row[i] += v[i]
    return list(order), np.asarray(sums, dtype=np.float64).reshape(-1, 4)


def bootstrap_ci(sums: Any, resamples: int = 2000, seed: int = 0) -> list[float] | None:
    """Paired percentile bootstrap (over prompts) of estimated - measured accepted/drafted."""
    import numpy as np

    n = len(sums)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    picked = sums[idx]  # [B, n, 4]
    tot = picked.sum(axis=1)
    ok = (tot[:, 1] > 0) & (tot[:, 3] > 0)
    diff = tot[ok, 0] / tot[ok, 1] - tot[ok, 2] / tot[ok, 3]
    return [round(float(np.percentile(diff, 2.5)), 5), round(float(np.percentile(diff, 97.5)), 5)]


def compare(sums: Any) -> dict[str, Any] | None:
    from specwise.estimate.validate import compare_ratios

    c = compare_ratios(sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3])
    if c is None:
        return None

    def r(x: float | None) -> float | None:
        return None if x is None else round(float(x), 5)

    return {"estimated": r(c.estimated), "measured": r(c.measured), "difference": r(c.difference),
            "abs_error": r(abs(c.difference)), "estimated_stderr": r(c.estimated_stderr),
            "measured_stderr": r(c.measured_stderr), "difference_stderr": r(c.difference_stderr),
            "difference_ci95": None if c.ci95 is None else [r(x) for x in c.ci95],
            "difference_ci95_bootstrap": bootstrap_ci(sums), "num_prompts": int(len(sums)),
            "statistically_compatible": c.compatible, "within_tolerance": abs(c.difference) <= TOLERANCE,
            "ci_within_tolerance": c.ci_within(TOLERANCE)}


def merge(args: argparse.Namespace) -> dict[str, Any]:
    from specwise.estimate.pipeline import read_records, request_counters
    from specwise.schemas.estimate import EstimateSettings

    jobs_out = []
    for job in job_specs(args):
        per_temp = []
        for temperature in job["temps"]:
            ids: list[str] = []
            cats: list[str] = []
            values: list[tuple[float, float, float, float]] = []
            drafts = steps = shards_done = 0
            for shard_dir in sorted((Path(args.work_dir) / job["name"]).glob("shard-*")):
                vpath = shard_dir / "validation.jsonl"
                if not vpath.is_file() or not (shard_dir / "order.json").is_file():
                    continue
                rows = [json.loads(x) for x in vpath.read_text().splitlines() if x.strip()]
                row = next((x for x in rows if x["temperature"] == temperature and "request_drafted" in x), None)
                if row is None:
                    continue
                order = json.loads((shard_dir / "order.json").read_text())
                settings = EstimateSettings.model_validate_json((shard_dir / "settings.json").read_text())
                records = read_records(shard_dir)
                est = request_counters(records, job["method"], job["verification"], settings, temperature, job["k"])
                for i, rid in enumerate(order["ids"]):
                    a_e, d_e = est.get(rid, (0.0, 0.0))
                    values.append((a_e, d_e, float(row["request_accepted"][i]), float(row["request_drafted"][i])))
                    ids.append(rid)
                    cats.append(order["categories"][i])
                drafts += row["drafts"]
                steps += row["steps"]
                shards_done += 1
            if not values:
                continue
            _, sums = cluster_sums(ids, values)
            entry = {"temperature": temperature, "k": job["k"], "num_requests": len(values), "shards": shards_done,
                     "drafts_measured": drafts, "steps_measured": steps,
                     "drafted_tokens_measured": int(sum(v[3] for v in values)),
                     "drafted_tokens_estimated": round(sum(v[1] for v in values), 1)}
            entry.update(compare(sums) or {})
            by_cat = {}
            for cat in sorted(set(cats)):
                sel = [i for i, c in enumerate(cats) if c == cat]
                _, cat_sums = cluster_sums([ids[i] for i in sel], [values[i] for i in sel])
                by_cat[cat] = {"num_requests": len(sel), **(compare(cat_sums) or {})}
            entry["categories"] = by_cat
            per_temp.append(entry)
        jobs_out.append({"job": job["name"], "method": job["method"], "verification": job["verification"],
                         "k": job["k"], "max_new_tokens": job["max_new"], "repeats": job["repeats"],
                         "context_temperatures": job["context_temperatures"], "temperatures": per_temp})
    return {"jobs": jobs_out}


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="estimate vs real speculative decoding (accepted/drafted, ratio of sums over requests)")
    for col in ("job", "T", "k", "N req", "estimated", "measured", "diff", "delta 95% CI", "bootstrap 95% CI",
                "|diff|<=.05", "CI in ±.05"):
        table.add_column(col, justify="right")
    for job in result["jobs"]:
        for e in job["temperatures"]:
            if "estimated" not in e:
                table.add_row(job["job"], f"{e['temperature']:g}", str(e["k"]), str(e["num_requests"]),
                              "no drafts", *["-"] * 6)
                continue
            ci = e["difference_ci95"] or [float("nan")] * 2
            boot = e["difference_ci95_bootstrap"] or [float("nan")] * 2
            table.add_row(job["job"], f"{e['temperature']:g}", str(e["k"]), str(e["num_requests"]),
                          f"{e['estimated']:.3f}±{e['estimated_stderr'] or 0:.3f}",
                          f"{e['measured']:.3f}±{e['measured_stderr'] or 0:.3f}", f"{e['difference']:+.3f}",
                          f"{ci[0]:+.3f},{ci[1]:+.3f}", f"{boot[0]:+.3f},{boot[1]:+.3f}",
                          "yes" if e["within_tolerance"] else "no", "yes" if e["ci_within_tolerance"] else "no")
    Console(width=160).print(table)


def pool_runs(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool independent runs (different seeds, machines or days) per (job, temperature).

    Each run's difference (estimated - measured) is an independent estimate of the same bias, so the
    pooled difference is their inverse-variance weighted mean with standard error 1/sqrt(sum of weights);
    estimated and measured are pooled as ratios of sums (weights = drafted tokens on each side).
    """
    pooled: dict[tuple[str, float], dict[str, Any]] = {}
    for run in results:
        for job in run["jobs"]:
            for e in job["temperatures"]:
                if e.get("difference_stderr") is None:
                    continue
                key = (job["job"], float(e["temperature"]))
                acc = pooled.setdefault(key, {"job": job["job"], "temperature": e["temperature"], "k": e["k"],
                                              "runs": 0, "num_requests": 0, "w": 0.0, "wd": 0.0, "est_a": 0.0,
                                              "est_d": 0.0, "meas_a": 0.0, "meas_d": 0.0})
                # a zero standard error (T = 0: estimate and loop see the same greedy text) dominates, as it should
                w = 1.0 / max(e["difference_stderr"] ** 2, 1e-12)
                acc["runs"] += 1
                acc["num_requests"] += e["num_requests"]
                acc["w"] += w
                acc["wd"] += w * e["difference"]
                acc["est_a"] += e["estimated"] * e["drafted_tokens_estimated"]
                acc["est_d"] += e["drafted_tokens_estimated"]
                acc["meas_a"] += e["measured"] * e["drafted_tokens_measured"]
                acc["meas_d"] += e["drafted_tokens_measured"]
    out = []
    for acc in pooled.values():
        diff, se = acc["wd"] / acc["w"], acc["w"] ** -0.5
        ci = [round(diff - 1.96 * se, 5), round(diff + 1.96 * se, 5)]
        out.append({"job": acc["job"], "temperature": acc["temperature"], "k": acc["k"], "runs": acc["runs"],
                    "num_requests": acc["num_requests"], "estimated": round(acc["est_a"] / acc["est_d"], 5),
                    "measured": round(acc["meas_a"] / acc["meas_d"], 5), "difference": round(diff, 5),
                    "difference_stderr": round(se, 5), "difference_ci95": ci,
                    "within_tolerance": abs(diff) <= TOLERANCE,
                    "ci_within_tolerance": -TOLERANCE <= ci[0] and ci[1] <= TOLERANCE,
                    "statistically_compatible": abs(diff) <= 1.96 * se})
    return {"benchmark": "estimate_validation_pooled", "pooled": sorted(out, key=lambda e: (e["job"],
                                                                                          e["temperature"]))}


def print_pooled(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="pooled over independent runs (inverse-variance weighted difference)")
    for col in ("job", "T", "runs", "N req", "estimated", "measured", "diff", "95% CI", "|diff|<=.05", "CI in ±.05"):
        table.add_column(col, justify="right")
    for e in result["pooled"]:
        table.add_row(e["job"], f"{e['temperature']:g}", str(e["runs"]), str(e["num_requests"]),
                      f"{e['estimated']:.3f}", f"{e['measured']:.3f}", f"{e['difference']:+.3f}",
                      f"{e['difference_ci95'][0]:+.3f},{e['difference_ci95'][1]:+.3f}",
                      "yes" if e["within_tolerance"] else "no", "yes" if e["ci_within_tolerance"] else "no")
    Console(width=160).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="smollm2-135m", help="smollm2-135m or a .gguf / HF directory")
    parser.add_argument("--limit-per-suite", type=int, default=0, help="first N prompts of each suite (0: all)")
    parser.add_argument("--repeats", type=int, default=1, help="seeds per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperatures", default="0,0.7,1")
    parser.add_argument("--ngram-k", type=int, default=8, help="k_max = rate k for n-gram (0: skip n-gram)")
    parser.add_argument("--prompt-lookup-min", type=int, default=5)
    parser.add_argument("--prompt-lookup-max", type=int, default=5)
    parser.add_argument("--draft", default="int8", help="int8, layers:N or none")
    parser.add_argument("--draft-k", type=int, default=4)
    parser.add_argument("--draft-repeats", type=int, default=0, help="seeds per prompt for the draft job (0: --repeats)")
    parser.add_argument("--draft-max-new-tokens", type=int, default=0, help="0: --max-new-tokens")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--tf32", action="store_true", help="TF32 matmuls on CUDA: ~5x faster estimate passes; "
                        "greedy near-ties may then flip between the batched estimate and the loop, so use it for "
                        "T > 0 only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deadline-s", type=float, default=0, help="stop workers after this many seconds, "
                        "merge what finished (0: no limit)")
    parser.add_argument("--work-dir", default="", help="per-shard records (default: a temporary directory)")
    parser.add_argument("--machine", default="", help="machine description stored in the JSON")
    parser.add_argument("--output", default="", help="JSON results path")
    parser.add_argument("--merge-only", action="store_true", help="merge an existing --work-dir")
    parser.add_argument("--pool", nargs="+", default=[], metavar="RUN.json",
                        help="pool the result JSONs of independent runs (no models needed), print, write --output")
    parser.add_argument("--worker-shard", type=int, default=-1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pool:
        result = pool_runs([json.loads(Path(f).read_text()) for f in args.pool])
        result["runs"] = args.pool
        print_pooled(result)
        if args.output:
            Path(args.output).write_text(json.dumps(result, indent=2))
            log(f"wrote {args.output}")
        return 0
    if args.worker_shard >= 0:
        return worker(args)
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        print("skipped: needs the estimate extra (pip install 'specwise[estimate]', or make venv-full)")
        return 0
    if not args.work_dir:
        import tempfile

        args.work_dir = tempfile.mkdtemp(prefix="estimate-validation-")
    started = time.perf_counter()
    timed_out = False
    if not args.merge_only:
        argv = [a for a in sys.argv[1:]]
        if "--work-dir" not in argv:
            argv += ["--work-dir", args.work_dir]
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", TQDM_DISABLE="1",
                   TRANSFORMERS_VERBOSITY="error", HF_HUB_OFFLINE="1")
        procs = [subprocess.Popen([sys.executable, __file__, *argv, "--worker-shard", str(i)], env=env)
                 for i in range(args.workers)]
        log(f"{args.workers} workers on {len(all_requests(args))} requests; work dir {args.work_dir}")
        while any(p.poll() is None for p in procs):
            if args.deadline_s and time.perf_counter() - started > args.deadline_s:
                timed_out = True
                log("deadline reached: stopping workers, merging what finished")
                for p in procs:
                    if p.poll() is None:
                        p.terminate()
                for p in procs:
                    try:
                        p.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        p.kill()
                break
            time.sleep(2)
        failed = [i for i, p in enumerate(procs) if p.returncode not in (0, None) and not timed_out]
        if failed:
            log(f"workers {failed} failed")
    result = merge(args)
    device = "cpu"
    if torch.cuda.is_available() and args.device != "cpu":
        device = torch.cuda.get_device_name(0)
    result.update({"benchmark": "estimate_validation", "machine": args.machine, "device": device,
                   "target": args.target, "dtype": args.dtype, "workers": args.workers,
                   "prompt_lookup": [args.prompt_lookup_min, args.prompt_lookup_max],
                   "suites": [p.name for p in SUITES], "limit_per_suite": args.limit_per_suite or None,
                   "elapsed_s": round(time.perf_counter() - started, 1), "cut_by_deadline": timed_out,
                   "definition": "acceptance = accepted draft tokens / drafted tokens pooled over requests; "
                                 "estimated: specwise estimate on its own sampled texts; measured: the validating "
                                 "speculative loop; difference = estimated - measured, standard errors clustered by "
                                 "prompt (repeats of a prompt form one cluster), paired by prompt for the difference",
                   "torch": torch.__version__, "transformers": transformers.__version__})
    print_table(result)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2))
        log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
