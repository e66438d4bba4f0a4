"""The settings of a run, one dataclass per kind, and their checks.

TrainConfig drives an offline run (offrl train), FinetuneConfig an
interactive one (offrl finetune and offrl online: online training is
fine-tuning without offline data). Both share :class:`RunOptions`, the settings
that do not change a result (loggers, the progress display, the held-out
evaluation), so every kind of run reaches every logger.

Each check() raises a one-line :class:`RunError` naming the flag before
anything is written; :func:`from_dict` reads settings back from
config.json with the same care.
"""

from __future__ import annotations

import dataclasses
import os

REWARD_SCALINGS = ("auto", "none", "locomotion", "antmaze", "standardize")
MIXINGS = ("auto", "ratio", "union", "online")


class RunError(RuntimeError):
    """A run that cannot start or resume as asked."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_positive(**values) -> None:
    """Raise :class:`RunError` for the first value that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RunError(f"{_flag(name)} must be a positive integer, got {value!r}")


def check_non_negative(**values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RunError(f"{_flag(name)} must be 0 or a positive integer, got {value!r}")


def check_seeds(seeds) -> None:
    """Seeds: at least one, integers, no repeats (a repeat would be reported as a
    second independent seed)."""
    seeds = tuple(seeds)
    if not seeds:
        raise RunError("--seeds is empty; pass at least one seed, e.g. --seeds 0,1,2")
    if any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise RunError(f"--seeds must be integers, got {list(seeds)}")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise RunError(
            f"--seeds repeats {', '.join(map(str, repeated))}; each seed must be distinct "
            "(a repeated seed is the same run twice, not a new sample)"
        )


def _check_reward_scaling(value: str) -> None:
    if value not in REWARD_SCALINGS:
        raise RunError(
            f"--reward-scaling must be one of {', '.join(REWARD_SCALINGS)}, got {value!r}"
        )


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Settings every kind of run has that leave its results unchanged (a resume may
    change them)."""

    heldout_episodes: int = 100
    """Episodes per seed of the final evaluation of the final and the best policy, on
    reset seeds no periodic evaluation uses (nothing is chosen on them); 0: none."""
    tensorboard: bool = False
    """Also write TensorBoard event files."""
    wandb_project: str | None = None
    """Also log to this W&B project (offline mode unless WANDB_MODE is set)."""
    mlflow_experiment: str | None = None
    """Also log to this MLflow experiment."""
    progress: bool = True
    """Show a progress bar (a line now and then when the output is not a terminal)."""


#: Fields of :class:`RunOptions`: a resume ignores their differences.
OPTION_FIELDS = tuple(f.name for f in dataclasses.fields(RunOptions))


@dataclasses.dataclass(frozen=True)
class TrainConfig(RunOptions):
    """How to train offline (independent of the algorithm)."""

    steps: int = 1_000_000
    """Gradient updates per seed (D4RL's protocol is 1M)."""
    batch_size: int = 256
    """Transitions per update."""
    steps_per_call: int = 1000
    """Updates fused into one jitted lax.scan call (the host syncs once per call)."""
    eval_every: int = 10_000
    """Evaluate in the environment every this many updates (0: only at the end)."""
    eval_episodes: int = 10
    """Episodes per periodic evaluation and seed (for curves and for choosing the best)."""
    checkpoint_every: int = 50_000
    """Write a checkpoint every this many updates (and always at the end)."""
    seeds: tuple[int, ...] = (0,)
    """Seeds trained in parallel under jax.vmap, e.g. --seeds 0 1 2 3."""
    normalize_observations: bool = True
    """Standardize observations with the training data's mean and std."""
    reward_scaling: str = "auto"
    """auto, none, locomotion, antmaze or standardize. auto: the algorithm's default
    for the dataset's task (IQL: locomotion on MuJoCo locomotion tasks, else none)."""
    validation_fraction: float = 0.0
    """Fraction of episodes held out; their losses are logged as valid/* at each evaluation."""
    filter_key: str | None = None
    """Train on the episodes of this named subset of the dataset only (a robomimic filter
    key; offrl data curate writes them, offrl data inspect lists them)."""
    validation_key: str | None = None
    """Hold out the episodes of this named subset for the valid/* losses (robomimic's
    validation filter key); the rest (or --filter-key's subset) is trained on."""
    weights: str | None = None
    """Per-sample loss weights: an .npz (or .npy) file with one weight per step or per
    episode of the whole dataset (offrl data curate --weights-output writes one). BC losses
    and the actor losses that regress onto data actions take the weighted mean."""
    env_id: str | None = None
    """Evaluation environment; defaults to the dataset's."""
    evaluate: bool = True
    """Evaluate in the environment (periodic and held-out); --no-evaluate trains on the
    data alone, as for a task with no simulator (offrl select scores the checkpoints)."""
    init_from: str | None = None
    """Start from the latest checkpoint of this run directory (the same algorithm,
    settings and number of seeds) and keep its observation and reward scaling: training
    continued on new data (a sequence of tasks, a second stage)."""

    def check(self) -> None:
        """Raise :class:`RunError` naming the first invalid setting (before anything is
        written)."""
        check_positive(
            steps=self.steps,
            batch_size=self.batch_size,
            steps_per_call=self.steps_per_call,
            eval_episodes=self.eval_episodes,
            checkpoint_every=self.checkpoint_every,
        )
        check_non_negative(eval_every=self.eval_every, heldout_episodes=self.heldout_episodes)
        check_seeds(self.seeds)
        if not 0.0 <= self.validation_fraction < 1.0:
            raise RunError(
                f"--validation-fraction must be in [0, 1), got {self.validation_fraction}"
            )
        if self.validation_fraction > 0 and self.validation_key:
            raise RunError(
                "--validation-fraction and --validation-key both choose validation episodes; "
                "pass one"
            )
        if self.weights is not None and not os.path.isfile(self.weights):
            raise RunError(f"--weights: no such file: {self.weights}")
        if self.init_from is not None and not os.path.isfile(
            os.path.join(self.init_from, "config.json")
        ):
            raise RunError(f"--init-from: {self.init_from} is not a run directory")
        _check_reward_scaling(self.reward_scaling)


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(RunOptions):
    """Interaction settings: fine-tuning, and online training (no offline data)."""

    online_steps: int = 100_000
    """Environment steps per seed."""
    env: str | None = None
    """Environment to interact with; None: the data's task. A simulator with a
    dynamics gap is written Hopper-v5@gravity=2 (see offrl.envs.gap)."""
    eval_env: str | None = None
    """Environment of the evaluations; None: the interaction environment's task."""
    mixing: str = "auto"
    """auto (the algorithm's), ratio (offline_ratio of each batch offline), union
    (offline data in the replay buffer) or online (no offline data)."""
    offline_ratio: float = 0.5
    """Offline share of every batch with mixing=ratio (RLPD: 0.5)."""
    utd: int | None = None
    """Updates per environment step (update-to-data ratio; RLPD's paper: 20);
    None: the algorithm's default (1 unless it says otherwise)."""
    batch_size: int = 256
    """Transitions per update and seed."""
    random_steps: int | None = None
    """Uniformly random actions (and no updates) for this many first steps; None:
    the algorithm's default (RLPD and SAC from scratch: 5,000; otherwise 0)."""
    learning_starts: int | None = None
    """No updates before this many steps; None: the algorithm's default (0 for
    methods that start from an offline run)."""
    eval_every: int = 10_000
    """Evaluate every this many steps (plus the starting score and the early ones)."""
    early_evaluations: int = 4
    """Evenly spaced evaluations within the first 10% of the steps (the initial drop)."""
    eval_episodes: int = 10
    """Episodes per periodic evaluation and seed."""
    checkpoint_every: int = 10_000
    """Checkpoint interval in steps."""
    buffer_size: int = 1_000_000
    """Online buffer capacity per seed."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds when starting from scratch (a run's own seeds otherwise)."""
    normalize_observations: bool = True
    """Standardize observations with the dataset's statistics (from scratch only)."""
    reward_scaling: str = "auto"
    """Reward scaling when starting from scratch (an offline run's is kept)."""
    labeler: str | None = None
    """Label every online observation and the offline data with this scripted role
    model's action (RM-RL: pointmaze-planner); the batches carry label_actions."""

    def check(self) -> None:
        """Raise :class:`RunError` naming the first invalid setting."""
        check_positive(
            online_steps=self.online_steps,
            batch_size=self.batch_size,
            eval_episodes=self.eval_episodes,
            checkpoint_every=self.checkpoint_every,
            buffer_size=self.buffer_size,
        )
        check_non_negative(
            eval_every=self.eval_every,
            early_evaluations=self.early_evaluations,
            heldout_episodes=self.heldout_episodes,
        )
        if self.utd is not None:
            check_positive(utd=self.utd)
        for name in ("random_steps", "learning_starts"):
            if getattr(self, name) is not None:
                check_non_negative(**{name: getattr(self, name)})
        check_seeds(self.seeds)
        if not 0.0 <= self.offline_ratio <= 1.0:
            raise RunError(f"--offline-ratio must be in [0, 1], got {self.offline_ratio}")
        if self.mixing not in MIXINGS:
            raise RunError(f"--mixing must be one of {', '.join(MIXINGS)}, got {self.mixing!r}")
        _check_reward_scaling(self.reward_scaling)


#: The settings class of each kind of run, as config.json names it.
SETTINGS = {"train_config": TrainConfig, "finetune_config": FinetuneConfig}


def to_jsonable(value):
    """Dataclasses, tuples and dicts as JSON-ready values."""
    if dataclasses.is_dataclass(value):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def from_dict(cls, data, source: str = "config.json"):
    """cls(**data) with lists turned back into tuples; a :class:`RunError` naming
    source for anything of the wrong shape."""
    if not isinstance(data, dict):
        raise RunError(
            f"{source}: expected an object of {cls.__name__} settings, got "
            f"{type(data).__name__}; the file was edited or damaged: restore it or start a "
            "new run"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise RunError(
            f"{source} has unknown {cls.__module__}.{cls.__name__} fields "
            f"{sorted(unknown)}; it was written by another offrl version"
        )
    defaults = cls()
    kwargs = {}
    for name, value in data.items():
        default = getattr(defaults, name)
        if isinstance(value, list):  # JSON has no tuples; configs hold only tuples
            value = _tuples(value)  # (also where the default is None: tuple | None)
        if default is not None and value is not None and not _same_kind(default, value):
            raise RunError(
                f"{source}: {cls.__name__}.{name} is {value!r} ({type(value).__name__}), "
                f"expected a {type(default).__name__} like the default {default!r}; the file "
                "was edited or damaged: restore it or start a new run"
            )
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise RunError(f"{source}: invalid {cls.__name__} settings ({error})") from error


def _tuples(value):
    """``value`` with every list, nested ones too, turned into a tuple."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _same_kind(default, value) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) == isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float)
    if isinstance(default, tuple):
        return isinstance(value, tuple)
    return isinstance(value, type(default))
