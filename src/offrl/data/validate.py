"""Validation that runs on every load.

:func:`validate` checks a host-side :class:`~offrl.data.dataset.Dataset` and
returns it with canonical dtypes (``float32`` values, ``bool`` flags). Every
failure raises :class:`DatasetError`, whose message names the field, the row
index and episode where it applies, and what to do about it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from offrl.data.dataset import (
    LABEL_FIELDS,
    OPTIONAL_STEP_FIELDS,
    STEP_FIELDS,
    Dataset,
    DatasetError,
)

__all__ = ["DatasetError", "validate", "subset_ids"]


def subset_ids(name: str, ids, num_episodes: int, source: str = "") -> tuple[int, ...]:
    """A stored subset's episode indices, checked: integers within the dataset."""
    ids = np.asarray(ids).reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise DatasetError(
            f"holds {ids.dtype} values, not episode indices",
            field=f"subset '{name}'",
            source=source,
            fix="write the subset again with offrl data curate",
        )
    outside = ids[(ids < 0) | (ids >= num_episodes)]
    if outside.size:
        raise DatasetError(
            f"names episode {int(outside[0])}, but the dataset has episodes 0..{num_episodes - 1}",
            field=f"subset '{name}'",
            source=source,
            fix="it was written for other data: write it again with offrl data curate",
        )
    return tuple(int(i) for i in np.unique(ids))


_FLOAT_FIELDS = (
    "observations",
    "actions",
    "rewards",
    "next_observations",
    "costs",
    "margins",
    "interventions",
    "weights",
    "next_actions",
)
_FLAG_FIELDS = ("terminations", "truncations")
# Actions may exceed the bounds by float round-off when they were written as float64.
_BOUND_TOLERANCE = 1e-4


def _episode_of(dataset: Dataset, row: int) -> int | None:
    starts = np.asarray(dataset.episode_starts)
    if starts.size == 0:
        return None
    return int(np.searchsorted(starts, row, side="right") - 1)


