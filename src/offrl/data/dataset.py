"""The dataset pytree: episodes flattened into aligned per-step arrays.

A :class:`Dataset` holds one row per transition ``(s, a, r, s', terminated,
truncated)``. ``terminations`` mark a true end of an episode (no bootstrap from
``s'``); ``truncations`` mark a time limit or a cut in the log (bootstrap from
``s'``). Episode ``i`` occupies rows ``episode_starts[i] : episode_starts[i] +
episode_lengths[i]``; its last row is closed by a termination or a truncation.

The arrays are NumPy on the host after loading and validation, and JAX arrays
on the device after :meth:`Dataset.to_device`. :func:`sample` is pure: it takes
a key and returns a batch, so it runs inside ``jax.jit`` and ``lax.scan``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

#: The per-step fields every dataset has, in the order they are written.
STEP_FIELDS = (
    "observations",
    "actions",
    "rewards",
    "next_observations",
    "terminations",
    "truncations",
)
#: Fields a log may lack (video, teleoperation without recorded commands, no reward):
#: ``None`` on the dataset until a labeling command supplies them.
LABEL_FIELDS = ("actions", "rewards")
#: How to supply each missing label field (named in every error about it).
LABEL_FIXES = {
    "actions": "label them with `offrl label actions LABELED --unlabeled THIS` (an "
    "inverse-dynamics model fitted on a dataset that has actions)",
    "rewards": "label them with `offrl label rewards` (a reward model from preferences) or "
    "`offrl label progress` (a progress reward from demonstrations)",
}
#: Per-step fields a dataset may have.
OPTIONAL_STEP_FIELDS = (
    "costs", "margins", "weights", "mc_returns", "interventions", "next_actions",
)  # fmt: skip

Batch = dict[str, jax.Array]


class DatasetError(ValueError):
    """A dataset that cannot be used as it is.

    Attributes:
        field: the offending field (``observations``, ``actions``, ...).
        index: the offending row, or ``None``.
        episode: the episode holding that row, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        index: int | None = None,
        episode: int | None = None,
        fix: str | None = None,
        source: str = "",
    ):
        self.field = field
        self.index = index
        self.episode = episode
        where = []
        if field is not None:
            where.append(f"field '{field}'")
        if index is not None:
            where.append(f"row {index}")
        if episode is not None:
            where.append(f"episode {episode}")
        text = ", ".join(where)
        full = f"{text}: {message}" if text else message
        if source:
            full = f"{source}: {full}"
        if fix:
            full = f"{full}. Fix: {fix}"
        super().__init__(full)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What is known about a dataset beyond its arrays (static, hashable).

    Attributes:
        name: a human-readable name, e.g. ``pendulum-mixed-v0``.
        env_id: the Gymnasium id of the environment that produced it, or ``None``.
        action_low: lower action bounds (tuple), or ``None`` when unknown.
        action_high: upper action bounds (tuple), or ``None`` when unknown.
        source: where it was read from (a path or ``suite:NAME``), for error messages.
        path: the file or Minari directory holding the data when ``source`` is not a
            path (a suite dataset's cache directory), else empty.
        subsets: named subsets of the episodes, robomimic's filter keys:
            ``((name, (episode, ...)), ...)``, sorted by name (see :meth:`Dataset.subset`).
        filter_key: the subset this dataset was selected by at load time, or ``None``.
    """

    name: str = "dataset"
    env_id: str | None = None
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None
    source: str = ""
    path: str = ""
    subsets: tuple[tuple[str, tuple[int, ...]], ...] = ()
    filter_key: str | None = None

    @property
    def location(self) -> str:
        """The file or directory the data lives in."""
        return self.path or self.source

    def subset_names(self) -> list[str]:
        return [name for name, _ in self.subsets]


@struct.dataclass
class Dataset:
    """Aligned per-step arrays plus episode boundaries. A JAX pytree."""

    observations: Any  # [N, obs_dim] float32
    actions: Any  # [N, act_dim] float32, or None when the log has no actions
    rewards: Any  # [N] float32, or None when the log has no rewards
    next_observations: Any  # [N, obs_dim] float32
    terminations: Any  # [N] bool
    truncations: Any  # [N] bool
    episode_starts: Any  # [E] int64: first row of each episode
    episode_lengths: Any  # [E] int64: rows in each episode
    costs: Any = None  # [N] float32, optional (safety: cost of the step, e.g. 1 if h(s') < 0)
    margins: Any = None  # [N] float32, optional (safety margin h(s) of the step's state, > 0 safe)
    weights: Any = None  # [N] float32, optional (per-step loss weights)
    mc_returns: Any = None  # [N] float32, optional (derived: discounted return-to-go, Cal-QL)
    interventions: Any = None  # [N] float32 0/1, optional (1: a person took over for this step)
    next_actions: Any = None  # [N, act_dim] float32, optional (derived: a_{t+1}, ReBRAC)
    info: DatasetInfo = struct.field(pytree_node=False, default=DatasetInfo())

    # ----------------------------------------------------------------- sizes
    @property
    def size(self) -> int:
        return int(self.observations.shape[0])

    def __len__(self) -> int:
        return self.size

    @property
    def num_episodes(self) -> int:
        return int(self.episode_starts.shape[0])

    @property
    def observation_dim(self) -> int:
        return int(self.observations.shape[-1])

    @property
    def action_dim(self) -> int:
        """Width of an action (from the recorded bounds when the actions are missing)."""
        if self.actions is not None:
            return int(self.actions.shape[-1])
        if self.info.action_low is not None:
            return len(self.info.action_low)
        self.require("actions", "its action dimension")
        return 0  # unreachable: require raised

    def missing_fields(self) -> tuple[str, ...]:
        """The label fields (``actions``, ``rewards``) this dataset lacks."""
        return tuple(name for name in LABEL_FIELDS if getattr(self, name) is None)

    def require(self, fields: str | Sequence[str], purpose: str) -> None:
        """Raise a one-line :class:`DatasetError` naming the first of ``fields`` this
        dataset lacks, what needs it, and the labeling command that supplies it."""
        for name in (fields,) if isinstance(fields, str) else fields:
            if getattr(self, name) is None:
                raise DatasetError(
                    f"is missing, and {purpose} needs it",
                    field=name,
                    source=self.info.source or self.info.name,
                    fix=LABEL_FIXES.get(name, f"provide '{name}' for every step").replace(
                        "THIS", self.info.location or "THIS"
                    ),
                )

    def step_fields(self) -> dict[str, Any]:
        """The per-step arrays (required and present optional ones) by name; a missing
        label field (``actions``, ``rewards``) is left out."""
        fields = {name: getattr(self, name) for name in STEP_FIELDS}
        for name in LABEL_FIELDS:
            if fields[name] is None:
                del fields[name]
        for name in OPTIONAL_STEP_FIELDS:
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        return fields

    # ------------------------------------------------------------- placement
    def to_device(self, device: jax.Device | None = None) -> Dataset:
        """Copy the arrays to a JAX device (the default device if ``None``)."""
        return jax.device_put(self, device)

    def to_numpy(self) -> Dataset:
        return jax.tree_util.tree_map(np.asarray, self)

    def digest(self) -> str:
        """SHA-256 over every per-step array: equal digests mean identical data."""
        digest = hashlib.sha256()
        for field, value in sorted(self.to_numpy().step_fields().items()):
            digest.update(field.encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        return digest.hexdigest()

    # -------------------------------------------------------------- episodes
    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode, ``[E]``."""
        self.require("rewards", "an episode return")
        rewards = np.asarray(self.rewards, dtype=np.float64)
        cumulative = np.concatenate([[0.0], np.cumsum(rewards)])
        starts = np.asarray(self.episode_starts)
        ends = starts + np.asarray(self.episode_lengths)
        return cumulative[ends] - cumulative[starts]

    # --------------------------------------------------------------- subsets
    def subset_episodes(self, name: str) -> np.ndarray:
        """The episode indices of the named subset (a robomimic filter key)."""
        subsets = dict(self.info.subsets)
        if name not in subsets:
            known = ", ".join(sorted(subsets)) or "none"
            raise KeyError(
                f"{self.info.source or self.info.name} has no subset '{name}' (its subsets: "
                f"{known}); offrl data curate writes one, offrl data inspect lists them"
            )
        return np.asarray(subsets[name], np.int64)

    def subset(self, name: str) -> Dataset:
        """The episodes of the named subset, as a dataset (its ``info.filter_key`` set)."""
        selected = self.select_episodes(self.subset_episodes(name))
        return selected.replace(info=dataclasses.replace(selected.info, filter_key=name))

    def with_subsets(self, subsets: dict[str, Sequence[int] | np.ndarray]) -> Dataset:
        """This dataset with named subsets added (or replaced), checked for range."""
        merged = dict(self.info.subsets)
        for name, ids in subsets.items():
            ids = np.asarray(ids, np.int64).reshape(-1)
            if not name or "/" in name:
                raise ValueError(f"a subset name must be non-empty without '/', got '{name}'")
            outside = ids[(ids < 0) | (ids >= self.num_episodes)]
            if outside.size:
                raise ValueError(
                    f"subset '{name}' names episode {int(outside[0])}, but the dataset has "
                    f"episodes 0..{self.num_episodes - 1}"
                )
            merged[name] = tuple(int(i) for i in np.unique(ids))
        info = dataclasses.replace(self.info, subsets=tuple(sorted(merged.items())))
        return self.replace(info=info)

    def select_episodes(self, episode_ids: Sequence[int] | np.ndarray) -> Dataset:
        """A new dataset holding only the given episodes, in the given order (subsets
        keep the selected episodes, renumbered)."""
        host = self.to_numpy()
        episode_ids = np.asarray(episode_ids, dtype=np.int64)
        starts = np.asarray(host.episode_starts)[episode_ids]
        lengths = np.asarray(host.episode_lengths)[episode_ids]
        rows = (
            np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths, strict=True)])
            if len(episode_ids)
            else np.zeros((0,), np.int64)
        )
        new_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        fields = {k: np.asarray(v)[rows] for k, v in host.step_fields().items()}
        return Dataset(
            **fields,
            episode_starts=new_starts[: len(episode_ids)],
            episode_lengths=lengths.astype(np.int64),
            info=_renumbered_subsets(self.info, episode_ids),
        )


