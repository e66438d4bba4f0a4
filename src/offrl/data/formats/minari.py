"""Minari datasets, local only: read and write both the HDF5 and Arrow back ends.

A Minari dataset lives in a directory ``<root>/<dataset_id>/data`` holding
``metadata.json`` and the episode files. :func:`read_minari` accepts that
``data`` directory, its parent, or a dataset id resolved under
``MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``). Nothing is ever
downloaded. Per-step safety costs travel in ``infos["cost"]`` and safety margins in
``infos["margin"]``, aligned with the observations as Gymnasium returns them:
row 0 is the reset's, row ``t + 1`` the ``step`` that produced observation
``t + 1``. So a step's cost is row ``t + 1`` and its state's margin ``h(s_t)`` row
``t``. The margin of an episode's final observation is written when the task
can compute it from the observation (:func:`offrl.envs.safety.margin_function`)
and as NaN otherwise; it is not part of the dataset's arrays. Named subsets of the
episodes (filter keys) are kept in ``offrl_subsets.json`` beside ``metadata.json``;
intervention flags (1: a person took over for the step) in ``infos["intervention"]``,
aligned like the costs.
"""

from __future__ import annotations

import json
import os
import pathlib

import gymnasium as gym
import numpy as np

from offrl.data.dataset import LABEL_FIELDS, Dataset, DatasetInfo, from_episodes, to_episodes
from offrl.data.formats.atomic import replace_atomically, staged_directory
from offrl.data.validate import DatasetError, subset_ids, validate

#: offrl's side file of named subsets in a Minari dataset directory.
SUBSETS_FILE = "offrl_subsets.json"


