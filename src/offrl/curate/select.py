"""Curation: which episodes to keep, or how much to weigh each, from a quality score.

``keep`` ranks episodes by one score of a quality file (its better direction from
:data:`offrl.curate.quality.SCORES`, or the one asked for) and keeps a top fraction,
those past a threshold, or a top fraction within each of several groups (per
operator, as robomimic's multi-human filter keys group demonstrations).
``episode_weights`` turns the same score into per-episode loss weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from offrl.curate.quality import SCORES


def _oriented(scores: dict, by: str, higher_is_better: bool | None) -> np.ndarray:
    """The score with larger meaning better; NaN (an unscored episode) ranks last."""
    episodes = scores["episodes"]
    if by not in episodes:
        raise ValueError(
            f"the scores file has no score '{by}' (it has {', '.join(sorted(episodes))})"
        )
    if higher_is_better is None:
        higher_is_better = SCORES.get(by)
    if higher_is_better is None:
        raise ValueError(
            f"'{by}' has no better direction; say which with --higher-is-better or "
            "--lower-is-better"
        )
    values = np.asarray(episodes[by], np.float64)
    values = values if higher_is_better else -values
    return np.where(np.isfinite(values), values, -np.inf)


def keep(
    scores: dict,
    by: str,
    top: float | None = None,
    threshold: float | None = None,
    groups: Sequence[Sequence[int]] | None = None,
    higher_is_better: bool | None = None,
) -> np.ndarray:
    """Sorted indices of the episodes to keep: the ``top`` fraction (of each group when
    ``groups`` are given), or those whose score is at least ``threshold`` (at most, for
    a lower-is-better score)."""
    if (top is None) == (threshold is None):
        raise ValueError("give exactly one of a top fraction and a threshold")
    values = _oriented(scores, by, higher_is_better)
    if threshold is not None:
        sign = 1.0 if (higher_is_better if higher_is_better is not None else SCORES[by]) else -1
        return np.flatnonzero(values >= sign * threshold)
    if not 0.0 < top <= 1.0:
        raise ValueError(f"the top fraction must be in (0, 1], got {top}")
    groups = [np.arange(len(values))] if groups is None else [np.asarray(g) for g in groups]
    kept = []
    for group in groups:
        if not len(group):
            continue
        count = max(1, int(round(top * len(group))))
        order = group[np.argsort(-values[group], kind="stable")]
        kept.append(order[:count])
    return np.unique(np.concatenate(kept)) if kept else np.zeros(0, np.int64)


def episode_weights(
    scores: dict, by: str, temperature: float = 1.0, higher_is_better: bool | None = None
) -> np.ndarray:
    """``exp(z / temperature)`` of the standardized, oriented score, scaled to mean 1
    (unscored episodes get 0)."""
    if temperature <= 0:
        raise ValueError(f"the temperature must be > 0, got {temperature}")
    values = _oriented(scores, by, higher_is_better)
    finite = np.isfinite(values)
    z = np.zeros_like(values)
    z[finite] = (values[finite] - values[finite].mean()) / max(values[finite].std(), 1e-12)
    weights = np.where(finite, np.exp(np.clip(z / temperature, -30, 30)), 0.0)
    return weights / weights[finite].mean()
