"""Few-shot evaluation on unseen tasks: a first episode, then a prompt from it.

Offline meta-RL (:mod:`offrl.algos.meta_dt`) is evaluated as Meta-DT evaluates it:
in each unseen task, a first episode with no prompt (**zero-shot**: the policy
has only the context from its own last steps), then later episodes in the same
task with a **prompt** cut from the first: the segment on which the run's world
model errs most (the algorithm's ``prompt_from_episode``). A task is a reset
seed class of the environment (:mod:`offrl.envs.goals`: resets ``s``, ``s + n``,
``s + 2n``... give the same goal when the environment has ``n`` goals), so
episode ``e`` of task ``j`` resets with ``first_seed + j + e * num_tasks``.

An algorithm without ``prompt_from_episode`` (DT, Meta-DT with ``prompt_length =
0``) runs every episode zero-shot, which makes its rows comparable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from offrl.core.history import HistoryPolicy, bind_policy
from offrl.core.trainer import build_policy
from offrl.envs.rollout import evaluate
from offrl.run.rundir import load_run
from offrl.run.settings import RunError


class _Recorder:
    """A sequence policy that records what it saw and did (``[S, N, T, ...]``), with a
    fixed prompt (``prompt_*`` fields) in every window it acts on."""

    def __init__(self, policy: HistoryPolicy, prompt: dict | None = None):
        self.policy = policy
        self.policy.extra = dict(prompt or {})
        self.observations, self.actions, self.rewards = [], [], []

    def reset_history(self) -> None:
        self.policy.reset_history()

    def __call__(self, observations, key):
        self.observations.append(np.array(observations))
        return self.policy(observations, key)

    def record(self, actions, rewards) -> None:
        self.actions.append(np.array(actions))
        self.rewards.append(np.array(rewards))
        self.policy.record(actions, rewards)


def few_shot(
    run_dir,
    env_id: str,
    num_tasks: int,
    episodes: int = 3,
    first_seed: int = 700_000_000,
    step: int | None = None,
) -> dict:
    """Episodes ``0..episodes-1`` in each of ``num_tasks`` tasks for every seed of the
    run; episode 0 zero-shot, the later ones with the prompt from episode 0 (when the
    algorithm has prompts). Returns per-episode normalized scores ``[S, N]`` (``None``
    without references) and returns, and the prompts' starts."""
    context = load_run(run_dir, step)
    algo, config, pre = context.algo, context.algo_config, context.preprocessor
    batched = build_policy(algo, config)
    if getattr(batched, "window_length", None) is None:
        raise RunError(f"{run_dir}: {context.algo.__name__} is not a sequence policy; few-shot "
                       "evaluation needs one that acts on its history")  # fmt: skip
    prompts = hasattr(algo, "prompt_from_episode") and getattr(config, "prompt_length", 0) > 0
    num_seeds = len(context.seeds)
    key = jax.random.PRNGKey(first_seed)
    out = {"returns": [], "normalized": [], "prompt_starts": None}
    prompt = None
    for episode in range(episodes):
        policy = _Recorder(bind_policy(batched, context.states, pre), prompt)
        key, eval_key = jax.random.split(key)
        result = evaluate(
            policy, env_id, num_seeds, num_tasks, first_seed + episode * num_tasks, eval_key,
            max_parallel=num_tasks,
        )  # fmt: skip
        out["returns"].append(result.returns.tolist())
        out["normalized"].append(None if result.normalized is None else result.normalized.tolist())
        if episode == 0 and prompts:
            prompt, starts = _prompt(algo, config, context.states, pre, policy, result.lengths)
            out["prompt_starts"] = starts.tolist()
    return out


def _prompt(algo, config, states, pre, recorder: _Recorder, lengths):
    """The prompt fields ``[S, N, P, ...]`` (environment units, as windows hold them)
    from the recorded first episodes, and the chosen starts ``[S, N]``."""
    observations = np.stack(recorder.observations, axis=2)  # [S, N, T, obs]
    actions = np.stack(recorder.actions, axis=2)
    rewards = np.stack(recorder.rewards, axis=2)  # [S, N, T]
    steps = observations.shape[2]
    next_observations = np.concatenate([observations[:, :, 1:], observations[:, :, -1:]], 2)
    # the last step's next observation is not seen by the policy: leave it out
    mask = (np.arange(steps)[None, None] < (np.asarray(lengths)[..., None] - 1)).astype(np.float32)
    scale, shift = float(np.asarray(pre.reward_scale)), float(np.asarray(pre.reward_shift))
    run_rewards = (scale * rewards + shift) * (np.arange(steps) < np.asarray(lengths)[..., None])
    episode = {
        "observations": pre.observation(jnp.asarray(observations)),
        "actions": jnp.clip(pre.action_from_env(jnp.asarray(actions)), -1.0, 1.0),
        "rewards": jnp.asarray(run_rewards, jnp.float32),
        "next_observations": pre.observation(jnp.asarray(next_observations)),
        "mask": jnp.asarray(mask),
    }
    starts = jax.vmap(lambda s, e: algo.prompt_from_episode(s, e, config))(states, episode)
    starts = np.asarray(starts)  # [S, N]
    returns_to_go = np.flip(np.cumsum(np.flip(run_rewards, -1), -1), -1)
    index = starts[..., None] + np.arange(config.prompt_length)  # [S, N, P]

    def take(values):
        return np.take_along_axis(values, index.reshape(index.shape + (1,) * (values.ndim - 3)), 2)

    prompt = {
        "prompt_observations": take(observations),
        "prompt_actions": take(actions),
        "prompt_returns_to_go": take(returns_to_go).astype(np.float32),
        "prompt_timesteps": index.astype(np.int32),
    }
    return {k: jnp.asarray(v) for k, v in prompt.items()}, starts
