"""Fit the step-time constants to measurements.

Two sources of data:

* measured step times (``StepSample``: batched tokens, KV tokens, seconds), e.g. from a profiler or
  vLLM's step timing; fitted by non-negative least squares (additive form, or the hybrid form via a
  scan over the compute-bound knee N*);
* a measured baseline run: per-cell TPOT at a known mean batch size (closed-loop or steady open-loop),
  where each engine step emits one token per sequence, so TPOT ~ step time at N = B, KV = B * C;
* a measured speculative run (draft_model): per-cell chunk gap (one engine step) at a known mean batch size,
  minus the verify forward priced by the target model of the same engine mode, gives the draft's time per
  step; :func:`fit_draft_passes` fits a per-pass fixed cost and a per-token cost to it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from specwise.errors import UserError
from specwise.perf.steptime import T_SCHED_S, DraftCost, StepTimeModel
from specwise.schemas.base import Source, SpecwiseModel
from specwise.schemas.results import CellSummary, RunResult


class StepSample(SpecwiseModel):
    """One measured step: ``n_tokens`` batched tokens reading ``kv_tokens``; ``seconds`` per forward."""

    n_tokens: float = Field(gt=0)
    kv_tokens: float = Field(ge=0)
    seconds: float = Field(gt=0)


class FitReport(SpecwiseModel):
    model: StepTimeModel
    rmse_s: float
    max_rel_error: float
    num_samples: int


def nnls(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares for a handful of columns by exhaustive active-set search."""
    n = a.shape[1]
    best, best_res = np.zeros(n), float(np.sum(y**2))
    for r in range(1, n + 1):
        for cols in itertools.combinations(range(n), r):
            sol, *_ = np.linalg.lstsq(a[:, cols], y, rcond=None)
            if np.any(sol < 0):
                continue
            x = np.zeros(n)
            x[list(cols)] = sol
            res = float(np.sum((a @ x - y) ** 2))
            if res < best_res - 1e-18:
                best, best_res = x, res
    return best


def _fit_report(model: StepTimeModel, pred: np.ndarray, y: np.ndarray) -> FitReport:
    """RMSE and largest relative error of ``pred`` against the measured ``y`` (|y| floored at 1 ns)."""
    err = np.asarray(pred) - y
    return FitReport(model=model, rmse_s=float(np.sqrt(np.mean(err**2))),
                     max_rel_error=float(np.max(np.abs(err) / np.maximum(np.abs(y), 1e-9))), num_samples=int(y.size))


