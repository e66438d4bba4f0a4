"""Shipped behavior policies and the action logs of the runs that trained them.

D4RL's locomotion levels come from one online SAC run per task: ``expert`` is
its fully trained policy (:func:`select_expert`), ``medium`` a checkpoint
performing at about a third of the expert (:func:`select_medium`),
``medium-replay`` everything the run stored until that checkpoint. offrl
ships what is needed to rebuild all of them, small enough to live in the
package (``offrl/suites/behavior_data/<task>/``):

- ``<level>.npz``: a **policy file**: the actor's parameters, the
  preprocessor and the algorithm's settings (:func:`export_policy`), a few
  hundred kilobytes instead of the 3 MB checkpoint with critics and optimizer
  moments. :func:`load_policy_file` rebuilds the actor from it.
- ``medium_replay_actions.npz``: an **action log**: the run's first ``N``
  actions in the networks' ``[-1, 1]`` units and the SHA-256 of the transitions
  the run stored (:func:`export_action_log`). MuJoCo is deterministic and the
  online loop resets episode ``i`` with ``seed * 1_000_003 + i``, so replaying
  the actions regenerates the replay buffer exactly (:func:`replay_action_log`);
  the build refuses to return data whose digest differs (another MuJoCo version,
  say). Three floats per step instead of the full buffer.
- ``manifest.json``: the run's command, the chosen checkpoints, their measured
  returns and the files above; ``training_log.jsonl``: the run's evaluations.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from offrl.data.dataset import Dataset, DatasetInfo, from_episodes
from offrl.data.preprocess import scale_action
from offrl.envs.registry import make_env
from offrl.suites.collect import record_steps, record_steps_vectorized

BEHAVIOR_ROOT = pathlib.Path(__file__).with_name("behavior_data")
POLICY_FORMAT = "offrl-policy-1"
ACTION_LOG_FORMAT = "offrl-action-log-1"


class BehaviorError(ValueError):
    """A policy file or action log that cannot be used, with what to do about it."""


# ----------------------------------------------------------------- policy files
def _policy_fields(algo) -> tuple[str, ...]:
    """The State fields besides ``actor`` that ``algo.act`` reads."""
    return tuple(f for f in getattr(algo, "POLICY_FIELDS", ("actor",)) if f != "actor")


def export_policy(
    run_dir: str | pathlib.Path,
    path: str | pathlib.Path,
    step: int | None = None,
    seed_index: int = 0,
    extra: dict | None = None,
) -> pathlib.Path:
    """Write the policy of one seed of a run's checkpoint as a policy file: the actor,
    and whatever else the algorithm's ``act`` reads (its ``POLICY_FIELDS``)."""
    from offrl.run.rundir import load_run
    from offrl.run.settings import to_jsonable

    context = load_run(run_dir, step)
    state = jax.tree_util.tree_map(lambda x: np.asarray(x[seed_index]), context.states)
    flat = traverse_util.flatten_dict(jax.device_get(state.actor.params), sep="/")
    meta = {
        "format": POLICY_FORMAT,
        "algorithm": context.algo.__name__.rsplit(".", 1)[-1],
        "algorithm_config": to_jsonable(context.algo_config),
        "env_id": context.env_id,
        "observation_dim": context.observation_dim,
        "action_dim": context.action_dim,
        "source": {"run_dir": str(run_dir), "step": context.step, "seed_index": seed_index},
        **(extra or {}),
    }
    pre = jax.device_get(context.preprocessor)
    arrays = {f"actor/{k}": np.asarray(v) for k, v in flat.items()}
    # Everything else act reads (ResFiT's frozen base, V-OCBF's filter networks), as
    # the leaves of each field; the loader rebuilds the tree from the algorithm's init.
    for field in _policy_fields(context.algo):
        leaves = jax.tree_util.tree_leaves(jax.device_get(getattr(state, field)))
        arrays.update({f"state/{field}/{i}": np.asarray(v) for i, v in enumerate(leaves)})
    arrays.update(
        {f"pre/{f.name}": np.asarray(getattr(pre, f.name)) for f in dataclasses.fields(pre)}
    )
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, meta=json.dumps(meta), **arrays)
    tmp.replace(path)
    return path


