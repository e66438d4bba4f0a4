"""Aggregate statistics across seeds and datasets: IQM and bootstrap intervals.

The interquartile mean (IQM) and stratified bootstrap confidence intervals follow
Agarwal et al. (2021), the method of the ``rliable`` library. They are
implemented here in NumPy because ``rliable``'s interval estimates fail with the
current releases of its ``arch`` dependency (arch 7.2 does not import beside
pandas 3; arch 8 rejects rliable's ``random_state=None``), measured on
2026-11-27 with rliable 1.2.0.
"""

from __future__ import annotations

import numpy as np


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all entries: the mean of the middle 50%.

    Uses the same convention as ``scipy.stats.trim_mean(x, 0.25)``: with ``n``
    values, ``floor(0.25 n)`` are cut from each end.
    """
    values = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1))
    if values.size == 0:
        raise ValueError("iqm of an empty array")
    cut = int(np.floor(0.25 * values.size))
    return float(values[cut : values.size - cut].mean())


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic=iqm,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile confidence interval of ``statistic`` over ``scores[runs, tasks]``.

    Each replicate resamples runs (seeds) with replacement independently within
    every task (column), as rliable's stratified bootstrap does.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, None]
    runs, tasks = scores.shape
    rng = np.random.default_rng(seed)
    estimates = np.empty(reps)
    columns = np.arange(tasks)
    for r in range(reps):
        rows = rng.integers(0, runs, size=(runs, tasks))
        estimates[r] = statistic(scores[rows, columns])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(estimates, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarize_scores(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> dict:
    """Mean, std, IQM and the IQM's 95% stratified bootstrap interval of ``[runs, tasks]``."""
    scores = np.asarray(scores, dtype=np.float64)
    low, high = stratified_bootstrap_ci(scores, iqm, reps=reps, seed=seed)
    return {
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "iqm": iqm(scores),
        "iqm_ci_low": low,
        "iqm_ci_high": high,
        "runs": int(scores.shape[0]),
        "tasks": int(scores.shape[1]) if scores.ndim > 1 else 1,
    }


def rankdata(values) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as ``scipy.stats.rankdata``)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


def spearman(x, y) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); NaN when
    either side is constant."""
    rx, ry = rankdata(x), rankdata(y)
    if len(rx) != len(ry):
        raise ValueError(f"spearman needs equal lengths, got {len(rx)} and {len(ry)}")
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


def performance_profile(
    scores: np.ndarray,
    thresholds: np.ndarray,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Score distribution ``P(score > tau)`` over all runs and tasks for each threshold,
    with stratified bootstrap bands (Agarwal et al., 2021, Figure 5).

    ``scores`` is ``[runs, tasks]``; the profile averages the per-task fraction of
    runs above ``tau``, so every task weighs the same.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, None]
    thresholds = np.asarray(thresholds, dtype=np.float64)

    def profile(table):
        return (table[:, :, None] > thresholds).mean(axis=0).mean(axis=0)

    runs, tasks = scores.shape
    rng = np.random.default_rng(seed)
    columns = np.arange(tasks)
    replicates = np.stack(
        [profile(scores[rng.integers(0, runs, size=(runs, tasks)), columns]) for _ in range(reps)]
    )
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha], axis=0)
    return {"thresholds": thresholds, "fraction": profile(scores), "low": low, "high": high}
