"""Imports of D4RL-style and robomimic-style HDF5 files.

D4RL-style: flat arrays ``observations``, ``actions``, ``rewards``,
``terminals``, ``timeouts`` and optionally ``next_observations``, ``costs``
(per-step safety costs, as OSRL/DSRL files have) and ``margins`` (the safety
margin ``h(s)`` of each row's observation, > 0 safe). Episodes end
at a terminal (a true end) or a timeout (a time limit). Without
``next_observations`` the next observation is the following row, so the last
row of a timed-out episode has no successor: it is dropped and the row before
it becomes the truncation, as D4RL's own ``qlearning_dataset`` does.

robomimic-style: ``data/demo_N/{obs/<key>, actions, rewards, dones}`` and
optionally ``next_obs/<key>``; the observation vector is the chosen keys
flattened and concatenated in the order given. A demo ends in a termination
when its last ``dones`` flag is set (task success), else in a truncation.

Named subsets (robomimic's filter keys) live in ``mask/<key>``: demo names in a
robomimic file, as robomimic writes them; episode indices (in the order offrl reads
the episodes) in a D4RL-style file, a group of offrl's own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil

import numpy as np

from offrl.data.dataset import Dataset, DatasetInfo, from_episodes
from offrl.data.formats.atomic import replace_atomically
from offrl.data.validate import DatasetError, subset_ids, validate


def _open(path: str | os.PathLike):
    import h5py

    if not os.path.isfile(path):
        raise DatasetError(
            f"file not found: {path}",
            field="file",
            fix="check the path (offrl never downloads datasets)",
        )
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DatasetError(
            f"not a readable HDF5 file ({error})",
            field="file",
            source=str(path),
            fix="the file is truncated or corrupt: re-copy or re-export it",
        ) from error


def _read(group, key: str, source: str) -> np.ndarray:
    if key not in group:
        present = ", ".join(sorted(group.keys()))
        raise DatasetError(
            f"is missing (present: {present})",
            field=key,
            source=source,
            fix=f"add '{key}' to the file, or use the matching importer",
        )
    try:
        return np.asarray(group[key][()])
    except OSError as error:
        raise DatasetError(
            f"could not be read ({error})",
            field=key,
            source=source,
            fix="the file is truncated or corrupt: re-copy or re-export it",
        ) from error


def read_d4rl_hdf5(
    path: str | os.PathLike,
    env_id: str | None = None,
    observation_space=None,
    action_space=None,
    close_last_episode: bool = True,
    validate_data: bool = True,
) -> Dataset:
    """Import a D4RL-style HDF5 file.

    Args:
        path: the ``.hdf5`` file.
        env_id: the Gymnasium id the data came from (recorded in the dataset info).
        observation_space, action_space: spaces to validate against (optional).
        close_last_episode: D4RL files usually stop in the middle of their last
            episode; treat the end of the file as a truncation (a cut in the
            log). With ``False`` an unclosed final episode is an error.
        validate_data: run :func:`offrl.data.validate.validate`.
    """
    source = str(path)
    with _open(path) as f:
        observations = _read(f, "observations", source)
        # A log may lack actions or rewards (the labeling commands supply them).
        actions = _read(f, "actions", source) if "actions" in f else None
        rewards = _read(f, "rewards", source) if "rewards" in f else None
        terminals = _read(f, "terminals", source)
        timeouts = _read(f, "timeouts", source)
        next_observations = (
            np.asarray(f["next_observations"][()]) if "next_observations" in f else None
        )
        optional = {
            name: _read(f, name, source)
            for name in ("costs", "margins", "interventions")
            if name in f
        }
        masks = {key: np.asarray(f["mask"][key][()]) for key in f["mask"]} if "mask" in f else {}
    labels = {name: v for name, v in (("actions", actions), ("rewards", rewards)) if v is not None}
    arrays = {"observations": observations, **labels, "terminals": terminals, "timeouts": timeouts}
    arrays.update(optional)
    if next_observations is not None:
        arrays["next_observations"] = next_observations
    n = _check_d4rl_arrays(arrays, source)
    if rewards is not None:
        labels["rewards"] = rewards.reshape(n)
    terminations = terminals.reshape(n).astype(bool)
    truncations = timeouts.reshape(n).astype(bool) & ~terminations
    keep = np.ones(n, dtype=bool)
    if next_observations is None:
        next_observations = np.concatenate([observations[1:], observations[-1:]], axis=0)
        # A timed-out row's successor belongs to the next episode: drop the row and
        # let the previous row carry the truncation.
        timeout_rows = np.flatnonzero(truncations)
        keep[timeout_rows] = False
        previous = timeout_rows - 1
        previous = previous[(previous >= 0) & ~terminations[np.maximum(previous, 0)]]
        truncations = truncations.copy()
        truncations[previous] = True
        truncations[timeout_rows] = False
        if not terminations[-1] and not truncations[-1]:
            # The last row has no successor either.
            keep[-1] = False
            if n >= 2 and not (terminations[-2] or truncations[-2]):
                truncations[-2] = close_last_episode
    elif close_last_episode and not (terminations[-1] or truncations[-1]):
        truncations[-1] = True
    rows = np.flatnonzero(keep)
    columns = {
        "observations": observations[rows],
        **{name: value[rows] for name, value in labels.items()},
        "next_observations": next_observations[rows],
        "terminations": terminations[rows],
        "truncations": truncations[rows],
        **{name: value.reshape(n)[rows].astype(np.float32) for name, value in optional.items()},
    }
    ends = np.flatnonzero(columns["terminations"] | columns["truncations"])
    bounds = np.concatenate([[0], ends + 1])
    if bounds[-1] < len(rows):
        bounds = np.concatenate([bounds, [len(rows)]])  # unclosed tail: validation reports it
    episodes = [
        {k: v[a:b] for k, v in columns.items()}
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        if b > a
    ]
    info = DatasetInfo(
        name=os.path.splitext(os.path.basename(source))[0], env_id=env_id, source=source
    )
    if action_space is not None:
        info = DatasetInfo(
            name=info.name,
            env_id=env_id,
            source=source,
            action_low=tuple(np.asarray(action_space.low, float).tolist()),
            action_high=tuple(np.asarray(action_space.high, float).tolist()),
        )
    if not episodes:
        raise DatasetError(
            "the file holds no transitions",
            field="rewards",
            source=source,
            fix="export at least one episode",
        )
    info = dataclasses.replace(
        info,
        subsets=tuple(
            (key, subset_ids(key, ids, len(episodes), source)) for key, ids in sorted(masks.items())
        ),
    )
    dataset = from_episodes(episodes, info)
    if validate_data:
        dataset = validate(dataset, observation_space, action_space)
    return dataset


_SCALAR_PER_STEP = ("rewards", "terminals", "timeouts", "costs", "margins", "interventions")


def _check_d4rl_arrays(arrays: dict[str, np.ndarray], source: str) -> int:
    """The number of rows, after checking what the import itself relies on: at least
    one row, aligned lengths, one scalar per step where one is expected, and flags
    that are 0/1 (a float ``terminals`` array must not become 1,000 one-step
    episodes through ``astype(bool)``)."""

    def fail(message: str, name: str, fix: str, index: int | None = None) -> DatasetError:
        return DatasetError(message, field=name, index=index, source=source, fix=fix)

    anchor = "rewards" if "rewards" in arrays else "terminals"
    rewards = arrays[anchor]
    if rewards.ndim == 0:
        raise fail(
            "is a scalar, expected one value per step", anchor, f"store one {anchor[:-1]} per row"
        )
    n = rewards.shape[0]
    if n == 0:
        empty = sorted(k for k, v in arrays.items() if v.ndim and v.shape[0] == 0)
        raise fail(
            f"the file holds no transitions (empty arrays: {', '.join(empty)})",
            anchor,
            "export at least one episode into the file",
        )
    for name, value in arrays.items():
        if value.ndim == 0 or value.shape[0] != n:
            rows = "a scalar" if value.ndim == 0 else f"{value.shape[0]} rows"
            raise fail(
                f"has {rows} but '{anchor}' has {n}",
                name,
                "every array must have one row per transition",
            )
        if not (value.dtype == bool or np.issubdtype(value.dtype, np.number)):
            raise fail(
                f"has dtype {value.dtype}, expected numbers",
                name,
                "store numeric arrays (float32 values, bool or 0/1 flags)",
            )
    for name in _SCALAR_PER_STEP:
        if name in arrays and arrays[name].size != n:
            raise fail(
                f"has shape {arrays[name].shape}, expected ({n},): one value per step",
                name,
                f"store one scalar per row (for several {name} per step, keep one or sum them)",
            )
    for name in ("terminals", "timeouts"):
        value = arrays[name].reshape(n)
        if value.dtype == bool:
            continue
        bad = np.flatnonzero((value != 0) & (value != 1))
        if bad.size:
            i = int(bad[0])
            raise fail(
                f"holds {value[i]!r} at row {i} ({bad.size} rows are neither 0 nor 1), but "
                "flags must be 0 or 1",
                name,
                f"store '{name}' as booleans or 0/1; if these are probabilities or costs, "
                "threshold them yourself or move them to another array",
            )
    return n


def _demo_sort_key(name: str):
    match = re.search(r"(\d+)$", name)
    return (int(match.group(1)) if match else -1, name)


def robomimic_observation_keys(path: str | os.PathLike) -> list[str]:
    """The observation keys of the first demo in a robomimic-style file."""
    with _open(path) as f:
        data = f.get("data")
        if data is None or not len(data.keys()):
            raise DatasetError(
                "has no demos",
                field="data",
                source=str(path),
                fix="a robomimic file holds data/demo_0, data/demo_1, ...",
            )
        first = sorted(data.keys(), key=_demo_sort_key)[0]
        return sorted(data[first]["obs"].keys())


def read_robomimic_hdf5(
    path: str | os.PathLike,
    observation_keys: list[str] | tuple[str, ...] | None = None,
    env_id: str | None = None,
    validate_data: bool = True,
) -> Dataset:
    """Import a robomimic-style HDF5 file of demos.

    Args:
        path: the ``.hdf5`` file.
        observation_keys: which ``obs/<key>`` arrays form the observation, in this
            order; all keys (sorted) when ``None``.
        env_id: recorded in the dataset info; robomimic's ``env_args`` name is
            used when omitted.
    """
    source = str(path)
    with _open(path) as f:
        if "data" not in f:
            raise DatasetError(
                "is missing",
                field="data",
                source=source,
                fix="a robomimic file holds data/demo_0, data/demo_1, ...",
            )
        data = f["data"]
        if env_id is None and "env_args" in data.attrs:
            try:
                env_id = json.loads(data.attrs["env_args"]).get("env_name")
            except (json.JSONDecodeError, TypeError, AttributeError):
                env_id = None
        names = sorted(data.keys(), key=_demo_sort_key)
        if not names:
            raise DatasetError(
                "has no demos",
                field="data",
                source=source,
                fix="a robomimic file holds data/demo_0, data/demo_1, ...",
            )
        keys = list(observation_keys) if observation_keys else sorted(data[names[0]]["obs"].keys())
        episodes, kept = [], []
        for name in names:
            demo = data[name]
            where = f"{source}:data/{name}"
            if "obs" not in demo:
                raise DatasetError(
                    "is missing",
                    field=f"data/{name}/obs",
                    source=source,
                    fix="each demo needs an obs group",
                )

            def flat(group, group_name, where=where):
                parts = []
                for key in keys:
                    if key not in group:
                        raise DatasetError(
                            f"observation key '{key}' is missing (present: "
                            f"{', '.join(sorted(group.keys()))})",
                            field=f"{group_name}/{key}",
                            source=where,
                            fix="choose observation keys that every demo has",
                        )
                    value = np.asarray(group[key][()])
                    parts.append(value.reshape(len(value), -1).astype(np.float32))
                return np.concatenate(parts, axis=1)

            observations = flat(demo["obs"], "obs")
            # Demonstrations without actions or rewards load with those fields missing.
            actions = _read(demo, "actions", where) if "actions" in demo else None
            steps = len(actions) if actions is not None else len(observations)
            rewards = _read(demo, "rewards", where).reshape(-1) if "rewards" in demo else None
            dones = (
                _read(demo, "dones", where).reshape(-1).astype(bool)
                if "dones" in demo
                else np.zeros(steps, bool)
            )
            interventions = None
            if "interventions" in demo:
                interventions = (_read(demo, "interventions", where).reshape(-1) != 0).astype(
                    np.float32
                )
            elif "action_modes" in demo:  # robomimic's human-in-the-loop data: 1 = human
                modes = _read(demo, "action_modes", where).reshape(-1)
                interventions = (modes == 1).astype(np.float32)
            if "next_obs" in demo:
                next_observations = flat(demo["next_obs"], "next_obs")
            else:
                # The final step has no recorded successor: drop it, truncate before it.
                next_observations = observations[1:]
                observations, dones = observations[:-1], dones[:-1]
                actions = None if actions is None else actions[:-1]
                rewards = None if rewards is None else rewards[:-1]
                interventions = None if interventions is None else interventions[:-1]
                steps -= 1
            if steps <= 0:
                continue
            kept.append(name)
            terminations = np.zeros(steps, bool)
            truncations = np.zeros(steps, bool)
            if dones[-1]:
                terminations[-1] = True
            else:
                truncations[-1] = True
            episodes.append(
                {
                    "observations": observations,
                    "next_observations": next_observations,
                    "actions": None if actions is None else actions.reshape(steps, -1),
                    "rewards": rewards,
                    "terminations": terminations,
                    "truncations": truncations,
                    "interventions": interventions,
                }
            )
        masks = _robomimic_masks(f, kept)
    if not episodes:
        raise DatasetError(
            "the file holds no transitions",
            field="data",
            source=source,
            fix="export at least one demo with two or more steps",
        )
    info = DatasetInfo(
        name=os.path.splitext(os.path.basename(source))[0],
        env_id=env_id,
        source=source,
        subsets=masks,
    )
    dataset = from_episodes(episodes, info)
    if validate_data:
        dataset = validate(dataset)
    return dataset


def _demo_steps(demo) -> int:
    """Transitions the reader takes from a demo (the last step needs a successor)."""
    if "actions" in demo:
        steps = len(demo["actions"])
    else:  # an action-free demo: its length is its observations'
        obs = demo.get("obs", {})
        steps = len(obs[next(iter(obs))]) if len(obs) else 0
    return steps if "next_obs" in demo else steps - 1


def _robomimic_masks(f, kept: list[str]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``mask/<key>`` demo names as episode indices (demos without a transition are
    absent from the data and from its subsets)."""
    if "mask" not in f:
        return ()
    index = {name: i for i, name in enumerate(kept)}
    subsets = []
    for key in sorted(f["mask"].keys()):
        values = np.asarray(f["mask"][key][()]).reshape(-1)
        names = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
        subsets.append((key, tuple(sorted(index[n] for n in names if n in index))))
    return tuple(subsets)


def write_hdf5_masks(path: str | os.PathLike, subsets: dict[str, tuple[int, ...]]) -> None:
    """Store subsets (episode indices of the data as read) as ``mask/<key>``: demo names
    in a robomimic file, indices in a D4RL-style one. The file is rewritten beside
    itself and renamed into place."""
    import h5py

    path = pathlib.Path(path)

    def write(tmp_path: pathlib.Path) -> None:
        shutil.copy2(path, tmp_path)
        with h5py.File(tmp_path, "r+") as f:
            robomimic = "data" in f and "observations" not in f
            names = None
            if robomimic:
                names = [
                    n
                    for n in sorted(f["data"].keys(), key=_demo_sort_key)
                    if _demo_steps(f["data"][n]) > 0
                ]
            mask = f.require_group("mask")
            for key, ids in subsets.items():
                if key in mask:
                    del mask[key]
                if names is None:
                    mask.create_dataset(key, data=np.asarray(ids, np.int64))
                else:
                    mask.create_dataset(key, data=np.asarray([names[i] for i in ids], dtype="S"))

    replace_atomically(path, write)