def _renumbered_subsets(info: DatasetInfo, episode_ids: np.ndarray) -> DatasetInfo:
    if not info.subsets:
        return info
    new_index = {int(old): new for new, old in enumerate(episode_ids)}
    subsets = tuple(
        (name, tuple(sorted(new_index[i] for i in ids if i in new_index)))
        for name, ids in info.subsets
    )
    return dataclasses.replace(info, subsets=subsets)


def from_episodes(episodes: Sequence[dict[str, np.ndarray]], info: DatasetInfo) -> Dataset:
    """Build a dataset from per-episode dicts.

    Each episode dict holds ``observations`` with ``T + 1`` rows (the final
    observation included, as Minari stores them) or ``T`` rows together with
    ``next_observations``; ``actions``, ``rewards``, ``terminations`` and
    ``truncations`` with ``T`` rows (``actions`` and ``rewards`` may be absent from
    every episode); optionally ``costs``, ``margins`` and ``weights``.
    No validation happens here: call :func:`offrl.data.validate.validate`.
    """
    parts: dict[str, list[np.ndarray]] = {name: [] for name in STEP_FIELDS + OPTIONAL_STEP_FIELDS}
    lengths = []
    for episode in episodes:
        steps = len(episode["terminations"])
        observations = np.asarray(episode["observations"])
        if "next_observations" in episode:
            next_observations = np.asarray(episode["next_observations"])
            observations = observations[:steps]
        else:
            next_observations = observations[1 : steps + 1]
            observations = observations[:steps]
        parts["observations"].append(observations)
        parts["next_observations"].append(next_observations)
        for name in ("actions", "rewards", "terminations", "truncations", *OPTIONAL_STEP_FIELDS):
            if name in episode and episode[name] is not None:
                parts[name].append(np.asarray(episode[name]))
        lengths.append(steps)
    fields: dict[str, Any] = {}
    for name, chunks in parts.items():
        if not chunks:
            fields[name] = None
            continue
        if name in OPTIONAL_STEP_FIELDS + LABEL_FIELDS and len(chunks) != len(lengths):
            raise ValueError(f"field '{name}' is present in some episodes and missing in others")
        fields[name] = np.concatenate(chunks, axis=0)
    lengths_array = np.asarray(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths_array)[:-1]]).astype(np.int64)
    return Dataset(
        **fields, episode_starts=starts[: len(lengths)], episode_lengths=lengths_array, info=info
    )


