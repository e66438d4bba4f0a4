"""Continual offline RL: tasks learned one after another from their logs (OER's setting).

Gai et al. (2023), "Offline Experience Replay for Continual Offline Reinforcement
Learning": datasets ``D_1 .. D_K`` of K tasks arrive in order; the agent learns each
in turn keeping only a small replay buffer of the earlier ones, and should end good at
every task. No released code was found; this follows the paper's abstract, and the
settings are ours:

- **learner**: an offline algorithm (TD3+BC by default) trained on each task in turn,
  continuing from the previous task's weights and keeping the first task's
  observation and reward scaling (``TrainConfig.init_from``);
- **replay** (``replay``): after task k, ``replay_size`` of its transitions join the
  buffer. ``mbes`` (model-based experience selection) keeps those the learned policy
  would itself reproduce: a dynamics ensemble is fit to ``D_k`` and every transition is
  scored by ``|| mean_elites M(s, pi_k(s)) - s' ||``, the lowest kept (the buffer then
  resembles the learned policy's own trajectories, the distribution shift the paper
  names); ``random`` keeps a uniform sample (plain experience replay); ``none`` keeps
  nothing (sequential fine-tuning);
- **dual behavior cloning** (``dual_bc``): without it the learner trains on
  ``D_k`` plus the buffer, so old tasks' transitions enter its Q-learning and its BC
  term; with it the learner trains on ``D_k`` alone, and a second network, the clone
  (``offrl.algos.bc``), learns ``D_k``'s states labeled with ``pi_k``'s actions plus
  the buffer's transitions (their logged actions), continuing from the previous
  clone. The clone is the deployed policy; old tasks' cloning never touches the
  learner's Q-learning.

After each task every task so far is scored: ``scores[k][j]`` is task j after
learning task k (by default the mean held-out score on task j's environment;
``evaluate`` replaces it, e.g. to set a goal per task). Reported: the final average
over all tasks and the forgetting (mean over the earlier tasks of their best score
minus their final one).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from offrl.data.dataset import Dataset, concatenate
from offrl.envs.rollout import HELDOUT_SEED, evaluate
from offrl.evaluate.policy import load_policy
from offrl.model import ensemble as ens
from offrl.run.rundir import write_json_atomic
from offrl.run.settings import RunError, TrainConfig
from offrl.run.train import train

REPLAYS = ("mbes", "random", "none")

#: ``evaluator(run_dir, task_index) -> score`` of the deployed policy on one task.
Evaluator = Callable[[pathlib.Path, int], float]


@dataclasses.dataclass(frozen=True)
class ContinualConfig:
    """A sequence of offline tasks learned in order."""

    algorithm: str = "td3_bc"
    """The learner's offline algorithm."""
    algo_config: object = None
    """Its Config (its defaults when None)."""
    replay: str = "mbes"
    """mbes (model-based experience selection), random (experience replay) or none."""
    replay_size: int = 2_000
    """Transitions of each finished task kept in the buffer."""
    dual_bc: bool = True
    """Deploy a clone trained by BC on the learner's actions and the buffer (OER's DBC)."""
    steps: int = 5_000
    """Learner updates per task."""
    clone_steps: int = 5_000
    """Clone updates per task (dual_bc)."""
    clone_hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths of the clone."""
    batch_size: int = 256
    """Transitions per update."""
    seeds: tuple[int, ...] = (0,)
    """Seeds; each runs the whole sequence."""
    episodes: int = 10
    """Evaluation episodes per task and seed (the default evaluator)."""
    model: ens.ModelSpec = ens.ModelSpec(max_epochs=30)
    """The dynamics ensemble of mbes."""

    def check(self, num_tasks: int) -> None:
        if self.replay not in REPLAYS:
            raise RunError(f"replay must be one of {', '.join(REPLAYS)}, got '{self.replay}'")
        if num_tasks < 2:
            raise RunError("a continual sequence needs at least two tasks")
        if self.replay_size < 1 or self.steps < 1 or self.clone_steps < 1:
            raise RunError("replay_size, steps and clone_steps must be positive integers")
        self.model.check()


def replay_rows(dataset: Dataset, rows: np.ndarray) -> Dataset:
    """The transitions ``rows`` of ``dataset`` as one-step episodes (each ends as the
    transition did: terminated, or cut)."""
    host = dataset.to_numpy()
    rows = np.sort(np.asarray(rows))
    fields = {name: np.asarray(value)[rows] for name, value in host.step_fields().items()}
    fields["truncations"] = ~fields["terminations"].astype(bool)
    count = len(rows)
    return Dataset(
        **fields,
        episode_starts=np.arange(count, dtype=np.int64),
        episode_lengths=np.ones(count, np.int64),
        info=dataclasses.replace(host.info, subsets=(), filter_key=None),
    )


def mbes_scores(dataset: Dataset, actions: np.ndarray, spec: ens.ModelSpec, seed: int):
    """MBES's score of every transition: ``|| mean over elites of M(s, pi(s)) - s' ||``
    with ``actions = pi(s)``, the model fit to ``dataset`` (environment units). Low:
    the learned policy would reproduce the transition."""
    host = dataset.to_numpy()
    fitted, _ = ens.fit(
        spec,
        host.observations,
        host.actions,
        host.rewards,
        host.next_observations,
        jax.random.PRNGKey(seed)[None],
    )
    model = jax.tree_util.tree_map(lambda x: x[0], fitted)

    @jax.jit
    def score(observations, policy_actions, next_observations):
        mean, _ = ens.distribution(spec, model, observations, policy_actions)
        predicted = mean[model.elites, :, :-1].mean(axis=0)
        return jnp.linalg.norm(predicted - next_observations, axis=-1)

    out = []
    for start in range(0, host.size, 65_536):
        rows = slice(start, start + 65_536)
        out.append(
            np.asarray(
                score(
                    jnp.asarray(host.observations[rows], jnp.float32),
                    jnp.asarray(actions[rows], jnp.float32),
                    jnp.asarray(host.next_observations[rows], jnp.float32),
                )
            )
        )
    return np.concatenate(out)


def policy_actions(run_dir: pathlib.Path, observations: np.ndarray) -> np.ndarray:
    """The deterministic actions of a one-seed run's policy (environment units)."""
    policy, _ = load_policy(run_dir)
    out = []
    for start in range(0, len(observations), 65_536):
        batch = jnp.asarray(observations[start : start + 65_536], jnp.float32)[None]
        out.append(np.asarray(policy(batch, jax.random.PRNGKey(0)))[0])
    return np.concatenate(out)


