"""Robust statistics used across stages: percentiles, bootstrap confidence intervals.

:func:`clustered_ratio_ci` is hand-written because no well-kept library offers a two-stage (repeats, then time
blocks) percentile bootstrap of a ratio of percentiles: scipy.stats.bootstrap resamples independent observations
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
# differences between repeats into the interval. At least MIN_BLOCKS blocks per repeat keep short cells usable.
BLOCK_S = 2.0
MIN_BLOCKS = 10
_BATCH = 250  # resamples per vectorised batch (bounds memory for large cells)


def time_blocks(repeats: Sequence[Sequence[tuple[float, float]]], block_s: float = BLOCK_S,
                min_blocks: int = MIN_BLOCKS) -> list[list[np.ndarray]]:
    """Group (send time, value) pairs of each repeat into consecutive send-time blocks.

    The block length is ``block_s``, shortened so that each repeat spans at least ``min_blocks`` blocks. Where
    sends bunch so that fewer blocks hold values (a burst sent at once), the repeat is cut by send order into
    ``min_blocks`` runs of equal size instead: one block would make every resample the same. Returns, per repeat,
    its non-empty blocks as arrays of finite values (repeats without one are dropped)."""
    out = []
    for pairs in repeats:
        pts = [(t, v) for t, v in pairs if t is not None and v is not None and np.isfinite(v)]
        if not pts:
            continue
        times = np.asarray([p[0] for p in pts], dtype=float)
        values = np.asarray([p[1] for p in pts], dtype=float)
        span = float(times.max() - times.min())
        length = min(block_s, span / min_blocks) if span > 0 else block_s
        ids = np.floor((times - times.min()) / length).astype(int) if length > 0 else np.zeros(times.size, int)
        wanted = min(min_blocks, times.size)
        if np.unique(ids).size < wanted:
            ranks = np.empty(times.size, int)
            ranks[np.argsort(times, kind="stable")] = np.arange(times.size)
            ids = ranks * wanted // times.size
        out.append([values[ids == i] for i in np.unique(ids)])
    return out


def _resampled_percentiles(repeats: list[list[np.ndarray]], q: float, n: int,
                           rng: np.random.Generator) -> np.ndarray:
    """q-th percentile of ``n`` two-stage resamples: repeats with replacement, then each one's blocks.

    A resample is a multiset of blocks, so its percentile is the percentile of the values sorted once, each
    weighted by how often its block was drawn (numpy's linear interpolation on the expanded sample)."""
    blocks = [b for rep in repeats for b in rep]
    values = np.concatenate(blocks)
    block_of = np.repeat(np.arange(len(blocks)), [b.size for b in blocks])
    order = np.argsort(values, kind="stable")
    values, block_of = values[order], block_of[order]
    counts = np.asarray([len(rep) for rep in repeats])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slots = int(counts.max())
    out = []
    for done in range(0, n, _BATCH):
        m = min(_BATCH, n - done)
        pick = rng.integers(0, len(repeats), size=(m, len(repeats)))
        cnt = counts[pick][..., None]
        idx = starts[pick][..., None] + (rng.random((m, len(repeats), slots)) * cnt).astype(int)
        used = np.arange(slots)[None, None, :] < cnt
        rows = np.broadcast_to(np.arange(m)[:, None, None], idx.shape)
        drawn = np.zeros((m, len(blocks)), dtype=np.int32)
        np.add.at(drawn, (rows[used], idx[used]), 1)
        cum = np.cumsum(drawn[:, block_of], axis=1)
        pos = q / 100.0 * (cum[:, -1] - 1.0)
        lo, frac = np.floor(pos), pos - np.floor(pos)
        hi = np.minimum(lo + 1.0, cum[:, -1] - 1.0)
        at_lo = np.fromiter((np.searchsorted(c, x, side="right") for c, x in zip(cum, lo)), int, m)
        at_hi = np.fromiter((np.searchsorted(c, x, side="right") for c, x in zip(cum, hi)), int, m)
        out.append(values[at_lo] + frac * (values[at_hi] - values[at_lo]))
    return np.concatenate(out)


def clustered_ratio_ci(
    baseline: list[list[np.ndarray]],
    treatment: list[list[np.ndarray]],
    q: float = 50.0,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float | None, float | None, float | None]:
    """Speedup = percentile_q(baseline) / percentile_q(treatment), CI by a two-stage block bootstrap.

    Each arm is a list of repeats, each a list of blocks (:func:`time_blocks`). A resample draws as many repeats
    as the arm has, with replacement, and within each drawn repeat as many of its blocks, with replacement; the
    arms are resampled independently. With one repeat and one request per block this is the plain request
    bootstrap. Returns (point over all values, low, high); Nones when an arm is empty, no interval when an arm
    has fewer than two values."""
    b_all = np.concatenate([x for rep in baseline for x in rep]) if baseline else np.empty(0)
    t_all = np.concatenate([x for rep in treatment for x in rep]) if treatment else np.empty(0)
    if b_all.size == 0 or t_all.size == 0:
        return None, None, None
    point_t = np.percentile(t_all, q)
    point = float(np.percentile(b_all, q) / point_t) if point_t > 0 else None
    if b_all.size < 2 or t_all.size < 2:
        return point, None, None
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (_resampled_percentiles(baseline, q, n_resamples, rng)
                  / _resampled_percentiles(treatment, q, n_resamples, rng))
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return point, None, None
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(ratios, [100 * alpha, 100 * (1 - alpha)])
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