def _drafting_rows(cells: Iterable[CellSummary], target: StepTimeModel, k: int, mean_context_tokens: float,
                   max_batch: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean batch B, mean acceptance length L, drafting seconds per step) of unsaturated speculative cells.

    Drafting = chunk-gap P50 (one streamed chunk per engine step) - the verify of ``B*(k+1)`` tokens priced by
    ``target`` (fitted in the same engine mode, so its host costs are in it). ``max_batch`` drops larger batches.
    """
    rows = []
    for c in cells:
        if c.role != "speculative" or c.itl_per_chunk_p50_s is None or not c.mean_batch_size or c.saturated:
            continue
        b = float(c.mean_batch_size)
        if max_batch is not None and b > max_batch:
            continue
        verify = float(target.forward_time(b * (k + 1), b * mean_context_tokens)) + float(target.sched_time(b))
        rows.append((b, float(c.mean_acceptance_length_metrics or 1.0), c.itl_per_chunk_p50_s - verify))
    if len(rows) < 2:
        raise UserError("need >= 2 unsaturated speculative cells with a chunk gap and a mean batch size")
    b, length, drafting = (np.array(col) for col in zip(*rows))
    return b, length, drafting


def fit_step_times(
    samples: Sequence[StepSample],
    form: Literal["hybrid", "additive"] = "additive",
    base: StepTimeModel | None = None,
    label: str = "fitted",
) -> FitReport:
    """Fit t_fix, the GEMM terms and the KV term to per-forward times (scheduler overhead excluded).

    Communication, MoE and CUDA-graph settings of ``base`` are kept fixed and subtracted first.
    """
    if len(samples) < 3:
        raise UserError("need at least 3 measured step times to fit the step-time model")
    n = np.array([s.n_tokens for s in samples], dtype=float)
    kv = np.array([s.kv_tokens for s in samples], dtype=float)
    y = np.array([s.seconds for s in samples], dtype=float)
    fixed = {"t_sched_s": base.t_sched_s if base else T_SCHED_S}
    comm = np.zeros_like(y)
    if base is not None:
        fixed.update(comm_s=base.comm_s, comm_s_per_token=base.comm_s_per_token)
        comm = base.comm_s + base.comm_s_per_token * n
    target = y - comm
    ones = np.ones_like(n)
    if form == "additive":
        x = nnls(np.column_stack([ones, n, kv]), target)
        model = StepTimeModel(label=label, form="additive", t_fix_s=x[0], weight_read_s=0.0,
                              compute_s_per_token=x[1], kv_read_s_per_token=x[2], source=Source.measured,
                              notes=[f"additive NNLS fit on {len(samples)} step times"], **fixed)
        return _fit_report(model, model.forward_time(n, kv), y)
    # hybrid: t = t_fix + a*max(N, N*) + b*KV is linear in (t_fix, a, b) for a given knee N*; the
    # weight read is then a*N*. Scan N* over the measured N values (and 0 = always compute-bound).
    best: tuple[float, np.ndarray, float] | None = None
    for knee in np.unique(np.concatenate([[0.0], n])):
        x = nnls(np.column_stack([ones, np.maximum(n, knee), kv]), target)
        res = float(np.sum((np.column_stack([ones, np.maximum(n, knee), kv]) @ x - target) ** 2))
        if best is None or res < best[0]:
            best = (res, x, float(knee))
    assert best is not None
    _, x, knee = best
    model = StepTimeModel(label=label, form="hybrid", t_fix_s=x[0], weight_read_s=x[1] * knee,
                          compute_s_per_token=x[1], kv_read_s_per_token=x[2], source=Source.measured,
                          notes=[f"hybrid NNLS fit on {len(samples)} step times, knee N*={knee:g}"], **fixed)
    return _fit_report(model, model.forward_time(n, kv), y)


def fit_from_baseline_cells(
    cells: Iterable[CellSummary],
    mean_context_tokens: float,
    base: StepTimeModel | None = None,
    form: Literal["hybrid", "additive"] = "additive",
) -> FitReport:
    """Fit from a measured baseline run: each cell's TPOT p50 at its mean batch size.

    Without speculation a decode step emits one token per running sequence, so TPOT ~ one step
    (forward + scheduler overhead) at N = B, KV = B * mean context. The scheduler overhead cannot be
    separated from t_fix this way; it is held at ``base.t_sched_s`` (default 1.21 ms) and subtracted.
    """
    t_sched = base.t_sched_s if base else T_SCHED_S
    samples = []
    for c in cells:
        if c.role != "baseline" or c.tpot_p50_s is None or not c.mean_batch_size:
            continue
        b = float(c.mean_batch_size)
        seconds = c.tpot_p50_s - t_sched
        if seconds <= 0:
            raise UserError(f"TPOT {c.tpot_p50_s:.4f}s at QPS {c.qps} is below the scheduler overhead")
        samples.append(StepSample(n_tokens=b, kv_tokens=b * mean_context_tokens, seconds=seconds))
    if len(samples) < 3:
        raise UserError("need baseline cells with tpot_p50_s and mean_batch_size at >= 3 load levels")
    return fit_step_times(samples, form=form, base=base, label="fitted from baseline run")


def fit_from_run_result(run: RunResult, mean_context_tokens: float, base: StepTimeModel | None = None,
                        form: Literal["hybrid", "additive"] = "additive") -> FitReport:
    """:func:`fit_from_baseline_cells` over the baseline cells of a (measured) RunResult."""
    return fit_from_baseline_cells(run.cells, mean_context_tokens, base=base, form=form)


def fit_engine_mode(
    cells: Iterable[CellSummary],
    roofline: StepTimeModel,
    mean_context_tokens: float,
    label: str,
) -> FitReport:
    """Target step model of one engine mode (e.g. vLLM's V2 runner with async scheduling), from baseline cells.

    Baseline cells at a few loads measure TPOT ~ one decode step at the mean batch ``B`` (``B`` query tokens).
    Below the GEMMs' compute-bound knee (a few hundred tokens on an H100/H200) such steps cannot tell a
    per-token GEMM cost from a per-sequence host cost, so the roofline's weight read, GEMM and KV terms are
    kept (they price the verify's ``B*(k+1)`` tokens) and two constants are fitted to the rest: a fixed cost
    per step (launches, scheduling -- whatever the mode does not hide) into ``t_fix_s`` and a cost per
    running sequence into ``t_seq_s`` (``t_sched_s`` is folded into ``t_fix_s`` and set to 0).
    """
    rows = [(float(c.mean_batch_size), float(c.tpot_p50_s)) for c in cells
            if c.role == "baseline" and c.tpot_p50_s and c.mean_batch_size and not c.saturated]
    if len(rows) < 2:
        raise UserError("need >= 2 unsaturated baseline cells with tpot_p50_s and mean_batch_size")
    b = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    gpu = roofline.model_copy(update={"t_fix_s": 0.0, "t_sched_s": 0.0, "t_seq_s": 0.0})
    rest = y - np.asarray(gpu.forward_time(b, b * mean_context_tokens))
    t_fix, t_seq = nnls(np.column_stack([np.ones_like(b), b]), rest)
    model = roofline.model_copy(update={
        "label": label, "t_fix_s": float(t_fix), "t_sched_s": 0.0, "t_seq_s": float(t_seq), "source": Source.measured,
        "notes": [f"fixed {t_fix * 1e3:.3f} ms/step + {t_seq * 1e6:.1f} us/sequence fitted (NNLS) on {len(rows)} "
                  f"baseline cells; weight read, GEMM and KV terms from the roofline ({roofline.label})"]})
    pred = np.asarray(model.forward_time(b, b * mean_context_tokens)) + np.asarray(model.sched_time(b))
    return _fit_report(model, pred, y)


def fit_draft_passes(
    cells: Iterable[CellSummary],
    target: StepTimeModel,
    k: int,
    mean_context_tokens: float,
    label: str = "draft passes fitted from speculative cells",
) -> FitReport:
    """Per-pass cost of a draft model, fitted from measured speculative cells (vLLM draft_model).

    One engine step of a speculative server is the draft's ``k`` sequential passes plus one verify forward over
    ``B*(k+1)`` tokens. Each cell gives the step time (the chunk-gap P50: one streamed chunk per step), the mean
    batch ``B`` (running requests from /metrics) and the mean acceptance length ``L``. The verify is priced by
    ``target`` (fitted on a baseline in the *same* engine mode, so scheduler/host costs of that mode are in
    it); the rest is drafting: ``k * p0 + p1 * (k*B + B*(L-1))`` -- the first pass also ingests the ``L-1``
    tokens accepted in the previous step (:class:`~specwise.perf.steptime.DraftCost`). ``p0`` is the per-pass
    fixed cost (launches, host work between passes), ``p1`` the cost per drafted token. With one ``k`` a
    per-step drafting cost cannot be told from a per-pass one: it lands in ``p0``.
    """
    b, length, y = _drafting_rows(cells, target, k, mean_context_tokens)
    a = np.column_stack([np.full_like(b, float(k)), k * b + b * (length - 1.0)])
    p0, p1 = nnls(a, y)
    model = StepTimeModel(label=label, form="additive", t_fix_s=float(p0), weight_read_s=0.0,
                          compute_s_per_token=float(p1), kv_read_s_per_token=0.0, t_sched_s=0.0,
                          source=Source.measured,
                          notes=[f"per-pass fixed {p0 * 1e3:.3f} ms + {p1 * 1e6:.2f} us per drafted token, NNLS on "
                                 f"{y.size} speculative cells (k={k}); verify priced by '{target.label}'"])
    return _fit_report(model, a @ np.array([p0, p1]), y)


def fit_proposer_step(
    cells: Iterable[CellSummary],
    target: StepTimeModel,
    k: int,
    mean_context_tokens: float,
    method: Literal["eagle", "ngram"],
    max_batch: float | None = None,
) -> tuple[DraftCost, FitReport]:
    """Proposer cost of an EAGLE-style head or vLLM's n-gram lookup, fitted from measured speculative cells.

    As in :func:`fit_draft_passes`, drafting time per step = chunk-gap P50 - the verify priced by ``target``
    (same engine mode). Two constants are fitted (NNLS): a cost per step and a cost per running sequence.
    EAGLE: the head runs ``k`` sequential passes, so with one ``k`` the per-step cost is stored per pass
    (``head_per_pass_s`` = fixed / k) and the per-sequence one per drafted token (``head_s_per_spec_token``).
    n-gram: the lookup runs on the host between steps: ``ngram_fixed_s`` + ``ngram_s_per_seq`` x B
    (``ngram_fraction`` is set to 0: the measured host time replaces the roofline's share of the forward).
    The report's ``model`` carries the two constants as ``t_fix_s`` / ``t_seq_s`` for printing.
    ``max_batch`` drops cells with a larger mean batch: n-gram drafts only where the lookup matches, so pricing
    the verify at ``B*(k+1)`` tokens overstates it once the verify is compute-bound (a few hundred tokens).
    """
    b, _, y = _drafting_rows(cells, target, k, mean_context_tokens, max_batch)
    a = np.column_stack([np.ones_like(b), b])
    fixed, per_seq = nnls(a, y)
    note = (f"{method} proposer: {fixed * 1e3:.3f} ms/step + {per_seq * 1e6:.1f} us/sequence, NNLS on {y.size} "
            f"speculative cells (k={k}); verify priced by '{target.label}'")
    if method == "eagle":
        cost = DraftCost(method="head", head_fixed_s=0.0, head_per_pass_s=float(fixed) / k, head_kv_s_per_token=0.0,
                         head_s_per_spec_token=float(per_seq) / k)
    else:
        cost = DraftCost(method="ngram", ngram_fraction=0.0, ngram_fixed_s=float(fixed), ngram_s_per_seq=float(per_seq))
    shown = StepTimeModel(label=note, form="additive", t_fix_s=float(fixed), weight_read_s=0.0,
                          compute_s_per_token=0.0, kv_read_s_per_token=0.0, t_sched_s=0.0, t_seq_s=float(per_seq),
                          source=Source.measured, notes=[note])
    return cost, _fit_report(shown, a @ np.array([fixed, per_seq]), y)


def load_step_samples(path: str) -> list[StepSample]:
    """Step timings from CSV (header n_tokens,kv_tokens,seconds) or JSONL (same keys)."""
    from specwise.rowfiles import numeric_columns, read_rows

    rows = read_rows(path, "step-time", formats=("jsonl", "csv"))
    return [StepSample(n_tokens=n, kv_tokens=kv, seconds=sec)
            for n, kv, sec in numeric_columns(rows, path, "step-time", ("n_tokens", "kv_tokens", "seconds"))]


def main(argv: list[str] | None = None) -> None:
    """``python -m specwise.perf.calibrate STEPS.csv [--form hybrid|additive]``: print a StepTimeModel JSON.

    Pass the JSON to ``specwise simulate --step-time-model FILE`` (or ``serve-sim``) to use your constants.
    """
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m specwise.perf.calibrate", description=main.__doc__)
    ap.add_argument("steps", help="CSV/JSONL with n_tokens, kv_tokens, seconds (one forward pass each)")
    ap.add_argument("--form", choices=["hybrid", "additive"], default="additive")
    ap.add_argument("--t-sched-s", type=float, default=T_SCHED_S, help="scheduler overhead per step (kept fixed)")
    args = ap.parse_args(argv)
    try:
        base = StepTimeModel(t_fix_s=0, weight_read_s=0, compute_s_per_token=0, kv_read_s_per_token=0,
                             t_sched_s=args.t_sched_s)
        rep = fit_step_times(load_step_samples(args.steps), form=args.form, base=base)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"fit: rmse {rep.rmse_s * 1e3:.3f} ms, max relative error {rep.max_rel_error:.1%} over "
          f"{rep.num_samples} steps", file=sys.stderr)
    print(rep.model.model_dump_json(indent=2))


if __name__ == "__main__":
    main()