def minari_root() -> pathlib.Path:
    """The directory Minari keeps local datasets in (``MINARI_DATASETS_PATH``)."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".minari" / "datasets"


def resolve_minari_path(path_or_id: str | os.PathLike) -> pathlib.Path:
    """The ``data`` directory of a local Minari dataset, or a clear error."""
    candidates = []
    raw = pathlib.Path(path_or_id)
    candidates += [raw, raw / "data"]
    if not raw.is_absolute():
        candidates += [minari_root() / raw / "data"]
    for candidate in candidates:
        if (candidate / "metadata.json").is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise DatasetError(
        f"no Minari dataset found (looked for metadata.json in: {looked})",
        field="metadata.json",
        fix="pass the dataset directory, or set MINARI_DATASETS_PATH to the folder holding it; "
        "offrl never downloads datasets",
    )


def read_minari(path_or_id: str | os.PathLike, validate_data: bool = True) -> Dataset:
    """Load a local Minari dataset (HDF5 or Arrow) into a host-side :class:`Dataset`."""
    data_path = resolve_minari_path(path_or_id)
    try:
        metadata = json.loads((data_path / "metadata.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DatasetError(
            f"metadata.json is unreadable ({error})",
            field="metadata.json",
            source=str(data_path),
            fix="restore the file or rebuild the dataset",
        ) from error
    if not isinstance(metadata, dict):
        raise DatasetError(
            f"metadata.json holds a {type(metadata).__name__}, not an object",
            field="metadata.json",
            source=str(data_path),
            fix="restore the file or rebuild the dataset",
        )
    try:
        storage = _open_storage(data_path, metadata)
        raw_episodes = list(storage.get_episodes(range(storage.total_episodes)))
    except DatasetError:
        raise
    except Exception as error:  # h5py/pyarrow raise many types for damaged files
        raise DatasetError(
            f"the episode data could not be read ({type(error).__name__}: {error})",
            field="data",
            source=str(data_path),
            fix="the file is truncated or corrupt: rebuild or re-copy the dataset",
        ) from error

    obs_space, act_space = storage.observation_space, storage.action_space
    for space, name in ((obs_space, "observations"), (act_space, "actions")):
        if not isinstance(space, gym.spaces.Box):
            raise DatasetError(
                f"has space {space}, but offrl handles flat Box spaces",
                field=name,
                source=str(data_path),
                fix="flatten the space (gymnasium.wrappers.FlattenObservation) when recording",
            )
    # A log without actions or rewards is written with NaN placeholders (Minari needs
    # both arrays) and the metadata naming them: they load as missing, never as numbers.
    absent = metadata.get("offrl_missing_fields") or []
    if not isinstance(absent, list) or not set(absent) <= set(LABEL_FIELDS):
        raise DatasetError(
            f"'offrl_missing_fields' is {absent!r}; it may list only {', '.join(LABEL_FIELDS)}",
            field="metadata.json",
            source=str(data_path),
            fix="restore the file or rebuild the dataset",
        )
    episodes = []
    for index, raw in enumerate(raw_episodes):
        missing = [
            k
            for k in ("observations", "actions", "rewards", "terminations", "truncations")
            if k not in raw or raw[k] is None
        ]
        if missing:
            raise DatasetError(
                "is missing",
                field=missing[0],
                episode=index,
                source=str(data_path),
                fix="rebuild the dataset",
            )
        episode = {
            k: np.asarray(raw[k])
            for k in ("observations", "actions", "rewards", "terminations", "truncations")
        }
        steps = len(episode["terminations"])
        episode["actions"] = episode["actions"].reshape(steps, -1)
        episode["observations"] = episode["observations"].reshape(len(episode["observations"]), -1)
        for name in absent:
            del episode[name]
        infos = raw.get("infos") or {}
        if isinstance(infos, dict) and "cost" in infos:
            episode["costs"] = np.asarray(infos["cost"], np.float32).reshape(-1)[-steps:]
        if isinstance(infos, dict) and "intervention" in infos:
            # who chose the step's action: known once the step is taken (row t + 1)
            episode["interventions"] = np.asarray(infos["intervention"], np.float32).reshape(-1)[
                -steps:
            ]
        if isinstance(infos, dict) and "margin" in infos:
            episode["margins"] = np.asarray(infos["margin"], np.float32).reshape(-1)[:steps]
        if len(episode["observations"]) != steps + 1:
            raise DatasetError(
                f"has {len(episode['observations'])} observations for {steps} "
                "steps; Minari stores steps + 1 (the final observation included)",
                field="observations",
                episode=index,
                source=str(data_path),
                fix="rebuild the dataset with a DataCollector or offrl's writer",
            )
        episodes.append(episode)
    if not episodes:
        raise DatasetError(
            "the dataset holds no episodes",
            field="episodes",
            source=str(data_path),
            fix="record at least one episode",
        )

    env_id = _spec_id(metadata)
    info = DatasetInfo(
        name=metadata.get("dataset_id", data_path.parent.name),
        env_id=env_id,
        action_low=tuple(float(x) for x in np.asarray(act_space.low).reshape(-1)),
        action_high=tuple(float(x) for x in np.asarray(act_space.high).reshape(-1)),
        source=str(data_path),
        subsets=read_subsets_file(data_path, len(episodes)),
    )
    dataset = from_episodes(episodes, info)
    if validate_data:
        flat_obs = gym.spaces.Box(-np.inf, np.inf, (int(np.prod(obs_space.shape)),))
        flat_act = gym.spaces.Box(
            np.asarray(act_space.low).reshape(-1), np.asarray(act_space.high).reshape(-1)
        )
        dataset = validate(dataset, flat_obs, flat_act)
    return dataset


def read_subsets_file(data_path: pathlib.Path, num_episodes: int):
    """The named subsets kept in ``offrl_subsets.json`` beside ``metadata.json`` (a
    file of offrl's that Minari ignores); ``()`` when there is none."""
    path = pathlib.Path(data_path) / SUBSETS_FILE
    if not path.exists():
        return ()
    try:
        content = json.loads(path.read_text())
        stored = dict(content["subsets"])
        recorded = int(content["num_episodes"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(
            f"is unreadable ({type(error).__name__}: {error})",
            field=SUBSETS_FILE,
            source=str(data_path),
            fix=f"restore {path}, or delete it (it holds only the named subsets)",
        ) from error
    if recorded != num_episodes:
        raise DatasetError(
            f"was written for {recorded} episodes, the dataset has {num_episodes}",
            field=SUBSETS_FILE,
            source=str(data_path),
            fix=f"the data changed since: delete {path} and write the subsets again",
        )
    return tuple(
        (name, subset_ids(name, ids, num_episodes, str(data_path)))
        for name, ids in sorted(stored.items())
    )


def write_subsets_file(data_path: pathlib.Path, dataset: Dataset) -> None:
    """Write every subset of ``dataset`` to ``offrl_subsets.json`` (atomically)."""
    content = {
        "format": "offrl-subsets-1",
        "num_episodes": dataset.num_episodes,
        "subsets": {name: list(ids) for name, ids in dataset.info.subsets},
    }
    replace_atomically(
        pathlib.Path(data_path) / SUBSETS_FILE,
        lambda tmp: tmp.write_text(json.dumps(content, indent=1) + "\n"),
    )


def _spec_id(metadata: dict) -> str | None:
    """The environment id in ``metadata["env_spec"]``, read as plain JSON: the
    spec's ``entry_point`` and ``kwargs`` are never used (they name code). A task with
    changes (``BASE@...``, written by offrl) is in ``metadata["offrl_env_id"]``."""
    full = metadata.get("offrl_env_id")
    if isinstance(full, str) and "@" in full:
        return full
    spec_json = metadata.get("env_spec")
    if not isinstance(spec_json, str):
        return None
    try:
        env_id = json.loads(spec_json).get("id")
    except (json.JSONDecodeError, AttributeError):
        return None
    return env_id if isinstance(env_id, str) and env_id else None


def _open_storage(data_path: pathlib.Path, metadata: dict):
    """Minari's storage object for ``data_path``, built without running any code the
    metadata names.

    ``MinariStorage.read`` builds the environment from ``metadata["env_spec"]``
    (importing and calling its ``entry_point``) when a space is missing; a
    shared dataset could run anything that way. Here the spaces come only from
    the serialized ``observation_space`` and ``action_space`` (plain JSON), or,
    for a dataset written without them, from a registered Gymnasium id.
    """
    from minari.dataset._storages import get_minari_storage, get_storage_keys
    from minari.serialization import deserialize_space

    def fail(message: str, fix: str) -> DatasetError:
        return DatasetError(message, field="metadata.json", source=str(data_path), fix=fix)

    data_format = metadata.get("data_format")
    if data_format not in get_storage_keys():
        raise fail(
            f"names data_format {data_format!r}; Minari reads {', '.join(get_storage_keys())}",
            "restore the file or rebuild the dataset",
        )
    spaces = {}
    for name in ("observation_space", "action_space"):
        serialized = metadata.get(name)
        if serialized is None:
            continue
        try:
            spaces[name] = deserialize_space(serialized)
        except Exception as error:  # malformed JSON, unknown space types, bad dtypes
            raise fail(
                f"'{name}' is not a serialized Gymnasium space ({type(error).__name__}: {error})",
                "restore the file or rebuild the dataset",
            ) from error
    if len(spaces) < 2:
        env_id = _spec_id(metadata)
        missing = [n for n in ("observation_space", "action_space") if n not in spaces]
        if env_id is None:
            raise fail(
                f"has no {' or '.join(missing)} and no environment id to take them from",
                "rebuild the dataset with Minari >= 0.4, which records both spaces",
            )
        from offrl.envs.registry import EnvError, make_env

        try:
            # Only a registered id (or a module:Env the user allowed): never the
            # metadata's entry_point or kwargs.
            if ":" in env_id:
                raise EnvError(f"'{env_id}' names a module")
            env = make_env(env_id)
        except Exception as error:  # unregistered id, missing dependencies
            raise fail(
                f"has no {' or '.join(missing)}, and its environment '{env_id}' is not a "
                f"registered Gymnasium id ({error}); offrl does not build environments "
                "from a dataset's entry_point",
                "rebuild the dataset with Minari >= 0.4 (it records both spaces)",
            ) from error
        spaces.setdefault("observation_space", env.observation_space)
        spaces.setdefault("action_space", env.action_space)
        env.close()
    return get_minari_storage(data_format)(
        data_path,
        spaces["observation_space"],
        spaces["action_space"],
        jpeg_encoding=bool(metadata.get("jpeg_encoding", True)),
    )


def write_minari(
    dataset: Dataset,
    path: str | os.PathLike,
    dataset_id: str | None = None,
    observation_space: gym.spaces.Box | None = None,
    action_space: gym.spaces.Box | None = None,
    data_format: str = "hdf5",
    metadata: dict | None = None,
    overwrite: bool = False,
) -> pathlib.Path:
    """Write ``dataset`` as a Minari dataset directory at ``path`` (atomically).

    The directory is assembled beside ``path`` and renamed into place, so a
    failure leaves any existing dataset untouched. ``path`` is the dataset's
    root (``.../<dataset_id>``); the files go to ``path/data`` as Minari expects.
    """
    from minari import __version__ as minari_version
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    if data_format not in ("hdf5", "arrow"):
        raise ValueError(f"data_format must be 'hdf5' or 'arrow', got '{data_format}'")
    # Absolute: Minari joins a relative data path onto itself (".x/data/.x/data/...").
    path = pathlib.Path(path).absolute()
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    from offrl.envs.safety import margin_function, register

    register()
    dataset_id = dataset_id or dataset.info.name
    host = dataset.to_numpy()
    margin_of = margin_function(dataset.info.env_id)
    if observation_space is None:
        observation_space = gym.spaces.Box(-np.inf, np.inf, (host.observation_dim,), np.float32)
    if action_space is None:
        if dataset.info.action_low is not None:
            action_space = gym.spaces.Box(
                np.asarray(dataset.info.action_low, np.float32),
                np.asarray(dataset.info.action_high, np.float32),
            )
        else:
            action_space = gym.spaces.Box(-np.inf, np.inf, (host.action_dim,), np.float32)
    env_spec = None
    if dataset.info.env_id is not None:
        # BASE@changes (offrl.envs.gap) is no Gymnasium id: the spec is BASE's and the
        # full id goes in offrl's own metadata key.
        try:
            env_spec = gym.spec(dataset.info.env_id.split("@", 1)[0])
        except gym.error.Error:
            env_spec = None

    with staged_directory(path) as staging:
        storage = MinariStorage.new(
            staging / "data",
            observation_space=observation_space,
            action_space=action_space,
            env_spec=env_spec,
            data_format=data_format,
        )
        meta = {"dataset_id": dataset_id, "minari_version": minari_version}
        missing = list(host.missing_fields())
        if missing:
            meta["offrl_missing_fields"] = missing
        if dataset.info.env_id is not None and "@" in dataset.info.env_id:
            meta["offrl_env_id"] = dataset.info.env_id
        meta.update(metadata or {})
        storage.update_metadata(meta)
        buffers = []

        def placeholder(episode, name, shape):
            if name in episode:
                return episode[name]
            return np.full((len(episode["terminations"]), *shape), np.nan)

        for index, episode in enumerate(to_episodes(host)):
            infos = {}
            if "costs" in episode:
                # Minari aligns infos with observations (steps + 1 rows): cost 0 at reset.
                # A list, not a 1-D array: minari 0.5's Arrow back end cannot decode the
                # shape metadata it writes for 1-D info arrays.
                infos["cost"] = [0.0, *episode["costs"].astype(float).tolist()]
            if "interventions" in episode:
                infos["intervention"] = [0.0, *episode["interventions"].astype(float).tolist()]
            if "margins" in episode:
                final = (
                    float(margin_of(episode["observations"][-1:])[0])
                    if margin_of is not None
                    else float("nan")
                )
                infos["margin"] = [*episode["margins"].astype(float).tolist(), final]
            buffers.append(
                EpisodeBuffer(
                    id=index,
                    observations=episode["observations"].astype(observation_space.dtype),
                    actions=placeholder(episode, "actions", action_space.shape).astype(
                        action_space.dtype
                    ),
                    rewards=placeholder(episode, "rewards", ()).astype(np.float64),
                    terminations=episode["terminations"].astype(bool),
                    truncations=episode["truncations"].astype(bool),
                    infos=infos,
                )
            )
        storage.update_episodes(buffers)
        if dataset.info.subsets:
            write_subsets_file(staging / "data", dataset)
    return path
