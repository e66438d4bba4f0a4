"""LeRobot datasets (the v3.0 layout), local only: states and actions, no images.

A LeRobot v3 dataset is a directory::

    meta/info.json                          version, fps, features, path templates
    meta/tasks.parquet                      task strings (the pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet  one row per episode: length, tasks, rows
    meta/stats.json                         per-feature statistics
    data/chunk-000/file-000.parquet         one row per frame

A frame holds ``observation.state`` (and other ``observation.*`` vectors),
``action``, ``timestamp``, ``frame_index``, ``episode_index``, ``index`` and
``task_index``; LeRobot's reinforcement-learning recordings add ``next.reward`` and
``next.done``. LeRobot keeps no next observation and does not tell a termination
from a truncation, so reading one:

- the next observation of frame ``t`` is frame ``t + 1``'s;
- the last frame of an episode ends it: a *termination* when ``done_means`` is
  ``"termination"`` (its next observation is its own; nothing bootstraps from
  it), otherwise (the default: a demonstration that stopped being recorded) a
  *truncation*, and since its successor is unknown the frame is dropped and the
  one before it is the truncated last step;
- episodes' tasks become named subsets ``task:<task>`` (``--filter-key`` picks one).

What offrl writes keeps everything: ``next.observation.*`` columns beside the
observations, ``next.terminated`` and ``next.truncated`` beside LeRobot's
``next.done`` (their ``or``), ``next.reward``, the optional per-step fields as
``offrl.<field>`` columns, and the action bounds and environment in
``info.json["offrl"]``. Images and videos are out of scope (an error says so only
if they are asked for as observations; they are otherwise ignored).
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from offrl.data.dataset import Dataset, DatasetInfo, from_episodes, to_episodes
from offrl.data.formats.atomic import staged_directory
from offrl.data.validate import DatasetError, validate

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
#: offrl's optional per-step fields, written as ``offrl.<name>`` columns.
EXTRA_FIELDS = ("costs", "margins", "weights", "interventions")
TASK_PREFIX = "task:"
_NUMERIC = ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")


def is_lerobot(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a LeRobot dataset directory (it has ``meta/info.json``)."""
    return (pathlib.Path(path) / "meta" / "info.json").is_file()


def _error(source, message, field=None, fix=None):
    return DatasetError(message, field=field, fix=fix, source=str(source))


def _column(table, name: str, rows: int) -> np.ndarray:
    """A column as ``[rows, ...]`` (list columns flattened to their width)."""
    import pyarrow as pa

    column = table.column(name).combine_chunks()
    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
        flat = np.asarray(column.flatten().to_numpy(zero_copy_only=False))
        return flat.reshape(rows, -1) if rows else flat.reshape(0, 0)
    return np.asarray(column.to_numpy(zero_copy_only=False))


def _observation_keys(features: dict, keys, source) -> list[str]:
    if keys:
        for key in keys:
            spec = features.get(key)
            if spec is None:
                known = ", ".join(k for k in features if k.startswith("observation."))
                raise _error(source, f"no feature '{key}' (observation features: {known})",
                             field="observation_keys")  # fmt: skip
            if spec.get("dtype") not in _NUMERIC:
                raise _error(
                    source,
                    f"'{key}' is {spec.get('dtype')}; images and videos are not read",
                    field="observation_keys",
                    fix="pick state vectors (observation.state, observation.environment_state)",
                )
        return list(keys)
    default = [k for k in ("observation.state", "observation.environment_state") if k in features]
    if not default:
        raise _error(
            source,
            "no observation.state feature",
            field="observation.state",
            fix="name the vector observation features with --observation-keys",
        )
    return default