def select_replay(
    dataset: Dataset, actions: np.ndarray | None, config: ContinualConfig, seed: int
) -> tuple[Dataset | None, dict]:
    """The transitions of a finished task kept for the buffer, and what chose them;
    ``actions``: the learned policy's actions at the dataset's states (mbes only)."""
    size = min(config.replay_size, dataset.size)
    if config.replay == "none":
        return None, {"kept": 0}
    if config.replay == "random":
        rows = np.random.default_rng(seed).choice(dataset.size, size=size, replace=False)
        return replay_rows(dataset, rows), {"kept": int(size)}
    scores = mbes_scores(dataset, actions, config.model, seed)
    rows = np.argsort(scores, kind="stable")[:size]
    return replay_rows(dataset, rows), {
        "kept": int(size),
        "score_kept_mean": float(scores[rows].mean()),
        "score_all_mean": float(scores.mean()),
    }


def default_evaluator(tasks: Sequence[Dataset], episodes: int) -> Evaluator:
    """A task's held-out score on its dataset's environment (normalized where the task
    has references)."""

    def score(run_dir: pathlib.Path, task: int) -> float:
        env_id = tasks[task].info.env_id
        if env_id is None:
            raise RunError(f"task {task} records no environment; pass an evaluator")
        policy, context = load_policy(run_dir)
        result = evaluate(policy, env_id, len(context.seeds), episodes, seed=HELDOUT_SEED)
        values = result.normalized if result.normalized is not None else result.returns
        return float(np.mean(values))

    return score


