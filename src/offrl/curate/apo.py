"""APO-style weights from intervention labels: push down the actions that led to a
takeover, push up the corrections.

A dataset's ``interventions`` flag marks the steps a person (or a supervisor) took over.
Each takeover's first step splits its episode into

- **undesirable** steps: the ``pre_window`` policy steps just before the takeover (the
  actions that made the person step in), weight ``undesirable_weight`` (0: dropped);
- **desirable** steps: the intervention steps themselves (the correction), weight
  ``correction_weight``;
- every other step, weight 1.

The weights go to the behavior-cloning loss as a self-normalized weighted mean
(``offrl train --weights``).

Deviation from APO (Action Preference Optimization for VLA models, no released code
read): APO turns the same binary desirability into a KTO-like preference loss against a
reference policy, adaptively reweighted, which can push the likelihood of undesirable
actions *below* the reference; a weight can only lower them to zero influence. This is
the intervention weighting of Sirius (Liu et al. 2022) that APO builds on; the window
and the weights are chosen here (15 steps, 0 and 2), as none were read.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from offrl.data.dataset import Dataset
from offrl.data.validate import DatasetError


@dataclasses.dataclass(frozen=True)
class Config:
    """APO-style weighting."""

    pre_window: int = 15
    """Policy steps before a takeover counted undesirable."""
    correction_weight: float = 2.0
    """Weight of an intervention step."""
    undesirable_weight: float = 0.0
    """Weight of a step in the window before a takeover."""


def labels(dataset: Dataset, pre_window: int) -> np.ndarray:
    """Per-step desirability: +1 correction, -1 before a takeover, 0 otherwise."""
    if dataset.interventions is None:
        raise DatasetError(
            "has no intervention flags",
            field="interventions",
            source=dataset.info.source,
            fix="record who acted at each step (infos['intervention'] in Minari, an "
            "'interventions' array in HDF5, robomimic's action_modes)",
        )
    flags = np.asarray(dataset.interventions) > 0.5
    out = np.where(flags, 1, 0).astype(np.int64)
    starts = np.asarray(dataset.episode_starts)
    lengths = np.asarray(dataset.episode_lengths)
    for start, length in zip(starts, lengths, strict=True):
        episode = flags[start : start + length]
        # first steps of each takeover within the episode
        takeovers = np.flatnonzero(episode & ~np.r_[False, episode[:-1]])
        for first in takeovers:
            window = np.arange(max(0, first - pre_window), first)
            window = window[~episode[window]]
            out[start + window] = -1
    return out


def weights(dataset: Dataset, config: Config | None = None) -> np.ndarray:
    """Per-step weights from the intervention flags (see the module docstring)."""
    config = config or Config()
    desirability = labels(dataset, config.pre_window)
    return np.select(
        [desirability > 0, desirability < 0],
        [config.correction_weight, config.undesirable_weight],
        1.0,
    ).astype(np.float64)