def read_lerobot(
    path: str | os.PathLike,
    observation_keys: tuple[str, ...] | None = None,
    env_id: str | None = None,
    done_means: str = "truncation",
) -> Dataset:
    """Read a LeRobot v3 dataset directory (see the module docstring for the rules)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if done_means not in ("truncation", "termination"):
        raise ValueError(f"done_means must be 'truncation' or 'termination', got '{done_means}'")
    root = pathlib.Path(path)
    info = json.loads((root / "meta" / "info.json").read_text())
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise _error(root, f"LeRobot format {version or 'unknown'}; offrl reads v3.0",
                     field="codebase_version",
                     fix="convert it with LeRobot's convert_dataset_v21_to_v30 first")  # fmt: skip
    features = info.get("features", {})
    keys = _observation_keys(features, observation_keys, root)
    files = sorted((root / "data").glob("**/*.parquet"))
    if not files:
        raise _error(root, "no data/*.parquet files", field="data")
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    rows = table.num_rows
    if "episode_index" not in table.column_names:
        raise _error(root, "the frames have no episode_index column", field="episode_index")
    order_by = [c for c in ("index",) if c in table.column_names] or ["episode_index"]
    if "frame_index" in table.column_names and order_by == ["episode_index"]:
        order_by.append("frame_index")
    table = table.sort_by([(c, "ascending") for c in order_by])
    episode_index = _column(table, "episode_index", rows).astype(np.int64)
    observations = np.concatenate([_column(table, k, rows).reshape(rows, -1) for k in keys], 1)
    next_keys = [f"next.{k}" for k in keys]
    has_next = all(k in table.column_names for k in next_keys)
    next_observations = (
        np.concatenate([_column(table, k, rows).reshape(rows, -1) for k in next_keys], 1)
        if has_next
        else None
    )
    actions = _column(table, "action", rows).reshape(rows, -1) if "action" in features else None
    rewards = (
        _column(table, "next.reward", rows).reshape(rows) if "next.reward" in table.column_names
        else None
    )  # fmt: skip
    flags = {
        name: _column(table, f"next.{name}", rows).reshape(rows).astype(bool)
        for name in ("terminated", "truncated", "done")
        if f"next.{name}" in table.column_names
    }
    extras = {
        name: _column(table, f"offrl.{name}", rows).reshape(rows)
        for name in EXTRA_FIELDS
        if f"offrl.{name}" in table.column_names
    }
    task_names = _read_tasks(root)
    task_index = (
        _column(table, "task_index", rows).astype(np.int64)
        if "task_index" in table.column_names
        else np.zeros(rows, np.int64)
    )
    boundaries = np.flatnonzero(np.diff(episode_index)) + 1
    starts = np.concatenate([[0], boundaries]).astype(np.int64)
    ends = np.concatenate([boundaries, [rows]]).astype(np.int64)
    if len(np.unique(episode_index[starts])) != len(starts):
        raise _error(root, "an episode's frames are not contiguous by index", field="index")
    episodes, tasks, dropped = [], {}, 0
    for start, end in zip(starts, ends, strict=True):
        rows_of = slice(int(start), int(end))
        n = int(end - start)
        episode = {"observations": observations[rows_of].astype(np.float32)}
        if actions is not None:
            episode["actions"] = actions[rows_of].astype(np.float32)
        if rewards is not None:
            episode["rewards"] = rewards[rows_of].astype(np.float32)
        for name, values in extras.items():
            episode[name] = values[rows_of].astype(np.float32)
        terminations = np.zeros(n, bool)
        truncations = np.zeros(n, bool)
        if "terminated" in flags and "truncated" in flags:
            terminations[:] = flags["terminated"][rows_of]
            truncations[:] = flags["truncated"][rows_of]
        elif done_means == "termination":
            terminations[-1] = True
        else:
            truncations[-1] = True
        if has_next:
            episode["next_observations"] = next_observations[rows_of].astype(np.float32)
        elif terminations[-1]:
            following = np.concatenate([observations[rows_of][1:], observations[rows_of][-1:]])
            episode["next_observations"] = following.astype(np.float32)
        else:  # the last frame's successor is unknown: drop it, truncate the one before
            if n < 2:
                dropped += 1
                continue
            episode = {k: v[: n - 1] for k, v in episode.items()}
            episode["next_observations"] = observations[rows_of][1:].astype(np.float32)
            terminations, truncations = terminations[: n - 1], truncations[: n - 1]
            truncations[-1] = True
        episode["terminations"], episode["truncations"] = terminations, truncations
        task = task_names.get(int(task_index[start]), f"task {int(task_index[start])}")
        tasks.setdefault(task, []).append(len(episodes))
        episodes.append(episode)
    if not episodes:
        raise _error(root, f"no episode has two frames ({dropped} of one frame)", field="data")
    offrl = info.get("offrl", {})
    data = from_episodes(
        episodes,
        DatasetInfo(
            name=offrl.get("name", root.name),
            env_id=env_id or offrl.get("env_id"),
            action_low=tuple(offrl["action_low"]) if offrl.get("action_low") else None,
            action_high=tuple(offrl["action_high"]) if offrl.get("action_high") else None,
            source=str(root),
        ),
    )
    data = data.with_subsets({TASK_PREFIX + t.replace("/", "-"): ids for t, ids in tasks.items()})
    return validate(data)


def _read_tasks(root: pathlib.Path) -> dict[int, str]:
    """``task_index -> task`` from ``meta/tasks.parquet`` (the task is the pandas index
    LeRobot writes, a ``task`` column, or the first string column)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = root / "meta" / "tasks.parquet"
    if not path.exists():
        return {}
    table = pq.read_table(path)
    names = table.column_names
    text = next(
        (c for c in ("task", "__index_level_0__") if c in names),
        next((c for c in names if pa.types.is_string(table.schema.field(c).type)), None),
    )
    if text is None or "task_index" not in names:
        return {}
    return dict(
        zip(
            (int(i) for i in table.column("task_index").to_pylist()),
            (str(t) for t in table.column(text).to_pylist()),
            strict=True,
        )
    )