def _train_config(config: ContinualConfig, seed: int, steps: int, init_from) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_size=config.batch_size,
        seeds=(seed,),
        checkpoint_every=steps,
        steps_per_call=min(1000, steps),
        evaluate=False,
        heldout_episodes=0,
        init_from=None if init_from is None else str(init_from),
        progress=False,
    )


def run_sequence(
    tasks: Sequence[Dataset],
    output: str | pathlib.Path,
    config: ContinualConfig | None = None,
    evaluator: Evaluator | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Learn ``tasks`` in order for every seed; returns (and writes to
    ``OUTPUT/continual.json``) the score matrix per seed and its summary. A finished
    task's runs are reused when the sequence is run again."""
    from offrl.algos import bc

    config = config or ContinualConfig()
    config.check(len(tasks))
    say = progress or (lambda message: None)
    score = evaluator or default_evaluator(tasks, config.episodes)
    output = pathlib.Path(output)
    clone_config = bc.Config(hidden_dims=tuple(config.clone_hidden_dims))
    per_seed = {}
    for seed in config.seeds:
        buffer: Dataset | None = None
        learner_prev = clone_prev = None
        matrix: list[list[float]] = []
        selections = []
        for k, task in enumerate(tasks):
            root = output / f"seed-{seed}" / f"task-{k}"
            learner_dir = root / "learner"
            data = task if buffer is None or config.dual_bc else concatenate([task, buffer])
            if not (learner_dir / "summary.json").exists():
                say(f"seed {seed}, task {k}: learner ({config.algorithm})")
                train(
                    config.algorithm,
                    data,
                    learner_dir,
                    config.algo_config,
                    _train_config(config, seed, config.steps, learner_prev),
                )
            deployed = learner_dir
            if config.dual_bc:
                clone_dir = root / "clone"
                if not (clone_dir / "summary.json").exists():
                    say(f"seed {seed}, task {k}: clone")
                    labeled = task.replace(
                        actions=policy_actions(
                            learner_dir, np.asarray(task.observations, np.float32)
                        )
                    )
                    clone_data = labeled if buffer is None else concatenate([labeled, buffer])
                    train(
                        "bc",
                        clone_data,
                        clone_dir,
                        clone_config,
                        _train_config(config, seed, config.clone_steps, clone_prev),
                    )
                deployed, clone_prev = clone_dir, clone_dir
            learner_prev = learner_dir
            actions = (
                policy_actions(learner_dir, np.asarray(task.observations, np.float32))
                if config.replay == "mbes"
                else None
            )
            chosen, selection = select_replay(task, actions, config, seed)
            selections.append(selection)
            if chosen is not None:
                buffer = chosen if buffer is None else concatenate([buffer, chosen])
            matrix.append([score(deployed, j) for j in range(k + 1)])
            say(f"seed {seed}, after task {k}: {[round(x, 1) for x in matrix[-1]]}")
        final = matrix[-1]
        forgetting = [max(matrix[i][j] for i in range(j, len(tasks))) - final[j]
                      for j in range(len(tasks) - 1)]  # fmt: skip
        per_seed[seed] = {
            "scores": matrix,
            "final_average": float(np.mean(final)),
            "forgetting": float(np.mean(forgetting)),
            "replay": selections,
        }
    finals = [v["final_average"] for v in per_seed.values()]
    result = {
        "config": {
            k: v for k, v in dataclasses.asdict(config).items() if k not in ("algo_config",)
        },
        "per_seed": per_seed,
        "final_average_mean": float(np.mean(finals)),
        "final_average_std": float(np.std(finals, ddof=1)) if len(finals) > 1 else None,
        "forgetting_mean": float(np.mean([v["forgetting"] for v in per_seed.values()])),
    }
    output.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output / "continual.json", json.loads(json.dumps(result, default=str)))
    return result


__all__ = [
    "REPLAYS",
    "ContinualConfig",
    "default_evaluator",
    "mbes_scores",
    "replay_rows",
    "run_sequence",
    "select_replay",
]
