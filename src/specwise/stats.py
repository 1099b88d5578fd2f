"""Robust statistics used across stages: percentiles, bootstrap confidence intervals.

:func:`paired_block_ratio_ci` is hand-written because no well-kept library offers a paired two-stage (repeats, then
time blocks) percentile bootstrap of a ratio of percentiles: scipy.stats.bootstrap resamples independent observations
only, and arch's block bootstraps work on one series, not on repeats of two arms."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float | None:
    """The q-th percentile (0-100, linear interpolation as numpy's default); None when empty."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None
    return float(np.percentile(arr, q))


def percentiles(values: Sequence[float] | np.ndarray, qs: Sequence[float]) -> list[float | None]:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return [None] * len(qs)
    return [float(v) for v in np.percentile(arr, list(qs))]


# A bench cell's requests are not independent: requests sent within the same seconds meet the same server state
# (on issue 12's H200 hosts the speculative step held one of two speeds for seconds at a time). Resampling time
# blocks instead of requests keeps that correlation inside a block; resampling repeats first carries the
# differences between repeats into the interval. Both arms get the same requests on the same schedule, so a
# resample draws the same repeats and the same blocks of send time for both: what the schedule does to latency
# over a cell (a queue building up) is then shared, not mistaken for noise. At least MIN_BLOCKS blocks per repeat
# keep short cells usable.
BLOCK_S = 2.0
MIN_BLOCKS = 10
_BATCH = 250  # resamples per vectorised batch (bounds memory for large cells)

Blocks = list[list[np.ndarray]]  # per repeat, its blocks of values in send-time order


def _finite(pairs: Sequence[tuple[float | None, float | None]]) -> tuple[np.ndarray, np.ndarray]:
    pts = [(t, v) for t, v in pairs if t is not None and v is not None and np.isfinite(v)]
    return (np.asarray([p[0] for p in pts], dtype=float), np.asarray([p[1] for p in pts], dtype=float))


def _by_rank(times: np.ndarray, wanted: int) -> np.ndarray:
    ranks = np.empty(times.size, int)
    ranks[np.argsort(times, kind="stable")] = np.arange(times.size)
    return ranks * wanted // max(1, times.size)


def paired_time_blocks(baseline: Sequence[Sequence[tuple[float | None, float | None]]],
                       treatment: Sequence[Sequence[tuple[float | None, float | None]]],
                       block_s: float = BLOCK_S, min_blocks: int = MIN_BLOCKS) -> tuple[Blocks, Blocks]:
    """Cut each pair of repeats (the i-th of each arm: the same schedule) into the same send-time blocks.

    The block length is ``block_s``, shortened so that the pair spans at least ``min_blocks`` blocks; block j of
    the baseline and block j of the treatment cover the same seconds (either may be empty). Where sends bunch so
    that fewer blocks hold values (a burst sent at once), each arm is cut by send order into ``min_blocks`` runs
    of equal size instead: one block would make every resample the same. Pairs where an arm has no finite value
    are dropped."""
    out_b: Blocks = []
    out_t: Blocks = []
    for pairs_b, pairs_t in zip(baseline, treatment):
        (tb, vb), (tt, vt) = _finite(pairs_b), _finite(pairs_t)
        if not vb.size or not vt.size:
            continue
        start = min(tb.min(), tt.min())
        span = float(max(tb.max(), tt.max()) - start)
        length = min(block_s, span / min_blocks) if span > 0 else 0.0
        ids_b = np.floor((tb - start) / length).astype(int) if length > 0 else np.zeros(tb.size, int)
        ids_t = np.floor((tt - start) / length).astype(int) if length > 0 else np.zeros(tt.size, int)
        grid = np.union1d(ids_b, ids_t)
        wanted = min(min_blocks, max(tb.size, tt.size))
        if grid.size < wanted:
            ids_b, ids_t, grid = _by_rank(tb, wanted), _by_rank(tt, wanted), np.arange(wanted)
        out_b.append([vb[ids_b == j] for j in grid])
        out_t.append([vt[ids_t == j] for j in grid])
    return out_b, out_t


def _draws(counts: np.ndarray, n: int, rng: np.random.Generator):
    """Batches of two-stage draws: (m, blocks) matrices of how often each block was drawn in each resample.

    Stage 1 draws len(counts) repeats with replacement; stage 2, within each drawn repeat, as many of its blocks as
    it has, with replacement."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slots, total, reps = int(counts.max()), int(counts.sum()), len(counts)
    for done in range(0, n, _BATCH):
        m = min(_BATCH, n - done)
        pick = rng.integers(0, reps, size=(m, reps))
        cnt = counts[pick][..., None]
        idx = starts[pick][..., None] + (rng.random((m, reps, slots)) * cnt).astype(int)
        used = np.arange(slots)[None, None, :] < cnt
        rows = np.broadcast_to(np.arange(m)[:, None, None], idx.shape)
        drawn = np.zeros((m, total), dtype=np.int32)
        np.add.at(drawn, (rows[used], idx[used]), 1)
        yield drawn


def _weighted_percentiles(blocks: Blocks, drawn: np.ndarray, q: float) -> np.ndarray:
    """Per row of ``drawn``, the q-th percentile of the drawn blocks' values, expanded (numpy's linear
    interpolation), computed as a weighted percentile of the values sorted once; NaN where nothing was drawn."""
    flat = [b for rep in blocks for b in rep]
    values = np.concatenate(flat)
    block_of = np.repeat(np.arange(len(flat)), [b.size for b in flat])
    order = np.argsort(values, kind="stable")
    values, block_of = values[order], block_of[order]
    cum = np.cumsum(drawn[:, block_of], axis=1)
    total = cum[:, -1]
    pos = q / 100.0 * (total - 1.0)
    lo, frac = np.floor(pos), pos - np.floor(pos)
    hi = np.minimum(lo + 1.0, total - 1.0)
    at_lo = np.fromiter((np.searchsorted(c, x, side="right") for c, x in zip(cum, lo)), int, len(cum))
    at_hi = np.fromiter((np.searchsorted(c, x, side="right") for c, x in zip(cum, hi)), int, len(cum))
    low_v = values[np.minimum(at_lo, values.size - 1)]
    high_v = values[np.minimum(at_hi, values.size - 1)]
    return np.where(total > 0, low_v + frac * (high_v - low_v), np.nan)


def paired_block_ratio_ci(
    baseline: Blocks,
    treatment: Blocks,
    q: float = 50.0,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float | None, float | None, float | None]:
    """Speedup = percentile_q(baseline) / percentile_q(treatment), CI by a paired two-stage block bootstrap.

    The arms come from :func:`paired_time_blocks`: the same repeats, each cut into the same blocks. A resample draws
    repeats with replacement, then within each drawn repeat its blocks with replacement, and takes those repeats
    and blocks from both arms. With one repeat and one request per block this is a request bootstrap of
    paired requests. Returns (point over all values, low, high); Nones when an arm is empty, no interval when an
    arm has fewer than two values."""
    b_all = np.concatenate([x for rep in baseline for x in rep]) if baseline else np.empty(0)
    t_all = np.concatenate([x for rep in treatment for x in rep]) if treatment else np.empty(0)
    if b_all.size == 0 or t_all.size == 0:
        return None, None, None
    point_t = np.percentile(t_all, q)
    point = float(np.percentile(b_all, q) / point_t) if point_t > 0 else None
    if b_all.size < 2 or t_all.size < 2:
        return point, None, None
    counts = np.asarray([len(rep) for rep in baseline])
    if len(treatment) != len(baseline) or any(len(a) != len(b) for a, b in zip(baseline, treatment)):
        raise ValueError("paired_block_ratio_ci needs both arms cut by paired_time_blocks (same repeats and blocks)")
    ratios = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for drawn in _draws(counts, n_resamples, np.random.default_rng(seed)):
            ratios.append(_weighted_percentiles(baseline, drawn, q) / _weighted_percentiles(treatment, drawn, q))
    r = np.concatenate(ratios)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return point, None, None
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(r, [100 * alpha, 100 * (1 - alpha)])
    return point, float(low), float(high)


def median_ci(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0):
    """Median of repeated measurements with a bootstrap CI: (median, low, high)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None, None, None
    med = float(np.median(arr))
    if arr.size < 2:
        return med, None, None
    rng = np.random.default_rng(seed)
    meds = np.median(arr[rng.integers(0, arr.size, size=(n_resamples, arr.size))], axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(meds, [100 * alpha, 100 * (1 - alpha)])
    return med, float(low), float(high)