def validate(
    dataset: Dataset,
    observation_space=None,
    action_space=None,
    check_continuity: bool = True,
) -> Dataset:
    """Check a dataset and return it with canonical dtypes.

    Args:
        dataset: a host-side dataset (NumPy arrays).
        observation_space: a Gymnasium ``Box`` the observations must match, or ``None``.
        action_space: a Gymnasium ``Box`` the actions must lie in, or ``None``.
            Without it, the bounds in ``dataset.info`` are used if present.
        check_continuity: require ``next_observations[i] == observations[i + 1]``
            inside every episode (catches episodes glued together off by one).

    Raises:
        DatasetError: naming the field, row, episode and the fix.
    """
    src = dataset.info.source or dataset.info.name

    def fail(message, **kwargs):
        raise DatasetError(message, source=src, **kwargs)

    fields = {}
    for name in STEP_FIELDS:
        value = getattr(dataset, name)
        if value is None and name in LABEL_FIELDS:
            continue  # a log without actions or rewards: Dataset.missing_fields names it
        if value is None:
            fail(
                "is missing",
                field=name,
                fix=f"provide '{name}' for every step (see the formats section of the README)",
            )
        fields[name] = np.asarray(value)
    for name in OPTIONAL_STEP_FIELDS:
        if getattr(dataset, name) is not None:
            fields[name] = np.asarray(getattr(dataset, name))

    # ---- dtypes
    for name, value in fields.items():
        if name in _FLAG_FIELDS:
            if value.dtype == bool:
                continue
            if not np.issubdtype(value.dtype, np.number):
                fail(
                    f"has dtype {value.dtype}, expected bool",
                    field=name,
                    fix="store termination/truncation flags as booleans or 0/1 integers",
                )
            bad = np.flatnonzero((value != 0) & (value != 1))
            if bad.size:
                i = int(bad[0])
                fail(
                    f"holds {value.reshape(-1)[i]!r}, but flags must be 0 or 1",
                    field=name,
                    index=i,
                    episode=_episode_of(dataset, i),
                    fix="store termination/truncation flags as booleans or 0/1 integers",
                )
        elif not (
            np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)
        ):
            fail(
                f"has dtype {value.dtype}, expected a numeric (float) array",
                field=name,
                fix="convert the field to float32 before saving",
            )

    # ---- emptiness and alignment
    size = fields["observations"].shape[0] if fields["observations"].ndim else 0
    if size == 0:
        fail(
            "the dataset holds no transitions",
            field="observations",
            fix="record at least one episode before loading",
        )
    for name, value in fields.items():
        if value.ndim == 0 or value.shape[0] != size:
            length = value.shape[0] if value.ndim else "a scalar"
            fail(
                f"has {length} rows but 'observations' has {size}",
                field=name,
                fix="every per-step field must have one row per transition",
            )
    for name in (
        "rewards",
        "terminations",
        "truncations",
        "costs",
        "margins",
        "weights",
        "interventions",
    ):
        if name in fields and fields[name].ndim != 1:
            fail(
                f"has shape {fields[name].shape}, expected ({size},)",
                field=name,
                fix="store one scalar per step",
            )
    for name in ("observations", "next_observations", "actions", "next_actions"):
        if name in fields and fields[name].ndim != 2:
            fail(
                f"has shape {fields[name].shape}, expected (steps, dim)",
                field=name,
                fix="flatten dict/image observations into a vector first "
                "(robomimic import: choose observation keys)",
            )
    if fields["observations"].shape != fields["next_observations"].shape:
        fail(
            f"has shape {fields['next_observations'].shape} but 'observations' has "
            f"{fields['observations'].shape}",
            field="next_observations",
            fix="next_observations must match observations row for row",
        )

    # ---- finite values
    for name, value in fields.items():
        if name in _FLAG_FIELDS:
            continue
        finite = np.isfinite(value)
        if not finite.all():
            flat_row = int(np.flatnonzero(~finite.reshape(size, -1).all(axis=1))[0])
            bad_value = (
                value[flat_row] if value.ndim == 1 else value[flat_row][~finite[flat_row]][0]
            )
            fail(
                f"holds a non-finite value ({bad_value})",
                field=name,
                index=flat_row,
                episode=_episode_of(dataset, flat_row),
                fix="drop or repair that episode (NaN/inf usually means a sensor dropout "
                "or a diverged controller)",
            )

    if "interventions" in fields:
        flags = fields["interventions"]
        bad = np.flatnonzero((flags != 0) & (flags != 1))
        if bad.size:
            fail(
                f"holds {flags[bad[0]]!r}; intervention flags must be 0 (the policy acted) or "
                "1 (a person took over)",
                field="interventions",
                index=int(bad[0]),
                episode=_episode_of(dataset, int(bad[0])),
                fix="store booleans or 0/1",
            )

    # ---- spaces
    if observation_space is not None and getattr(observation_space, "shape", None) is not None:
        expected = tuple(observation_space.shape)
        if fields["observations"].shape[1:] != expected:
            fail(
                f"rows have shape {fields['observations'].shape[1:]}, but the environment's "
                f"observation space has shape {expected}",
                field="observations",
                fix="check that the dataset was recorded on this environment (env id, version)",
            )
    low = high = None
    if action_space is not None and getattr(action_space, "shape", None) is not None:
        expected = tuple(action_space.shape)
        if "actions" in fields and fields["actions"].shape[1:] != expected:
            fail(
                f"rows have shape {fields['actions'].shape[1:]}, but the environment's action "
                f"space has shape {expected}",
                field="actions",
                fix="check that the dataset was recorded on this environment (env id, version)",
            )
        low, high = np.asarray(action_space.low), np.asarray(action_space.high)
    elif dataset.info.action_low is not None:
        low, high = np.asarray(dataset.info.action_low), np.asarray(dataset.info.action_high)
    if low is not None and "actions" in fields:
        actions = fields["actions"]
        outside = (actions < low - _BOUND_TOLERANCE) | (actions > high + _BOUND_TOLERANCE)
        if outside.any():
            row, col = (int(x[0]) for x in np.nonzero(outside))
            fail(
                f"action dimension {col} is {actions[row, col]:.6g}, outside the bounds "
                f"[{low[col]:.6g}, {high[col]:.6g}]",
                field="actions",
                index=row,
                episode=_episode_of(dataset, row),
                fix="clip actions to the action space before saving, or check that actions "
                "were not stored unnormalized",
            )

    # ---- episode boundaries
    starts = np.asarray(dataset.episode_starts, dtype=np.int64)
    lengths = np.asarray(dataset.episode_lengths, dtype=np.int64)
    if starts.ndim != 1 or starts.shape != lengths.shape or starts.size == 0:
        fail(
            "episode boundaries are missing or malformed",
            field="episode_starts",
            fix="rebuild the dataset with offrl.data.from_episodes",
        )
    expected_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    if (lengths <= 0).any() or not np.array_equal(starts, expected_starts) or lengths.sum() != size:
        fail(
            "episode boundaries do not tile the steps (empty episode, gap or overlap)",
            field="episode_starts",
            fix="rebuild the dataset with offrl.data.from_episodes",
        )
    ends = starts + lengths - 1
    closed = fields["terminations"].astype(bool) | fields["truncations"].astype(bool)
    not_closed = np.flatnonzero(~closed[ends])
    if not_closed.size:
        e = int(not_closed[0])
        fail(
            "the last step of the episode is neither terminated nor truncated",
            field="terminations",
            index=int(ends[e]),
            episode=e,
            fix="mark the final step of every episode: terminations=True for a true end, "
            "truncations=True for a time limit or a cut in the log",
        )
    inner = closed.copy()
    inner[ends] = False
    if inner.any():
        row = int(np.flatnonzero(inner)[0])
        field = "terminations" if fields["terminations"][row] else "truncations"
        fail(
            "an episode ends in the middle of the recorded episode",
            field=field,
            index=row,
            episode=_episode_of(dataset, row),
            fix="split the log into separate episodes at every termination or truncation",
        )
    if check_continuity:
        obs, next_obs = fields["observations"], fields["next_observations"]
        inner_rows = np.ones(size, dtype=bool)
        inner_rows[ends] = False
        idx = np.flatnonzero(inner_rows)
        if idx.size:
            gap = np.abs(next_obs[idx] - obs[idx + 1]).max(axis=1)
            scale = 1e-4 * (1.0 + np.abs(obs[idx + 1]).max(axis=1))
            broken = np.flatnonzero(gap > scale)
            if broken.size:
                row = int(idx[broken[0]])
                fail(
                    "next_observations differs from the observation of the following step in "
                    "the same episode",
                    field="next_observations",
                    index=row,
                    episode=_episode_of(dataset, row),
                    fix="check the episode boundaries (an off-by-one when episodes were "
                    "concatenated is the usual cause)",
                )

    cast = {
        name: value.astype(bool) if name in _FLAG_FIELDS else value.astype(np.float32)
        for name, value in fields.items()
    }
    return dataclasses.replace(dataset, **cast, episode_starts=starts, episode_lengths=lengths)