def to_episodes(dataset: Dataset) -> list[dict[str, np.ndarray]]:
    """Split a dataset into per-episode dicts (observations get ``T + 1`` rows)."""
    host = dataset.to_numpy()
    episodes = []
    for start, length in zip(host.episode_starts, host.episode_lengths, strict=True):
        rows = slice(int(start), int(start + length))
        episode = {k: v[rows] for k, v in host.step_fields().items()}
        episode["observations"] = np.concatenate(
            [episode["observations"], episode.pop("next_observations")[-1:]], axis=0
        )
        episodes.append(episode)
    return episodes


def concatenate(datasets: Sequence[Dataset], info: DatasetInfo | None = None) -> Dataset:
    """Concatenate datasets episode-wise (e.g. medium + expert); subsets of the same
    name are joined, their episodes renumbered. Every part must have the same fields."""
    hosts = [d.to_numpy() for d in datasets]
    names = list(hosts[0].step_fields())
    for part in hosts[1:]:
        if set(part.step_fields()) != set(names):
            differ = sorted(set(part.step_fields()) ^ set(names))
            raise ValueError(
                f"field '{differ[0]}' is present in some datasets and missing in others; "
                "drop it from all of them or supply it for all"
            )
    fields = {name: np.concatenate([np.asarray(getattr(h, name)) for h in hosts]) for name in names}
    lengths = np.concatenate([np.asarray(h.episode_lengths, np.int64) for h in hosts])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    info = info or dataclasses.replace(hosts[0].info, subsets=(), filter_key=None)
    subsets: dict[str, list[int]] = {}
    offset = 0
    for part in hosts:
        for name, ids in part.info.subsets:
            subsets.setdefault(name, []).extend(offset + i for i in ids)
        offset += part.num_episodes
    joined = Dataset(
        **fields,
        episode_starts=starts[: len(lengths)],
        episode_lengths=lengths,
        info=info,
    )
    return joined.with_subsets(subsets)