@dataclasses.dataclass
class PolicyFile:
    """A loaded policy file: ``act(observations[N, obs_dim], key)`` in env units."""

    meta: dict[str, Any]
    algo: Any
    state: Any
    preprocessor: Any
    _act: Any = None

    @property
    def env_id(self) -> str | None:
        return self.meta.get("env_id")

    def act(self, observations, key, deterministic: bool = False) -> np.ndarray:
        observations = jnp.asarray(observations, jnp.float32)
        return np.asarray(
            self._act(self.state, self.preprocessor, observations, key, deterministic)
        )


def load_policy_file(path: str | pathlib.Path) -> PolicyFile:
    """Rebuild the actor of a policy file (:func:`export_policy`)."""
    from offrl.core import registry
    from offrl.core.trainer import example_batch
    from offrl.data.preprocess import Preprocessor
    from offrl.run.settings import from_dict

    path = pathlib.Path(path)
    if not path.is_file():
        raise BehaviorError(f"no policy file at {path}")
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in data.files if k != "meta"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise BehaviorError(
            f"{path} is not a readable offrl policy file ({error}); export it again with "
            "offrl.suites.behavior.export_policy"
        ) from error
    if meta.get("format") != POLICY_FORMAT:
        raise BehaviorError(f"{path} has format {meta.get('format')!r}, expected {POLICY_FORMAT}")
    algo = registry.get(meta["algorithm"])
    config = from_dict(algo.Config, meta["algorithm_config"])
    template = algo.init(
        config,
        example_batch(meta["observation_dim"], meta["action_dim"]),
        jax.random.PRNGKey(0),
    )
    expected = traverse_util.flatten_dict(template.actor.params, sep="/")
    stored = {k.removeprefix("actor/"): v for k, v in arrays.items() if k.startswith("actor/")}
    if set(expected) != set(stored) or any(
        np.shape(expected[k]) != stored[k].shape for k in expected
    ):
        raise BehaviorError(
            f"{path}: the stored actor does not match a {meta['algorithm']} actor with "
            f"{meta['algorithm_config']}; the file is damaged or from another offrl version"
        )
    params = traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in stored.items()}, sep="/")
    state = template.replace(actor=template.actor.replace(params=params))
    for field in _policy_fields(algo):
        expected_leaves, treedef = jax.tree_util.tree_flatten(getattr(template, field))
        names = [f"state/{field}/{i}" for i in range(len(expected_leaves))]
        if any(n not in arrays for n in names) or any(
            np.shape(e) != arrays[n].shape for e, n in zip(expected_leaves, names, strict=True)
        ):
            raise BehaviorError(
                f"{path}: {meta['algorithm']}'s policy needs its '{field}' networks, which the "
                "file does not hold (or of another shape); export it again with "
                "offrl.suites.behavior.export_policy"
            )
        leaves = [jnp.asarray(arrays[n]) for n in names]
        state = state.replace(**{field: jax.tree_util.tree_unflatten(treedef, leaves)})
    pre = Preprocessor(
        **{f.name: jnp.asarray(arrays[f"pre/{f.name}"]) for f in dataclasses.fields(Preprocessor)}
    )

    @functools.partial(jax.jit, static_argnums=4)
    def act(state, pre, observations, key, deterministic):
        actions = algo.act(state, pre.observation(observations), key, deterministic, config)
        return pre.action_to_env(jnp.clip(actions, -1.0, 1.0))

    return PolicyFile(meta=meta, algo=algo, state=state, preprocessor=pre, _act=act)


