"""Online training (SAC) in a Gymnasium environment, with checkpoints and resume.

Each environment step after ``start_steps`` makes one jitted call that both
updates the agent on a batch from the replay buffer and picks the next action.
The replay buffer lives on the host (NumPy) and batches are drawn with a seeded
NumPy generator, so a run is deterministic given its seed.

Checkpoints are written at episode boundaries and hold the agent, the replay
buffer, the generator state and the counters; the environment is reset with
``seed * 1_000_003 + episode`` at every episode, so a resumed run replays the
same episodes as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from offrl.core import registry
from offrl.core.trainer import Preprocessor, example_batch
from offrl.envs.registry import EnvError, check_env_id, get_task, make_env
from offrl.run import checkpoint
from offrl.run.interrupt import RunInterrupted, StopRequest
from offrl.run.loggers import JsonlLogger, truncate_jsonl
from offrl.run.train import (
    RunError,
    _to_jsonable,
    check_non_negative,
    check_positive,
    read_run_config,
    write_json_atomic,
)


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """Online training settings."""

    env_id: str = "Pendulum-v1"
    """Gymnasium environment id."""
    steps: int = 1_000_000
    """Environment steps."""
    start_steps: int = 10_000
    """Uniformly random actions before learning starts."""
    batch_size: int = 256
    """Transitions per update."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity."""
    eval_every: int = 10_000
    """Evaluate the deterministic policy every this many environment steps."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    checkpoint_every: int = 50_000
    """Checkpoint at the first episode end after every this many steps."""
    seed: int = 0
    """Seed of the agent, the buffer sampling and the environment resets."""
    progress: bool = True
    """Show a progress bar."""

    def check(self) -> None:
        """Raise :class:`RunError` naming the first invalid setting."""
        check_positive(
            steps=self.steps,
            batch_size=self.batch_size,
            buffer_size=self.buffer_size,
            eval_every=self.eval_every,
            eval_episodes=self.eval_episodes,
            checkpoint_every=self.checkpoint_every,
        )
        check_non_negative(start_steps=self.start_steps, seed=self.seed)


class ReplayBuffer:
    """A fixed-capacity ring buffer of transitions in NumPy."""

    def __init__(self, capacity: int, observation_dim: int, action_dim: int):
        self.capacity = capacity
        self.arrays = {
            "observations": np.zeros((capacity, observation_dim), np.float32),
            "actions": np.zeros((capacity, action_dim), np.float32),
            "rewards": np.zeros((capacity,), np.float32),
            "next_observations": np.zeros((capacity, observation_dim), np.float32),
            "terminations": np.zeros((capacity,), np.float32),
            "truncations": np.zeros((capacity,), np.float32),
        }
        self.size = 0
        self.position = 0

    def add(self, **transition) -> None:
        for name, value in transition.items():
            self.arrays[name][self.position] = value
        self.position = (self.position + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        indices = rng.integers(0, self.size, size=batch_size)
        return {name: array[indices] for name, array in self.arrays.items()}

    def state_dict(self) -> dict:
        return {
            "arrays": {k: v[: self.size] for k, v in self.arrays.items()},
            "size": self.size,
            "position": self.position,
        }

    def load_state_dict(self, state: dict) -> None:
        self.size, self.position = int(state["size"]), int(state["position"])
        for name, value in state["arrays"].items():
            self.arrays[name][: self.size] = value


def _save_buffer(
    path: pathlib.Path, buffer: ReplayBuffer, rng: np.random.Generator, counters: dict
) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npz")
    state = buffer.state_dict()
    np.savez(
        tmp,
        **{f"buffer_{k}": v for k, v in state["arrays"].items()},
        size=state["size"],
        position=state["position"],
        rng=json.dumps(rng.bit_generator.state),
        counters=json.dumps(counters),
    )
    tmp.replace(path)


def _read_buffer(path: pathlib.Path, step: int, buffer: ReplayBuffer) -> dict:
    """A checkpoint's buffer file, checked against ``buffer``'s shapes."""

    def check(saved: dict) -> None:
        size = int(saved["size"])
        for name, array in buffer.arrays.items():
            stored = saved[f"buffer_{name}"]
            if stored.shape[1:] != array.shape[1:] or stored.shape[0] != size:
                raise ValueError(f"buffer_{name} has shape {stored.shape}")

    return checkpoint.read_side_file(path, step, check)


def _load_buffer(saved: dict, buffer: ReplayBuffer, rng: np.random.Generator) -> dict:
    arrays = {k.removeprefix("buffer_"): v for k, v in saved.items() if k.startswith("buffer_")}
    buffer.load_state_dict({"arrays": arrays, "size": saved["size"], "position": saved["position"]})
    rng.bit_generator.state = json.loads(str(saved["rng"]))
    return json.loads(str(saved["counters"]))


def _stacked_policy(policy, stacked, pre, observations, key):
    return policy(stacked, pre, jnp.asarray(observations), key)


def _payload(state, key, step: int, pre: Preprocessor) -> dict:
    """The offline runs' checkpoint layout (a seed axis of one), so ``offrl eval`` and
    :func:`offrl.run.train.load_run` read online runs too."""
    return {
        "states": jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], state),
        "keys": key[None],
        "step": np.int32(step),
        "preprocessor": pre,
    }


def train_online(
    algorithm: str,
    run_dir: str | pathlib.Path,
    online_config: OnlineConfig | None = None,
    algo_config=None,
    resume: bool = False,
    stop_after: int | None = None,
) -> dict:
    """Train an online agent (``sac``) in ``online_config.env_id``.

    ``stop_after`` ends the run at the first checkpoint at or after that many
    steps, as if it were killed there (for time-boxed jobs); ``resume=True``
    continues it.
    """
    from offrl.core.trainer import build_policy
    from offrl.evaluate.rollout import evaluate

    try:
        algo = registry.get(algorithm)
    except KeyError as error:
        raise RunError(error.args[0]) from error
    cfg = online_config or OnlineConfig()
    cfg.check()
    if stop_after is not None:
        check_positive(stop_after=stop_after)
    algo_config = algo_config or algo.Config()
    run_dir = pathlib.Path(run_dir)
    try:
        check_env_id(cfg.env_id)
    except (EnvError, ValueError) as error:
        raise RunError(f"--env-id: {error}") from error
    env = make_env(cfg.env_id)
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    low = env.action_space.low.astype(np.float32)
    high = env.action_space.high.astype(np.float32)
    pre = Preprocessor.identity(obs_dim, act_dim).replace(action_low=low, action_high=high)
    pre = jax.tree_util.tree_map(jnp.asarray, pre)
    resolved = {
        "algorithm": algorithm,
        "mode": "online",
        "algorithm_config": _to_jsonable(algo_config),
        "online_config": {k: v for k, v in _to_jsonable(cfg).items() if k != "progress"},
        "env_id": cfg.env_id,
        "observation_dim": obs_dim,
        "action_dim": act_dim,
        "train_config": {
            "seeds": [cfg.seed],
            "steps": cfg.steps,
            "checkpoint_every": cfg.checkpoint_every,
        },
    }
    config_path = run_dir / "config.json"
    if resume:
        if not config_path.is_file():
            raise RunError(f"cannot resume: {run_dir} has no config.json")
        saved = read_run_config(run_dir)
        for key in ("algorithm", "algorithm_config", "online_config", "env_id"):
            if saved.get(key) != resolved[key]:
                raise RunError(
                    f"cannot resume {run_dir}: '{key}' differs (saved "
                    f"{saved.get(key)!r}, now {resolved[key]!r})"
                )
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise RunError(
            f"{run_dir} already exists and is not empty; pass --resume or choose "
            "another --run-dir (nothing was overwritten)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        resolved["command"] = " ".join(sys.argv)
        write_json_atomic(config_path, resolved)

    init_key, act_key = jax.random.split(jax.random.PRNGKey(cfg.seed))
    state = algo.init(algo_config, example_batch(obs_dim, act_dim), init_key)
    buffer = ReplayBuffer(min(cfg.buffer_size, cfg.steps), obs_dim, act_dim)
    rng = np.random.default_rng(cfg.seed)
    counters = {"step": 0, "episode": 0, "last_checkpoint": 0, "last_eval": 0}
    ckpt_dir = run_dir / "checkpoints"
    if resume:
        buffers: dict[int, dict] = {}

        def check(step: int) -> None:
            buffers[step] = _read_buffer(ckpt_dir / f"buffer_{step}.npz", step, buffer)

        try:
            last, restored = checkpoint.restore_latest(
                ckpt_dir,
                _payload(state, act_key, 0, pre),
                check=check,
                side_files=lambda step: [f"buffer_{step}.npz"],
            )
        except checkpoint.CheckpointError as error:
            raise RunError(str(error)) from error
        if last is not None:
            state = jax.tree_util.tree_map(lambda x: x[0], restored["states"])
            act_key = restored["keys"][0]
            counters = _load_buffer(buffers.pop(last), buffer, rng)
        truncate_jsonl(run_dir / "metrics.jsonl", counters["step"])

    def update_and_act(state, sums, batch, observation, key):
        state, metrics = algo.update(state, batch, algo_config)
        action = algo.act(state, observation[None], key, False)[0]
        # Metrics are summed on the device; the host reads them once per evaluation.
        sums = {k: sums.get(k, 0.0) + v for k, v in metrics.items()} if sums else metrics
        return state, sums, action

    update_and_act = jax.jit(update_and_act)
    act = jax.jit(lambda state, observation, key: algo.act(state, observation[None], key, False)[0])
    eval_policy = build_policy(algo)

    logger = JsonlLogger(run_dir / "metrics.jsonl")
    evaluations: list[dict] = []
    started = time.perf_counter()
    step = start_step = counters["step"]
    metrics_sum: dict[str, jax.Array] = {}
    metrics_count = 0
    scale = lambda a: low + (np.asarray(a) + 1.0) * 0.5 * (high - low)  # noqa: E731
    # Checkpoints fall on episode ends (resets are seeded by the episode index), so a
    # signal stops the run at the end of the episode in flight.
    stop = StopRequest("the current episode")
    interrupted = False
    try:
        stop.__enter__()
        while step < cfg.steps:
            observation, _ = env.reset(seed=cfg.seed * 1_000_003 + counters["episode"])
            episode_return, episode_length = 0.0, 0
            action = None
            if step >= cfg.start_steps:
                act_key, key = jax.random.split(act_key)
                action = np.asarray(act(state, jnp.asarray(observation, jnp.float32), key))
            while True:
                if step < cfg.start_steps:
                    action = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
                next_observation, reward, terminated, truncated, _ = env.step(scale(action))
                buffer.add(
                    observations=observation,
                    actions=action,
                    rewards=reward,
                    next_observations=next_observation,
                    terminations=float(terminated),
                    truncations=float(truncated),
                )
                step += 1
                episode_return += float(reward)
                episode_length += 1
                observation = next_observation
                if step >= cfg.start_steps:
                    # One update, then the action for the next observation, in one call.
                    act_key, key = jax.random.split(act_key)
                    batch = buffer.sample(rng, cfg.batch_size)
                    state, metrics_sum, action = update_and_act(
                        state, metrics_sum, batch, jnp.asarray(observation, jnp.float32), key
                    )
                    action = np.asarray(action)
                    metrics_count += 1
                if step % cfg.eval_every == 0 or step == cfg.steps:
                    record = {
                        f"train/{k}": float(v) / max(metrics_count, 1)
                        for k, v in metrics_sum.items()
                    }
                    metrics_sum, metrics_count = {}, 0
                    stacked = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], state)
                    result = evaluate(
                        functools.partial(_stacked_policy, eval_policy, stacked, pre),
                        cfg.env_id,
                        1,
                        cfg.eval_episodes,
                    )
                    record["eval/return_mean"] = float(result.returns.mean())
                    record["eval/return_std"] = float(result.returns.std())
                    record["time/steps_per_second"] = (step - start_step) / max(
                        time.perf_counter() - started, 1e-9
                    )
                    if result.normalized is not None:
                        record["eval/normalized_score"] = float(result.normalized.mean())
                    evaluations.append({"step": step, "return": record["eval/return_mean"]})
                    logger.log(step, record)
                    if cfg.progress:
                        print(
                            f"step {step}: eval return {record['eval/return_mean']:.1f} "
                            f"({record['time/steps_per_second']:.0f} steps/s)",
                            flush=True,
                        )
                if terminated or truncated or step >= cfg.steps:
                    break
            counters["episode"] += 1
            logger.log(
                step,
                {"train/episode_return": episode_return, "train/episode_length": episode_length},
            )
            due = step - counters["last_checkpoint"] >= cfg.checkpoint_every or step >= cfg.steps
            if due or stop.requested:
                counters["step"] = step
                counters["last_checkpoint"] = step
                # The buffer first: a published step_<N> always has its buffer_<N>.npz.
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                _save_buffer(ckpt_dir / f"buffer_{step}.npz", buffer, rng, counters)
                checkpoint.save(ckpt_dir, step, _payload(state, act_key, step, pre))
                for old in checkpoint.steps(ckpt_dir)[:-2]:
                    (ckpt_dir / f"buffer_{old}.npz").unlink(missing_ok=True)
                if step < cfg.steps and (
                    stop.requested or (stop_after is not None and step >= stop_after)
                ):
                    interrupted = True
                    break
    finally:
        stop.__exit__(None, None, None)
        logger.close()
        env.close()
    summary = {
        "algorithm": algorithm,
        "env_id": cfg.env_id,
        "steps": step,
        "wall_seconds": time.perf_counter() - started,
        "evaluations": evaluations,
        "task_reference": dataclasses.asdict(get_task(cfg.env_id))
        if get_task(cfg.env_id)
        else None,
    }
    summary["interrupted"] = interrupted
    write_json_atomic(run_dir / "summary.json", summary)
    if interrupted and stop.requested:
        raise RunInterrupted(
            f"stopped at step {step} (the end of an episode) with a checkpoint; continue "
            f"with --resume --run-dir {run_dir}",
            stop.signum,
        )
    return summary
