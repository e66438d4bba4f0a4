"""The task registry: Gymnasium id, horizon and reference returns per task.

The normalized score is D4RL's ``100 * (R - R_random) / (R_expert - R_random)``.
Every reference return records where it came from; offrl's own are measured
with the command in ``reference_command``.

Offline value estimates (FQE) are discounted, so tasks with offrl's own
references also carry the same episodes' *discounted* returns (``random_value``
and ``expert_value``, discount :data:`VALUE_DISCOUNT`); :func:`normalized_value`
maps a discounted value onto the same 0..100 scale.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np

from offrl.envs.industrial import DMSD_ENERGY_BUDGET


@dataclasses.dataclass(frozen=True)
class Task:
    """A registered task.

    Attributes:
        env_id: Gymnasium id.
        max_episode_steps: the time limit used for datasets and evaluation.
        random_return: mean return of a uniform random policy, or ``None``.
        expert_return: mean return of the expert policy, or ``None``.
        reference_source: where the two references come from.
        reference_command: the command that measured them (offrl's own).
        random_value, expert_value: the same episodes' mean discounted return
            (discount :data:`VALUE_DISCOUNT`), or ``None``.
        cost_budget: a global constraint: the most an episode's summed
            ``info["cost"]`` may be (``None``: no budget).
    """

    env_id: str
    max_episode_steps: int
    random_return: float | None = None
    expert_return: float | None = None
    reference_source: str = ""
    reference_command: str = ""
    random_value: float | None = None
    expert_value: float | None = None
    cost_budget: float | None = None


#: The discount of every ``random_value`` / ``expert_value`` in the registry.
VALUE_DISCOUNT = 0.99


TASKS: dict[str, Task] = {
    # Measured by offrl on 2026-11-27: 100 episodes each, reset seeds 0..99.
    "pendulum": Task(
        "Pendulum-v1",
        200,
        random_return=-1207.56,
        expert_return=-144.75,
        reference_source="offrl: uniform random policy and the scripted swing-up controller "
        "(offrl.suites.pendulum.SwingUpController), 100 episodes each",
        reference_command="python -m offrl.suites.pendulum --measure-references",
        random_value=-521.43,
        expert_value=-124.26,
    ),
    # D4RL's references (measured on the -v2 environments; Gymnasium's v5 differ slightly).
    # offrl's own (2026-11-27): random = uniform actions, resets 0..99; expert = the
    # shipped SAC expert (offrl/suites/behavior_data/hopper/expert.npz), stochastic actions
    # as its dataset is collected, resets 800000000..800000099 (REFERENCE_SEED: disjoint
    # from the periodic evaluations, 10000.., and the held-out ones, 900000000..; on
    # 10000..10099 it scored 3489.35, the easier start states). Re-measured 2026-12-02.
    "hopper": Task(
        "Hopper-v5",
        1000,
        random_return=19.08,
        expert_return=3513.77,
        reference_source="offrl: uniform random policy (100 episodes) and offrl's shipped "
        "SAC expert after 1M steps (100 episodes, stochastic actions)",
        reference_command="python -m offrl.suites.locomotion --measure-references --tasks hopper",
        random_value=16.70,
        expert_value=268.36,
    ),
    # offrl's own (2026-11-27): random = uniform actions, resets 0..99; expert = the
    # shipped SAC expert (offrl/suites/behavior_data/halfcheetah/expert.npz), stochastic
    # actions, resets 800000000..800000099 (9543.08 on 10000..10099). Re-measured 2026-12-02.
    "halfcheetah": Task(
        "HalfCheetah-v5",
        1000,
        random_return=-277.66,
        expert_return=9541.22,
        reference_source="offrl: uniform random policy (100 episodes) and offrl's shipped "
        "SAC expert (step 640k of a run stopped at 670k; 100 episodes, stochastic actions)",
        reference_command="python -m offrl.suites.locomotion --measure-references "
        "--tasks halfcheetah",
        random_value=-29.33,
        expert_value=667.10,
    ),
    # Walker2d: uniform random policy (100 episodes) and offrl's shipped SAC expert
    # (offrl/suites/behavior_data/walker2d/expert.npz), stochastic actions, resets
    # 800000000..800000099 (3887.97 on 10000..10099). Re-measured 2026-12-02.
    "walker2d": Task(
        "Walker2d-v5",
        1000,
        random_return=1.55,
        expert_return=3836.97,
        reference_source="offrl: uniform random policy (100 episodes) and offrl's shipped "
        "SAC expert (step 1M; 100 episodes, stochastic actions)",
        reference_command="python -m offrl.suites.locomotion --measure-references --tasks walker2d",
        random_value=1.73,
        expert_value=269.62,
    ),
}

# PointMaze (sparse and dense rewards): offrl's own references, measured with the
# command recorded in each task (see offrl.suites.maze).
_MAZE_REFERENCES = {
    # name: (random return, planner return, random value, planner value); 100 episodes
    # each, measured 2026-11-27 (values: discounted returns, VALUE_DISCOUNT)
    "pointmaze-umaze": (15.85, 245.04, 3.19, 55.45),
    "pointmaze-umaze-dense": (68.63, 255.01, 20.58, 62.96),
    "pointmaze-medium": (17.48, 498.86, 1.29, 40.69),
    "pointmaze-medium-dense": (73.13, 512.34, 10.07, 47.84),
    "pointmaze-large": (13.58, 637.68, 0.64, 26.55),
    "pointmaze-large-dense": (47.97, 650.89, 4.72, 31.33),
}
for _maze, _title in (("umaze", "UMaze"), ("medium", "Medium"), ("large", "Large")):
    for _dense in (False, True):
        _name = f"pointmaze-{_maze}" + ("-dense" if _dense else "")
        _random, _expert, _random_value, _expert_value = _MAZE_REFERENCES[_name]
        TASKS[_name] = Task(
            f"PointMaze_{_title}{'Dense' if _dense else ''}-v3",
            {"umaze": 300, "medium": 600, "large": 800}[_maze],
            _random,
            _expert,
            reference_source="offrl: uniform random policy and the waypoint planner "
            "(offrl.suites.maze.WaypointController), 100 episodes each",
            reference_command="python -m offrl.suites.maze --measure-references",
            random_value=_random_value,
            expert_value=_expert_value,
        )

# Safety tasks (offrl.envs.safety). The point robot's references: measured 2026-11-27,
# 100 episodes each, resets 0..99; "expert" is the constraint-ignoring goal seeker (the
# return ceiling), so a safe policy scores below 100 by construction.
TASKS["pointrobot"] = Task(
    "offrl/PointRobot-v0",
    100,
    random_return=0.65,
    expert_return=74.99,
    reference_source="offrl: uniform random policy and the scripted goal seeker "
    "(offrl.suites.safety.GoalSeeker, constraint-ignoring), 100 episodes each",
    reference_command="python -m offrl.suites.safety --measure-references",
    random_value=0.39,
    expert_value=41.57,
)
# NeoRL-2-style tasks (offrl.envs.industrial): offrl's own references, measured
# 2026-12-06 with 100 episodes each on the reference resets 800000000..800000099:
# uniform random actions and the scripted experts of offrl.suites.industrial (for the
# Hopper with random friction, the suite's shipped SAC expert, stochastic actions).
TASKS["dmsd"] = Task(
    "offrl/DMSD-v0",
    100,
    random_return=22.21,
    expert_return=91.85,
    reference_source="offrl: uniform random policy and the scripted PID expert with the "
    "springs' feedforward (offrl.suites.industrial.dmsd_expert), 100 episodes each",
    reference_command="python -m offrl.suites.industrial --measure-references",
    random_value=14.66,
    expert_value=56.26,
    cost_budget=DMSD_ENERGY_BUDGET,
)
TASKS["pipeline"] = Task(
    "offrl/Pipeline-v0",
    500,
    random_return=-203.29,
    expert_return=-23.48,
    reference_source="offrl: uniform random policy and the scripted forecast-and-off-take "
    "feedforward (offrl.suites.industrial.pipeline_expert), 100 episodes each",
    reference_command="python -m offrl.suites.industrial --measure-references",
    random_value=-42.98,
    expert_value=-16.63,
)
TASKS["hopper-friction"] = Task(
    "offrl/RandomFrictionHopper-v0",
    1000,
    random_return=20.66,
    expert_return=1721.90,
    reference_source="offrl: uniform random policy and offrl's shipped Hopper SAC expert "
    "(stochastic actions) under friction drawn per episode, 100 episodes each",
    reference_command="python -m offrl.suites.industrial --measure-references "
    "--tasks offrl/RandomFrictionHopper-v0",
    random_value=17.21,
    expert_value=245.42,
)
# The pushing task (offrl.envs.push), measured 2026-12-06, 100 episodes each on the
# reference resets: uniform random actions and the noise-free scripted pusher.
TASKS["push"] = Task(
    "offrl/Push-v0",
    100,
    random_return=-68.65,
    expert_return=74.31,
    reference_source="offrl: uniform random policy and the scripted pusher "
    "(offrl.suites.manipulation.Pusher, every episode at the goal), 100 episodes each",
    reference_command="python -m offrl.suites.manipulation --measure-references",
    random_value=-43.52,
    expert_value=39.98,
)
# The hidden-goal point robot (offrl.envs.goals), measured 2026-12-06, 100 episodes
# each on the reference resets, all 20 goals: uniform random actions and the goal seeker
# that knows the goal. Every goal is 1 from the start, so the three goal sets share them.
for _name, _env_id in (
    ("hidden-goal", "offrl/HiddenGoal-v0"),
    ("hidden-goal-train", "offrl/HiddenGoalTrain-v0"),
    ("hidden-goal-test", "offrl/HiddenGoalTest-v0"),
):
    TASKS[_name] = Task(
        _env_id,
        20,
        random_return=-20.30,
        expert_return=-4.04,
        reference_source="offrl: uniform random policy and the noise-free goal seeker that "
        "knows the goal (offrl.suites.meta.GoalSeeker), 100 episodes each",
        reference_command="python -m offrl.suites.meta --measure-references",
        random_value=-18.47,
        expert_value=-3.94,
    )
# Velocity-constrained locomotion keeps its task's reward, so its references too.
for _name, _base in (
    ("hopper", "Hopper"),
    ("halfcheetah", "HalfCheetah"),
    ("walker2d", "Walker2d"),
):
    TASKS[f"{_name}-velocity"] = dataclasses.replace(
        TASKS[_name], env_id=f"offrl/{_base}Velocity-v0"
    )

_ENV_TO_TASK = {task.env_id: name for name, task in TASKS.items()}


def get_task(name_or_env_id: str | None) -> Task | None:
    """The task for a name (``hopper``) or Gymnasium id (``Hopper-v5``), else ``None``."""
    if name_or_env_id is None:
        return None
    if name_or_env_id in TASKS:
        return TASKS[name_or_env_id]
    # BASE@...: changed physics, hidden velocities or late actions keep the base
    # task's rewards, so its time limit and references (offrl.envs.gap).
    name = _ENV_TO_TASK.get(name_or_env_id.split("@", 1)[0])
    return TASKS[name] if name else None


def normalized_score(returns, task: Task | str | None):
    """D4RL's normalized score of ``returns`` (scalar or array), or ``None`` if unknown."""
    if isinstance(task, str) or task is None:
        task = get_task(task)
    if task is None or task.random_return is None or task.expert_return is None:
        return None
    returns = np.asarray(returns, dtype=np.float64)
    return 100.0 * (returns - task.random_return) / (task.expert_return - task.random_return)


def normalized_value(values, task: Task | str | None, discount: float):
    """A discounted value (e.g. an FQE estimate) on the normalized scale:
    ``100 * (V - V_random) / (V_expert - V_random)`` with the registry's discounted
    references, or ``None`` when the task has none or ``discount`` differs from theirs."""
    if isinstance(task, str) or task is None:
        task = get_task(task)
    if (
        task is None
        or task.random_value is None
        or task.expert_value is None
        or abs(discount - VALUE_DISCOUNT) > 1e-9
    ):
        return None
    values = np.asarray(values, dtype=np.float64)
    return 100.0 * (values - task.random_value) / (task.expert_value - task.random_value)


class EnvError(ValueError):
    """An environment id offrl will not or cannot create."""


#: ``module:Env`` ids the user passed on the command line (or to :func:`allow_env_id`).
_ALLOWED_IMPORTS: set[str] = set()


def allow_env_id(env_id: str | None) -> None:
    """Let :func:`make_env` import the module an id of the form ``module:Env`` names.

    Gymnasium imports ``module`` before it makes ``module:Env``, which runs that
    module's code. offrl does this only for ids a user typed (``--env-id``,
    ``--env``, ``--eval-env``), never for ids read from a dataset's metadata or a
    run's ``config.json``; the command line calls this for the ids it is given.
    """
    if env_id:
        _ALLOWED_IMPORTS.add(env_id.split("@", 1)[0])


def _registered(env_id: str) -> gym.error.Error | None:
    """``None`` if ``env_id`` is in Gymnasium's registry (offrl's tasks and, when
    needed, gymnasium-robotics' registered first), else Gymnasium's error."""
    from offrl.envs.industrial import register as register_industrial
    from offrl.envs.pointmaze import register as register_robotics
    from offrl.envs.safety import register as register_safety

    register_safety()
    register_industrial()
    try:
        gym.spec(env_id)
        return None
    except gym.error.Error as error:
        first = error
    try:
        register_robotics()
        gym.spec(env_id)
        return None
    except ImportError:  # gymnasium-robotics absent: its ids stay unknown
        return first
    except gym.error.Error as error:
        return error


def check_env_id(env_id: str) -> None:
    """Raise :class:`EnvError` unless ``make_env(env_id)`` would create a registered
    environment without importing a module the user did not name.

    Nothing is imported or constructed: the id is looked up in Gymnasium's
    registry (after registering offrl's and gymnasium-robotics' tasks).
    """
    if not isinstance(env_id, str) or not env_id.strip():
        raise EnvError(f"{env_id!r} is not an environment id")
    base = env_id.split("@", 1)[0]
    if "@" in env_id:
        from offrl.envs import gap

        gap.parse(env_id)  # a bad change raises ValueError with its own message
    if ":" in base and base not in _ALLOWED_IMPORTS:
        module = base.split(":", 1)[0]
        raise EnvError(
            f"'{base}' would import the Python module '{module}' (a module:Env id), and "
            "offrl does not import code named by a dataset or a run directory. If you trust "
            f"it, pass it yourself: --env-id {base} (or --env / --eval-env)"
        )
    if ":" in base:
        return  # the user named the module; Gymnasium registers the id on import
    error = _registered(base)
    if error is not None:
        raise EnvError(
            f"'{base}' is not a registered Gymnasium environment ({error}); pass --env-id "
            "with a registered id (install the package that registers it first)"
        )


def make_env(env_id: str, **kwargs) -> gym.Env:
    """``gymnasium.make`` with the registered time limit when the task is known.

    ``BASE@gravity=2`` is ``BASE`` with changed physics (:mod:`offrl.envs.gap`).
    Ids of the form ``module:Env`` are refused unless allowed with
    :func:`allow_env_id` (see :func:`check_env_id`).
    """
    base = env_id.split("@", 1)[0]
    if ":" in base and base not in _ALLOWED_IMPORTS:
        check_env_id(env_id)  # raises: importing a module is the user's decision
    if "@" in env_id:
        from offrl.envs import gap

        base, changes = gap.parse(env_id)
        return gap.apply(make_env(base, **kwargs), changes, env_id)
    task = get_task(env_id)
    if task is not None and "max_episode_steps" not in kwargs:
        kwargs["max_episode_steps"] = task.max_episode_steps
    from offrl.envs.pointmaze import is_pointmaze, make_pointmaze

    if is_pointmaze(env_id):
        return make_pointmaze(env_id, **kwargs)
    if env_id.startswith("offrl/"):
        from offrl.envs.goals import register as register_goals
        from offrl.envs.industrial import register as register_industrial
        from offrl.envs.safety import register

        register()
        register_industrial()
        register_goals()
    return gym.make(env_id, **kwargs)