def collect_with_policy(
    policy: PolicyFile,
    num_steps: int,
    seed: int,
    name: str,
    deterministic: bool = False,
    env_id: str | None = None,
    num_envs: int = 16,
) -> Dataset:
    """``num_steps`` transitions of a policy file, ``num_envs`` environments at a time
    (:func:`~offrl.suites.collect.record_steps_vectorized`): episode ``i`` resets
    with ``seed * 1_000_003 + i`` and actions are drawn with ``PRNGKey(seed)``."""
    env_id = env_id or policy.env_id
    key = [jax.random.PRNGKey(seed)]

    def choose_actions(observations):
        key[0], act_key = jax.random.split(key[0])
        return policy.act(observations, act_key, deterministic)

    episodes = record_steps_vectorized(
        lambda: make_env(env_id), choose_actions, num_steps, seed, num_envs
    )
    env = make_env(env_id)
    low, high = env.action_space.low, env.action_space.high
    env.close()
    info = DatasetInfo(
        name=name,
        env_id=env_id,
        action_low=tuple(np.asarray(low, float).tolist()),
        action_high=tuple(np.asarray(high, float).tolist()),
        source=f"policy:{policy.meta.get('source', {})}",
    )
    return from_episodes(episodes, info)


# ------------------------------------------------------------------ action logs
def export_action_log(
    run_dir: str | pathlib.Path, up_to_step: int, path: str | pathlib.Path
) -> pathlib.Path:
    """The first ``up_to_step`` actions of an online run, with the digest of the
    transitions the run stored, so :func:`replay_action_log` can rebuild them."""
    from offrl.run.rundir import read_run_config
    from offrl.suites.policies import online_transitions, replay_from_run

    run_dir = pathlib.Path(run_dir)
    config = read_run_config(run_dir)
    stored = replay_from_run(run_dir, up_to_step)
    actions = online_transitions(run_dir, up_to_step)["actions"].astype(np.float32)
    meta = {
        "format": ACTION_LOG_FORMAT,
        "env_id": config["env_id"],
        "seed": config["seeds"][0],
        "steps": int(up_to_step),
        "episodes": int(stored.num_episodes),
        "array_sha256": stored.digest(),
        "source": {"run_dir": str(run_dir), "command": config.get("command")},
    }
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, meta=json.dumps(meta), actions=actions)
    tmp.replace(path)
    return path


def replay_action_log(
    path: str | pathlib.Path, name: str = "replay", check: bool = True
) -> Dataset:
    """Re-run an action log in its environment: the run's replay buffer, as a dataset.

    With ``check`` the result must have the digest recorded at export; otherwise
    a :class:`BehaviorError` says the environment no longer reproduces the run.
    """
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        actions = data["actions"]
    if meta.get("format") != ACTION_LOG_FORMAT:
        raise BehaviorError(
            f"{path} has format {meta.get('format')!r}, expected {ACTION_LOG_FORMAT}"
        )
    env = make_env(meta["env_id"])
    low = env.action_space.low.astype(np.float32)
    high = env.action_space.high.astype(np.float32)
    cursor = [0]

    def choose_action(observation):
        # The online loop's mapping from [-1, 1] to env units, bit for bit.
        action = scale_action(actions[cursor[0]], low, high)
        cursor[0] += 1
        return action

    episodes = record_steps(env, choose_action, meta["steps"], meta["seed"])
    env.close()
    info = DatasetInfo(
        name=name,
        env_id=meta["env_id"],
        action_low=tuple(low.astype(float).tolist()),
        action_high=tuple(high.astype(float).tolist()),
        source=f"action-log:{pathlib.Path(path).name}",
    )
    dataset = from_episodes(episodes, info)
    if check and dataset.digest() != meta["array_sha256"]:
        raise BehaviorError(
            f"replaying {path} did not reproduce the recorded transitions (SHA-256 "
            f"{dataset.digest()[:12]} != {meta['array_sha256'][:12]}): this MuJoCo/Gymnasium "
            "build simulates differently from the one that trained the policy. Use the "
            "versions in the dataset card, or pass check=False to accept the difference."
        )
    return dataset


# -------------------------------------------------------------------- manifests
def behavior_dir(task: str) -> pathlib.Path:
    return BEHAVIOR_ROOT / task


