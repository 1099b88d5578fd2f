"""Robust statistics used across stages: percentiles, bootstrap confidence intervals."""

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


def bootstrap_ratio_ci(
    baseline: Sequence[float] | np.ndarray,
    treatment: Sequence[float] | np.ndarray,
    q: float = 50.0,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float | None, float | None, float | None]:
    """Speedup = percentile_q(baseline) / percentile_q(treatment) with a percentile-bootstrap CI.

    The two samples are resampled independently (requests of the two arms are different runs of the
    same schedule, not paired observations). Returns (point, low, high); Nones when either sample is
    empty.
    """
    b = np.asarray(baseline, dtype=float)
    t = np.asarray(treatment, dtype=float)
    b = b[np.isfinite(b)]
    t = t[np.isfinite(t)]
    if b.size == 0 or t.size == 0:
        return None, None, None
    point_t = np.percentile(t, q)
    point = float(np.percentile(b, q) / point_t) if point_t > 0 else None
    if b.size < 2 or t.size < 2:
        return point, None, None
    rng = np.random.default_rng(seed)
    bi = rng.integers(0, b.size, size=(n_resamples, b.size))
    ti = rng.integers(0, t.size, size=(n_resamples, t.size))
    bq = np.percentile(b[bi], q, axis=1)
    tq = np.percentile(t[ti], q, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = bq / tq
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
