"""GuDA (Corrado et al. 2024): guided data augmentation.

A user names augmentation operations that map a trajectory segment to another
physically plausible one, and a predicate that says when a segment makes progress
on the task; only augmented segments the predicate accepts are kept (GuDA), against
keeping every one (random augmentation). Any offline algorithm then trains on the
real episodes plus the kept segments (each a new episode, truncated at its end).

The machinery is generic (:func:`augment`: operations and a predicate on segments,
with a validity check and a reward function); :func:`augment_pointmaze` supplies
PointMaze's: translations of a segment by whole maze cells and reflections about a
cell's centre line (positions, velocities and the force mirrored) that keep a disc
of radius 0.1 off the walls at every state, the goal kept, rewards recomputed with
the task's reward; progress is a fall of the shortest-path distance to the goal
around the walls over the segment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from offrl.curate.preferences import segment_starts
from offrl.data.dataset import Dataset, concatenate, from_episodes
from offrl.data.validate import DatasetError
from offrl.envs.pointmaze import MazeGeometry, goal_reward, is_pointmaze

Segment = dict[str, np.ndarray]  # observations [L + 1, D], actions [L, A]
Operation = Callable[[Segment, np.random.Generator], Segment]


@dataclasses.dataclass(frozen=True)
class Config:
    """How many segments, of which length, by which operations, guided or not."""

    segments: int = 2000
    """Augmented segments to keep."""
    length: int = 20
    """Steps per segment."""
    operations: tuple[str, ...] = ("translate", "reflect")
    """PointMaze's operations to draw from (translate, reflect)."""
    guided: bool = True
    """Keep only segments the progress predicate accepts (False: every valid one)."""
    progress: float = 0.0
    """The predicate's margin: the distance to the goal must fall by more than this."""
    max_tries: int = 200
    """Give up after this many tries per segment asked for."""
    seed: int = 0
    """Seed of the segments and the operations."""


def take_segment(dataset: Dataset, start: int, length: int) -> Segment:
    rows = slice(start, start + length)
    observations = np.concatenate(
        [dataset.observations[rows], dataset.next_observations[start + length - 1][None]]
    )
    return {"observations": observations.copy(), "actions": dataset.actions[rows].copy()}


def augment(
    dataset: Dataset,
    operations: Sequence[Operation],
    valid: Callable[[Segment], bool],
    progress: Callable[[Segment], bool] | None,
    reward: Callable[[Segment], np.ndarray],
    config: Config,
) -> tuple[Dataset, dict]:
    """The real episodes plus ``config.segments`` augmented segments (subsets ``real``
    and ``augmented``): a random segment, a random operation, kept when ``valid`` and
    (guided) ``progress`` accept it; rewards from ``reward``."""
    dataset.require(("actions", "rewards"), "augmenting segments")
    host = dataset.to_numpy()
    rng = np.random.default_rng(config.seed)
    starts = segment_starts(host, config.length)
    kept: list[dict] = []
    counts = {"tried": 0, "invalid": 0, "rejected": 0}
    while len(kept) < config.segments and counts["tried"] < config.max_tries * config.segments:
        counts["tried"] += 1
        segment = take_segment(host, int(rng.choice(starts)), config.length)
        new = operations[rng.integers(len(operations))](segment, rng)
        if not valid(new):
            counts["invalid"] += 1
            continue
        if progress is not None and not progress(new):
            counts["rejected"] += 1
            continue
        truncations = np.zeros(config.length, bool)
        truncations[-1] = True
        kept.append(
            {
                "observations": new["observations"].astype(np.float32),
                "actions": new["actions"].astype(np.float32),
                "rewards": reward(new).astype(np.float32),
                "terminations": np.zeros(config.length, bool),
                "truncations": truncations,
            }
        )
    if not kept:
        raise DatasetError(
            f"no augmented segment was kept in {counts['tried']} tries "
            f"({counts['invalid']} invalid, {counts['rejected']} made no progress)",
            field="observations",
            source=host.info.location,
            fix="use shorter segments, other operations or a smaller --progress",
        )
    real = host.replace(
        info=dataclasses.replace(host.info, subsets=(), filter_key=None),
        **{name: None for name in host.step_fields() if name not in _SEGMENT_FIELDS},
    )
    augmented = from_episodes(kept, real.info)
    joined = concatenate([real, augmented], real.info)
    joined = joined.with_subsets(
        {
            "real": np.arange(real.num_episodes),
            "augmented": np.arange(real.num_episodes, joined.num_episodes),
        }
    )
    return joined, {**counts, "kept": len(kept), "guided": progress is not None}