def num_rows(dataset: Dataset):
    """The rows that hold data: one past the last episode's last row (the array length,
    unless :func:`pad_rows` padded the arrays). Works on traced arrays."""
    return dataset.episode_starts[-1] + dataset.episode_lengths[-1]


def pad_rows(dataset: Dataset, rows: int, episodes: int | None = None) -> Dataset:
    """``dataset`` with its per-step arrays zero-padded to ``rows`` rows and empty
    episodes appended after the last (one, or up to ``episodes`` episodes in all), so
    datasets of different sizes stack on a leading axis (``jax.vmap`` over datasets)
    while :func:`sample` and the window sampler still draw real rows only."""
    size, count = int(dataset.size), int(dataset.num_episodes)
    episodes = count + 1 if episodes is None else episodes
    if rows < size or episodes <= count:
        raise ValueError(
            f"cannot pad {size} rows and {count} episodes to {rows} rows and {episodes} episodes"
        )
    padded = {}
    for name, values in dataset.step_fields().items():
        values = np.asarray(values)
        padded[name] = np.concatenate(
            [values, np.zeros((rows - size, *values.shape[1:]), values.dtype)]
        )  # noqa: E501
    return dataset.replace(
        **padded,
        episode_starts=np.append(np.asarray(dataset.episode_starts), [size] * (episodes - count)),
        episode_lengths=np.append(np.asarray(dataset.episode_lengths), [0] * (episodes - count)),
    )


def stack_padded(datasets: Sequence[Dataset]) -> Dataset:
    """Datasets of one task (equal observation and action sizes and fields) as one
    with a leading dataset axis, each zero-padded by :func:`pad_rows` to the largest:
    what ``jax.vmap`` over datasets takes. The result carries the first one's info."""
    rows = max(d.size for d in datasets)
    episodes = max(d.num_episodes for d in datasets) + 1
    padded = [pad_rows(d, rows, episodes).replace(info=datasets[0].info) for d in datasets]
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *padded)


def sample(dataset: Dataset, key: jax.Array, batch_size: int) -> Batch:
    """Draw ``batch_size`` transitions uniformly with replacement from the rows that hold
    data (:func:`num_rows`). Pure; jit-able."""
    indices = jax.random.randint(key, (batch_size,), 0, num_rows(dataset))
    return {name: jnp.take(v, indices, axis=0) for name, v in dataset.step_fields().items()}


def split_by_episode(
    dataset: Dataset, validation_fraction: float, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Split into train and validation sets by whole episodes.

    At least one episode goes to each side when there are two or more episodes.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    count = dataset.num_episodes
    if count < 2:
        raise ValueError(
            f"cannot split a dataset of {count} episode(s) by episode; it needs at least 2"
        )
    order = np.random.default_rng(seed).permutation(count)
    n_valid = min(count - 1, max(1, int(round(validation_fraction * count))))
    valid_ids = np.sort(order[:n_valid])
    train_ids = np.sort(order[n_valid:])
    return dataset.select_episodes(train_ids), dataset.select_episodes(valid_ids)