def read_manifest(task: str, root: pathlib.Path | None = None) -> dict:
    """The manifest of a task's shipped behavior, or an error saying what is missing."""
    path = (root or BEHAVIOR_ROOT) / task / "manifest.json"
    if not path.is_file():
        raise BehaviorError(
            f"no behavior policies are shipped for '{task}' in this offrl installation "
            f"({path} is missing); only its 'random' dataset can be built"
        )
    return json.loads(path.read_text())


# --------------------------------------------------------------------- shipping
def evaluate_policy_file(
    policy: PolicyFile,
    episodes: int = 100,
    deterministic: bool = False,
    seed: int = 10_000,
    env_id: str | None = None,
) -> dict:
    """Mean, std and count of episode returns of a policy file (resets ``seed + i``)."""
    from offrl.envs.rollout import evaluate

    def batched(observations, key):  # [1, N, obs_dim] -> [1, N, act_dim]
        return policy.act(observations[0], key, deterministic)[None]

    result = evaluate(
        batched,
        env_id or policy.env_id,
        1,
        episodes,
        seed=seed,
        key=jax.random.PRNGKey(seed),
        max_parallel=25,
    )
    returns = result.returns[0]
    return {
        "episodes": int(episodes),
        "deterministic": deterministic,
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "length_mean": float(result.lengths[0].mean()),
        "discounted_mean": float(result.discounted[0].mean()),
        "discount": result.discount,
        "reset_seeds": f"{seed}..{seed + episodes - 1}",
    }


def _measure_checkpoints(
    run_dir, steps, episodes: int, seed: int, stop_at: float | None = None
) -> dict[int, float]:
    """Mean stochastic return of each checkpoint in ``steps``, in order, through its
    policy file (the policy the datasets would use); stops after the first one
    reaching ``stop_at``."""
    import tempfile

    scores: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for step in steps:
            path = export_policy(run_dir, pathlib.Path(tmp) / f"{step}.npz", step=step)
            result = evaluate_policy_file(load_policy_file(path), episodes, seed=seed)
            scores[step] = result["return_mean"]
            if stop_at is not None and scores[step] >= stop_at:
                break
    return scores


def select_expert(
    run_dir: str | pathlib.Path,
    last_fraction: float = 0.1,
    episodes: int = 20,
    seed: int = 50_000,
) -> tuple[int, dict[int, float]]:
    """The best checkpoint of the last ``last_fraction`` of a run, by the mean return
    of ``episodes`` stochastic episodes each (resets from ``seed``, apart from the
    ones :func:`ship` reports). SAC's last checkpoint can sit in a dip; D4RL's
    expert is a fully trained policy, not a lucky one, so only late checkpoints
    compete. Returns ``(step, {step: mean return})``."""
    from offrl.run import checkpoint

    steps = checkpoint.steps(pathlib.Path(run_dir) / "checkpoints")
    cutoff = steps[-1] * (1.0 - last_fraction)
    scores = _measure_checkpoints(run_dir, [s for s in steps if s >= cutoff], episodes, seed)
    return max(scores, key=scores.get), scores


def select_medium(
    run_dir: str | pathlib.Path,
    expert_return: float,
    random_return: float,
    fraction: float = 1.0 / 3.0,
    episodes: int = 20,
    seed: int = 50_000,
) -> tuple[int, dict[int, float]]:
    """The checkpoint whose measured return is closest to ``fraction`` of the way from
    ``random_return`` to ``expert_return`` (D4RL's medium: about a third of the expert).

    The training curve (10 deterministic episodes per evaluation) is too noisy to
    pick it alone: on Hopper it jumps from 1/3 to 2/3 of the expert between two
    evaluations. So checkpoints are measured in order, with ``episodes``
    stochastic episodes as the data is collected, from the first one whose
    training evaluation reaches half the target, until the first whose measured
    return reaches the target; the closest of those wins. Returns
    ``(step, {step: mean return})``.
    """
    from offrl.run import checkpoint
    from offrl.suites.policies import medium_checkpoint

    target = random_return + fraction * (expert_return - random_return)
    first = medium_checkpoint(run_dir, expert_return, random_return, fraction / 2)
    steps = [s for s in checkpoint.steps(pathlib.Path(run_dir) / "checkpoints") if s >= first]
    scores = _measure_checkpoints(run_dir, steps, episodes, seed, stop_at=target)
    return min(scores, key=lambda s: abs(scores[s] - target)), scores