def _fixed_list(values: np.ndarray):
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _stats(values: np.ndarray) -> dict:
    values = np.asarray(values, np.float64).reshape(len(values), -1)
    return {
        "min": values.min(0).tolist(),
        "max": values.max(0).tolist(),
        "mean": values.mean(0).tolist(),
        "std": values.std(0).tolist(),
        "count": [len(values)],
    }


def _fps(env_id: str | None) -> int:
    """The environment's frame rate (``render_fps``), 30 when unknown (LeRobot's usual)."""
    if env_id:
        try:
            import gymnasium as gym

            fps = gym.spec(env_id.split("@", 1)[0]).kwargs.get("render_fps")
            if fps is None:
                env = gym.make(env_id.split("@", 1)[0])
                fps = env.metadata.get("render_fps")
                env.close()
            if fps:
                return int(fps)
        except Exception:  # noqa: BLE001 - an unknown id only loses the frame rate
            pass
    return 30


def write_lerobot(
    dataset: Dataset,
    path: str | os.PathLike,
    task: str | None = None,
    fps: int | None = None,
    robot_type: str | None = None,
    overwrite: bool = False,
) -> pathlib.Path:
    """Write ``dataset`` as a LeRobot v3 dataset directory at ``path`` (assembled beside
    it and renamed into place: a failure leaves an existing directory untouched).

    Each episode's task is the ``task:...`` subset holding it, else ``task``, else the
    dataset's name. ``fps`` defaults to the environment's ``render_fps``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    host = dataset.to_numpy()
    fps = int(fps or _fps(host.info.env_id))
    episode_tasks = [task or host.info.name] * host.num_episodes
    for name, ids in host.info.subsets:
        if name.startswith(TASK_PREFIX):
            for i in ids:
                episode_tasks[i] = name[len(TASK_PREFIX) :]
    task_list = sorted(set(episode_tasks))
    task_of = {t: i for i, t in enumerate(task_list)}
    episodes = to_episodes(host)
    lengths = np.asarray(host.episode_lengths, np.int64)
    starts = np.asarray(host.episode_starts, np.int64)
    frame_index = np.concatenate([np.arange(n) for n in lengths]).astype(np.int64)
    episode_index = np.repeat(np.arange(len(lengths)), lengths).astype(np.int64)
    task_index = np.repeat([task_of[t] for t in episode_tasks], lengths).astype(np.int64)
    terminations = np.asarray(host.terminations, bool)
    truncations = np.asarray(host.truncations, bool)
    columns = {
        "observation.state": _fixed_list(np.asarray(host.observations, np.float32)),
        "next.observation.state": _fixed_list(np.asarray(host.next_observations, np.float32)),
    }
    features = {
        "observation.state": _vector_feature(host.observation_dim, "float32"),
        "next.observation.state": _vector_feature(host.observation_dim, "float32"),
    }
    if host.actions is not None:
        columns["action"] = _fixed_list(np.asarray(host.actions, np.float32))
        features["action"] = _vector_feature(host.action_dim, "float32")
    if host.rewards is not None:
        columns["next.reward"] = pa.array(np.asarray(host.rewards, np.float32))
        features["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    for name, values in (("done", terminations | truncations), ("terminated", terminations),
                         ("truncated", truncations)):  # fmt: skip
        columns[f"next.{name}"] = pa.array(values)
        features[f"next.{name}"] = {"dtype": "bool", "shape": [1], "names": None}
    for name in EXTRA_FIELDS:
        values = getattr(host, name)
        if values is not None:
            columns[f"offrl.{name}"] = pa.array(np.asarray(values, np.float32))
            features[f"offrl.{name}"] = {"dtype": "float32", "shape": [1], "names": None}
    columns.update(
        timestamp=pa.array((frame_index / fps).astype(np.float32)),
        frame_index=pa.array(frame_index),
        episode_index=pa.array(episode_index),
        index=pa.array(np.arange(host.size, dtype=np.int64)),
        task_index=pa.array(task_index),
    )
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        dtype = "float32" if name == "timestamp" else "int64"
        features[name] = {"dtype": dtype, "shape": [1], "names": None}
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": int(len(lengths)),
        "total_frames": int(host.size),
        "total_tasks": len(task_list),
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": fps,
        "splits": {"train": f"0:{len(lengths)}"},
        "data_path": DATA_PATH,
        "video_path": None,
        "features": features,
        "offrl": {
            "name": host.info.name,
            "env_id": host.info.env_id,
            "action_low": None if host.info.action_low is None else list(host.info.action_low),
            "action_high": None if host.info.action_high is None else list(host.info.action_high),
        },
    }
    stats = {"observation.state": _stats(host.observations)}
    if host.actions is not None:
        stats["action"] = _stats(host.actions)
    if host.rewards is not None:
        stats["next.reward"] = _stats(host.rewards)
    episode_rows = {
        "episode_index": pa.array(np.arange(len(lengths), dtype=np.int64)),
        "tasks": pa.array([[t] for t in episode_tasks], pa.list_(pa.string())),
        "length": pa.array(lengths),
        "data/chunk_index": pa.array(np.zeros(len(lengths), np.int64)),
        "data/file_index": pa.array(np.zeros(len(lengths), np.int64)),
        "dataset_from_index": pa.array(starts),
        "dataset_to_index": pa.array(starts + lengths),
        "meta/episodes/chunk_index": pa.array(np.zeros(len(lengths), np.int64)),
        "meta/episodes/file_index": pa.array(np.zeros(len(lengths), np.int64)),
    }
    for key, values in (("observation.state", "observations"), ("action", "actions")):
        if key in stats:
            per_episode = [_stats(ep[values][:n]) for ep, n in zip(episodes, lengths, strict=True)]
            for stat in ("min", "max", "mean", "std", "count"):
                episode_rows[f"stats/{key}/{stat}"] = pa.array([s[stat] for s in per_episode])
    # pandas metadata so that LeRobot's pd.read_parquet sees the task as the index
    pandas_meta = {"index_columns": ["task"], "column_indexes": [], "columns": [
        {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
         "metadata": None},
        {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
         "numpy_type": "int64", "metadata": None}]}  # fmt: skip
    tasks_table = pa.table(
        {
            "task_index": pa.array(np.arange(len(task_list), dtype=np.int64)),
            "task": pa.array(task_list, pa.string()),
        }  # fmt: skip
    ).replace_schema_metadata({"pandas": json.dumps(pandas_meta)})

    with staged_directory(path) as staging:
        data_file = staging / DATA_PATH.format(chunk_index=0, file_index=0)
        episodes_file = staging / EPISODES_PATH.format(chunk_index=0, file_index=0)
        data_file.parent.mkdir(parents=True)
        episodes_file.parent.mkdir(parents=True)
        pq.write_table(pa.table(columns), data_file)
        pq.write_table(pa.table(episode_rows), episodes_file)
        pq.write_table(tasks_table, staging / "meta" / "tasks.parquet")
        (staging / "meta" / "info.json").write_text(json.dumps(info, indent=4))
        (staging / "meta" / "stats.json").write_text(json.dumps(stats, indent=4))
    return path


def _vector_feature(width: int, dtype: str) -> dict:
    return {"dtype": dtype, "shape": [int(width)], "names": None}