_SEGMENT_FIELDS = (
    "observations", "actions", "rewards", "next_observations", "terminations", "truncations",
)  # fmt: skip


# ---------------------------------------------------------------------------- PointMaze
# offrl's PointMaze observation: [x, y, vx, vy, goal_x, goal_y]; the action is a force.


def translate(geometry: MazeGeometry) -> Operation:
    """Shift a segment's positions by a whole number of maze cells (the goal stays)."""
    rows, columns = geometry.walls.shape

    def operation(segment: Segment, rng: np.random.Generator) -> Segment:
        shift = geometry.scaling * np.asarray(
            [rng.integers(-columns + 1, columns), rng.integers(-rows + 1, rows)], np.float64
        )
        observations = segment["observations"].copy()
        observations[:, 0:2] += shift
        return {"observations": observations, "actions": segment["actions"].copy()}

    return operation


def reflect(geometry: MazeGeometry) -> Operation:
    """Mirror a segment about the centre line of a maze cell (vertical or horizontal):
    the position, velocity and force components across that line change sign."""
    rows, columns = geometry.walls.shape

    def operation(segment: Segment, rng: np.random.Generator) -> Segment:
        axis = int(rng.integers(2))  # 0: mirror x about a vertical line, 1: y
        cells = columns if axis == 0 else rows
        k = rng.integers(cells)
        if axis == 0:
            line = (k + 0.5) * geometry.scaling - geometry.x_center
        else:
            line = geometry.y_center - (k + 0.5) * geometry.scaling
        observations = segment["observations"].copy()
        actions = segment["actions"].copy()
        observations[:, axis] = 2.0 * line - observations[:, axis]
        observations[:, 2 + axis] = -observations[:, 2 + axis]
        actions[:, axis] = -actions[:, axis]
        return {"observations": observations, "actions": actions}

    return operation


def makes_progress(geometry: MazeGeometry, margin: float = 0.0) -> Callable[[Segment], bool]:
    """GuDA's predicate for PointMaze: the shortest-path distance to the goal falls
    by more than ``margin`` from the segment's first state to its last."""

    def predicate(segment: Segment) -> bool:
        observations = segment["observations"]
        goal = observations[0, 4:6]
        first, last = geometry.distance_to(goal, observations[[0, -1], 0:2])
        return bool(last < first - margin)

    return predicate


def augment_pointmaze(dataset: Dataset, config: Config | None = None) -> tuple[Dataset, dict]:
    """GuDA (or, unguided, random augmentation) on a PointMaze dataset."""
    config = config or Config()
    env_id = dataset.info.env_id or ""
    if not is_pointmaze(env_id) or dataset.observation_dim != 6:
        raise DatasetError(
            f"comes from '{env_id or 'an unknown environment'}' with "
            f"{dataset.observation_dim}-D observations; GuDA's PointMaze operations need "
            "PointMaze's 6-D goal observation (x, y, vx, vy, goal_x, goal_y)",
            field="observations",
            source=dataset.info.location,
            fix="pass a PointMaze dataset (offrl suite list: pointmaze-*), or use "
            "offrl.curate.guda.augment with operations for your task",
        )
    known = {"translate": translate, "reflect": reflect}
    unknown = [name for name in config.operations if name not in known]
    if unknown:
        raise ValueError(f"unknown GuDA operation '{unknown[0]}'; choose from {sorted(known)}")
    geometry = MazeGeometry.of(env_id)
    operations = [known[name](geometry) for name in config.operations]
    dense = "Dense" in env_id

    def valid(segment: Segment) -> bool:
        return bool(geometry.free(segment["observations"][:, 0:2]).all())

    def reward(segment: Segment) -> np.ndarray:
        observations = segment["observations"]
        return goal_reward(observations[1:, 0:2], observations[1:, 4:6], dense)

    progress = makes_progress(geometry, config.progress) if config.guided else None
    return augment(dataset, operations, valid, progress, reward, config)