def ship(
    task: str,
    run_dir: str | pathlib.Path,
    expert_step: int | None,
    random_return: float,
    episodes: int = 100,
    root: pathlib.Path | None = None,
    fraction: float = 1.0 / 3.0,
    note: str = "",
) -> dict:
    """Export a finished online run as a task's behavior directory.

    ``expert``: checkpoint ``expert_step`` (``None``: :func:`select_expert`).
    ``medium``: :func:`select_medium` with ``fraction`` (D4RL's one third) of the
    way from ``random_return`` to the expert's measured return.
    ``medium-replay``: the action log up to the medium checkpoint. Both policies
    are measured over ``episodes`` episodes with stochastic actions, as the
    datasets are collected.
    """
    from offrl.suites.policies import evaluation_curve

    run_dir = pathlib.Path(run_dir)
    out = (root or BEHAVIOR_ROOT) / task
    out.mkdir(parents=True, exist_ok=True)
    from offrl.run.rundir import read_run_config

    config = read_run_config(run_dir)
    selection = {"rule": "given"}
    if expert_step is None:
        expert_step, scores = select_expert(run_dir)
        selection = {
            "rule": "best of the last 10% of checkpoints, 20 stochastic episodes each "
            "(resets 50000..50019)",
            "candidates": {str(k): round(v, 1) for k, v in scores.items()},
        }
    export_policy(run_dir, out / "expert.npz", step=expert_step)
    expert = evaluate_policy_file(load_policy_file(out / "expert.npz"), episodes)
    medium_step, medium_scores = select_medium(
        run_dir, expert["return_mean"], random_return, fraction
    )
    export_policy(run_dir, out / "medium.npz", step=medium_step)
    medium = evaluate_policy_file(load_policy_file(out / "medium.npz"), episodes)
    export_action_log(run_dir, medium_step, out / "medium_replay_actions.npz")
    with np.load(out / "medium_replay_actions.npz") as data:
        log_meta = json.loads(str(data["meta"]))
    curve = evaluation_curve(run_dir)
    (out / "training_log.jsonl").write_text(
        "".join(json.dumps({"step": s, "eval_return_mean": r}) + "\n" for s, r in curve)
    )
    manifest = {
        "task": task,
        "env_id": config["env_id"],
        "command": config.get("command"),
        "algorithm": config["algorithm"],
        "algorithm_config": config["algorithm_config"],
        "online_config": config.get("finetune_config"),
        "trained_steps": max(s for s, _ in curve),
        "note": note,
        "random_return": random_return,
        "medium_fraction": fraction,
        "expert": {"file": "expert.npz", "step": expert_step, **expert, "selection": selection},
        "medium": {
            "file": "medium.npz",
            "step": medium_step,
            **medium,
            "selection": {
                "rule": "closest to the target of the checkpoints measured in order (20 "
                "stochastic episodes each, resets 50000..50019) from the first training "
                "evaluation at half the target to the first measurement at the target",
                "target_return": random_return + fraction * (expert["return_mean"] - random_return),
                "candidates": {str(k): round(v, 1) for k, v in medium_scores.items()},
            },
        },
        "medium_replay": {
            "file": "medium_replay_actions.npz",
            "steps": log_meta["steps"],
            "episodes": log_meta["episodes"],
            "array_sha256": log_meta["array_sha256"],
        },
        "training_log": "training_log.jsonl",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m offrl.suites.behavior",
        description="Export a finished online SAC run as a task's shipped behavior policies.",
    )
    parser.add_argument("task", help="hopper, halfcheetah or walker2d")
    parser.add_argument("run_dir")
    parser.add_argument(
        "--expert-step", type=int, default=None, help="default: select_expert's choice"
    )
    parser.add_argument("--random-return", type=float, required=True)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    manifest = ship(
        args.task,
        args.run_dir,
        args.expert_step,
        args.random_return,
        args.episodes,
        note=args.note,
    )
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    _main()
