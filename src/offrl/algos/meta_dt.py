"""Meta-DT: the Decision Transformer conditioned on a task embedding from a world model.

Offline meta-RL as sequence modelling (Wang et al., 2024, NJU-RL/Meta-DT). The
data hold episodes of many tasks (the dataset's subsets ``task-*`` say which
episodes share one; the observations do not). Three parts, trained together:

- **Context encoder and world model.** ``z_t = E(s, a, r of the h steps before
  t)`` (zeros before the episode's start): each of ``s``, ``a``, ``r`` through a
  ReLU layer of width ``C``, a GRU over the ``h`` steps, a linear read-out of
  width ``C``. Two decoders see ``z_t``: the reward ``R(s_t, a_t, s_{t+1}, z_t)``
  and the transition ``S(s_t, a_t, z_t)`` (MLPs of two hidden layers). The encoder
  learns only through them:
  ``L_wm = mean_t (R - r_t)^2 + w_s ||S - (s_{t+1} - s_t)||^2``.
- **Decision Transformer** (:class:`offrl.algos.dt.DecisionTransformerNet`) with
  ``stop_gradient(z_t)`` embedded and added to each state token, so the task
  embedding steers the policy but the policy's loss never shapes it (Meta-DT's
  disentanglement).
- **Prompt.** ``P`` steps ``(R, s, a)`` with embeddings of their own go before
  the window. For each training window they come from another episode of the same
  task: the ``P``-step segment of that episode on which the world model errs most,
  ``argmax_j sum_{t=j}^{j+P-1} e_t`` with ``e_t`` the world model's error on step
  ``t`` (:func:`select_prompt`; segments start at step ``h`` or later so their
  contexts are complete). The segment the world model explains worst is the one
  that says most about how this task differs from the others.

Evaluation. **Zero-shot**: ``act`` without a prompt (the context from the
episode's own last ``h`` steps is all the policy gets); this is what ``offrl
train`` and ``offrl bench`` evaluate. **Few-shot**
(:func:`offrl.evaluate.meta.few_shot`): a first episode in the unseen task, its
largest-error segment (:func:`prompt_from_episode`) as the prompt of the later
episodes. With ``prompt_length = 0`` the model is DT with the context alone
(Meta-DT's zero-shot variant).

Defaults: Meta-DT's point-robot settings (context horizon ``h = 4``, ``C = 16``,
hidden 128, world-model lr 1e-3, prompt length 5, ``K = 20``, DT 128 wide, 3
layers, 1 head, dropout 0.1, lr 1e-4, weight decay 1e-4). Deviations from the
released code: one run trains the world model and the policy together (the code
trains the encoder first, then freezes it; here the policy sees
``stop_gradient(z)`` of the encoder as it stands, and the world model's lr is ten
times the policy's); the prompt is the largest-error segment as the paper says (the
code samples a start with probability proportional to the segment's error); the
prompt is present from the first update (the code warms up 20k updates without);
the transition decoder predicts the change ``s_{t+1} - s_t``; the decoders' input
encoders are not shared between ``s`` and ``s'``; the context is added to the
state token (the code concatenates a 16-wide state encoding with it).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos import dt
from offrl.algos.common import at_last_step, window_mean
from offrl.core.state import adamw, create_train_state
from offrl.data.dataset import Dataset, num_rows
from offrl.data.windows import window_rows, windows_at

DEFAULT_REWARD_SCALING = dt.DEFAULT_REWARD_SCALING
#: Actions (targets), rewards (returns-to-go, the world model) and next observations.
REQUIRED_FIELDS = ("actions", "rewards")
prepare_dataset = dt.prepare_dataset
#: Subsets whose names start with this hold the episodes of one task.
TASK_PREFIX = "task-"


@dataclasses.dataclass(frozen=True)
class Config(dt.Config):
    """Meta-DT settings: the Decision Transformer's plus the context and the prompt."""

    context_horizon: int = 4
    """Steps before ``t`` the context encoder reads, ``h``."""
    context_dim: int = 16
    """Width of the task embedding ``z`` (and of the encoders' input layers)."""
    context_hidden: int = 128
    """GRU state and decoder hidden width."""
    context_learning_rate: float = 1e-3
    """Adam learning rate of the encoder and decoders."""
    state_weight: float = 1.0
    """Weight ``w_s`` of the transition decoder's loss (0: reward decoder only)."""
    prompt_length: int = 5
    """Prompt steps ``P`` (0: no prompt, DT with the context alone)."""
    prompt_pool: int = 20
    """Rows of the same-task episode searched for each training window's prompt."""


def window_length(config: Config) -> int:
    return config.context_length


def history_length(config: Config) -> int:
    """``act`` reads ``K + h`` steps: ``K`` for the transformer and ``h`` before the
    first of them for its context."""
    return config.context_length + config.context_horizon


@struct.dataclass
class State:
    actor: TrainState
    world: TrainState
    key: jax.Array
    step: jax.Array


class ContextWorldModel(nn.Module):
    """The context encoder and the reward and transition decoders (module docstring)."""

    observation_dim: int
    config: Config

    def setup(self):
        c = self.config
        self.enc_s, self.enc_a, self.enc_r = (nn.Dense(c.context_dim) for _ in range(3))
        self.gru = nn.GRUCell(c.context_hidden)
        self.enc_out = nn.Dense(c.context_dim)
        self.rew_s, self.rew_a, self.rew_n = (nn.Dense(c.context_dim) for _ in range(3))
        self.rew_mlp = [nn.Dense(c.context_hidden), nn.Dense(c.context_hidden), nn.Dense(1)]
        self.dyn_s, self.dyn_a = nn.Dense(c.context_dim), nn.Dense(c.context_dim)
        self.dyn_mlp = [
            nn.Dense(c.context_hidden), nn.Dense(c.context_hidden), nn.Dense(self.observation_dim)
        ]  # fmt: skip

    def encode(self, observations, actions, rewards):
        """``z [..., C]`` from ``h``-step histories ``[..., h, ...]`` (zeros where absent)."""
        h = jnp.concatenate(
            [
                nn.relu(self.enc_s(observations)),
                nn.relu(self.enc_a(actions)),
                nn.relu(self.enc_r(rewards[..., None])),
            ],
            axis=-1,
        )
        lead = h.shape[:-2]
        carry = jnp.zeros(lead + (self.config.context_hidden,))
        for i in range(h.shape[-2]):
            carry, _ = self.gru(carry, h[..., i, :])
        return self.enc_out(carry)

    def decode(self, observations, actions, next_observations, z):
        """``(reward [...], state change [..., obs_dim])`` predicted for the steps."""
        x = jnp.concatenate(
            [
                nn.relu(self.rew_s(observations)),
                nn.relu(self.rew_a(actions)),
                nn.relu(self.rew_n(next_observations)),
                z,
            ],
            axis=-1,
        )
        y = [nn.relu(self.dyn_s(observations)), nn.relu(self.dyn_a(actions)), z]
        y = jnp.concatenate(y, axis=-1)
        for layer in self.rew_mlp[:-1]:
            x = nn.relu(layer(x))
        for layer in self.dyn_mlp[:-1]:
            y = nn.relu(layer(y))
        return self.rew_mlp[-1](x)[..., 0], self.dyn_mlp[-1](y)

    def __call__(self, history, observations, actions, next_observations):
        z = self.encode(*history)
        return z, self.decode(observations, actions, next_observations, z)


# ------------------------------------------------------------------ histories


def _history_from_rows(dataset: Dataset, rows, timesteps, horizon: int):
    """``(observations, actions, rewards)`` of the ``horizon`` steps before each row
    ``[...]`` (oldest first, ``[..., h, ...]``), zero before the episode's start."""
    back = jnp.arange(horizon, 0, -1)
    valid = (timesteps[..., None] - back) >= 0
    previous = jnp.maximum(rows[..., None] - back, 0)

    def take(values):
        taken = jnp.take(values, previous, axis=0)
        keep = valid.reshape(valid.shape + (1,) * (taken.ndim - valid.ndim))
        return jnp.where(keep, taken, 0.0)

    return take(dataset.observations), take(dataset.actions), take(dataset.rewards)


def histories_in(observations, actions, rewards, horizon: int):
    """The same histories for a sequence that starts at its episode's first step
    (``[N, T, ...]``, ``rewards [N, T]``): ``[N, T, h, ...]``, zero before step 0."""
    back = jnp.arange(horizon, 0, -1)
    index = jnp.arange(observations.shape[1])[:, None] - back[None]  # [T, h]
    valid = index >= 0
    index = jnp.maximum(index, 0)

    def take(values):
        taken = values[:, index]
        keep = valid.reshape(valid.shape + (1,) * (taken.ndim - 3))
        return jnp.where(keep[None], taken, 0.0)

    return take(observations), take(actions), take(rewards)


def episode_tasks(dataset: Dataset) -> np.ndarray:
    """The task of every episode: the index of its ``task-*`` subset, or a task of its
    own (numbered after them) when no such subset holds it."""
    count = int(np.shape(dataset.episode_starts)[0])
    tasks = np.full(count, -1, np.int64)
    names = [name for name, _ in dataset.info.subsets if name.startswith(TASK_PREFIX)]
    subsets = dict(dataset.info.subsets)
    for index, name in enumerate(names):
        tasks[np.asarray(subsets[name], np.int64)] = index
    alone = np.flatnonzero(tasks < 0)
    tasks[alone] = len(names) + np.arange(len(alone))
    return tasks


def sample_batch(dataset: Dataset, key: jax.Array, batch_size: int, config: Config):
    """Windows of ``K`` steps (:func:`offrl.data.windows.windows_at`) with each step's
    ``h``-step history (``history_*``), and, with a prompt, a pool of
    ``prompt_pool`` rows from a random episode of the same task (``pool_*``, each with
    its histories) to choose the prompt from."""
    window_key, episode_key, start_key = jax.random.split(key, 3)
    horizon = config.context_horizon
    starts = jax.random.randint(window_key, (batch_size,), 0, num_rows(dataset))
    batch = windows_at(dataset, starts, config.context_length)
    rows, timesteps, _ = window_rows(dataset, starts, config.context_length)
    history = _history_from_rows(dataset, rows, timesteps, horizon)
    for name, values in zip(("observations", "actions", "rewards"), history, strict=True):
        batch[f"history_{name}"] = values
    if not config.prompt_length:
        return batch
    # a random episode of the window's task (static tables from the subsets)
    tasks = episode_tasks(dataset)
    order = np.argsort(tasks, kind="stable")
    first = np.searchsorted(tasks[order], np.arange(tasks.max() + 1))
    count = np.bincount(tasks)
    episode_starts = jnp.asarray(dataset.episode_starts)
    lengths = jnp.asarray(dataset.episode_lengths)
    episode = jnp.searchsorted(episode_starts, starts, side="right") - 1
    task = jnp.asarray(tasks)[episode]
    pick = jax.random.randint(episode_key, (batch_size,), 0, jnp.asarray(count)[task])
    other = jnp.asarray(order)[jnp.asarray(first)[task] + pick]
    room = jnp.maximum(lengths[other] - config.prompt_pool, 0)
    offset = jnp.floor(jax.random.uniform(start_key, (batch_size,)) * (room + 1)).astype(jnp.int32)
    pool_starts = episode_starts[other] + offset
    pool = windows_at(dataset, pool_starts, config.prompt_pool)
    pool_rows, pool_steps, _ = window_rows(dataset, pool_starts, config.prompt_pool)
    for name in ("observations", "actions", "rewards", "next_observations", "returns_to_go",
                 "timesteps", "mask"):  # fmt: skip
        batch[f"pool_{name}"] = pool[name]
    history = _history_from_rows(dataset, pool_rows, pool_steps, horizon)
    for name, values in zip(("observations", "actions", "rewards"), history, strict=True):
        batch[f"pool_history_{name}"] = values
    return batch


# ------------------------------------------------------------------ the prompt


def segment_errors(errors, mask, timesteps, length: int, first_step: int):
    """The summed error of every ``length``-step segment ``[..., T - length + 1]``;
    ``-inf`` for a segment with a padded step or starting before ``first_step``."""
    steps = errors.shape[-1] - length + 1
    index = jnp.arange(steps)[:, None] + jnp.arange(length)[None]  # [J, P]
    sums = jnp.sum(jnp.where(mask > 0, errors, 0.0)[..., index], axis=-1)
    full = jnp.all(mask[..., index] > 0, axis=-1) & (timesteps[..., :steps] >= first_step)
    return jnp.where(full, sums, -jnp.inf)


def select_prompt(errors, mask, timesteps, length: int, first_step: int):
    """The start of the ``length``-step segment with the largest summed world-model
    error (Meta-DT's prompt); segments from ``first_step`` on are preferred, and
    without one any full segment counts."""
    scores = segment_errors(errors, mask, timesteps, length, first_step)
    anywhere = segment_errors(errors, mask, timesteps, length, 0)
    scores = jnp.where(jnp.isfinite(jnp.max(scores, -1, keepdims=True)), scores, anywhere)
    return jnp.argmax(scores, axis=-1)


def transition_errors(world: TrainState, history, observations, actions, rewards,
                      next_observations, config: Config):  # fmt: skip
    """The world model's error on each step: squared reward error plus ``w_s`` times
    the mean squared state-change error."""
    _, (reward, change) = world.apply_fn(
        world.params, history, observations, actions, next_observations
    )
    target = next_observations - observations
    return (reward - rewards) ** 2 + config.state_weight * jnp.mean((change - target) ** 2, -1)


def _gather_prompt(fields: dict, starts, length: int) -> dict:
    index = starts[:, None] + jnp.arange(length)[None]
    return {
        name: jnp.take_along_axis(
            values, index.reshape(index.shape + (1,) * (values.ndim - 2)), axis=1
        )
        for name, values in fields.items()
    }


def prompt_from_episode(state: State, episode: dict, config: Config):
    """The prompt start (an int per episode) in recorded episodes ``[N, T, ...]`` in the
    networks' units (``observations``, ``actions``, ``rewards``, ``next_observations``,
    ``mask``): the segment with the largest world-model error."""
    history = histories_in(
        episode["observations"], episode["actions"], episode["rewards"], config.context_horizon
    )
    errors = transition_errors(
        state.world, history, episode["observations"], episode["actions"], episode["rewards"],
        episode["next_observations"], config,
    )  # fmt: skip
    steps = jnp.broadcast_to(jnp.arange(errors.shape[-1]), errors.shape)
    return select_prompt(
        errors, episode["mask"], steps, config.prompt_length, config.context_horizon
    )


# ------------------------------------------------------------------ the contract


def init(config: Config, example_batch, key: jax.Array) -> State:
    if config.action_regions or config.evolve_weight:
        raise ValueError(
            "meta_dt does not take MO-DT's action regions or Decision Mamba's evolving "
            "target; set action_regions=0 and evolve_weight=0"
        )
    key, dt_key, wm_key = jax.random.split(key, 3)
    obs = example_batch["observations"][:, None]
    act = example_batch["actions"][:, None]
    zeros = jnp.zeros(obs.shape[:2])
    z = jnp.zeros(obs.shape[:2] + (config.context_dim,))
    prompt = None
    if config.prompt_length:
        prompt = {"observations": obs, "actions": act, "returns_to_go": zeros,
                  "timesteps": zeros.astype(jnp.int32)}  # fmt: skip
    net = dt.DecisionTransformerNet(obs.shape[-1], act.shape[-1], config)
    params = net.init(dt_key, obs, act, zeros, zeros.astype(jnp.int32), contexts=z, prompt=prompt)
    tx = adamw(config.learning_rate, config.weight_decay, config.warmup_steps, config.grad_clip)
    world = ContextWorldModel(obs.shape[-1], config)
    history = (obs[:, :, None], act[:, :, None], zeros[:, :, None])
    world_params = world.init(wm_key, history, obs, act, obs)
    return State(
        actor=create_train_state(net, params, config.learning_rate, tx=tx),
        world=create_train_state(world, world_params, config.context_learning_rate),
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def _history(batch, prefix: str = ""):
    return tuple(batch[f"{prefix}history_{n}"] for n in ("observations", "actions", "rewards"))


def update(state: State, batch, config: Config):
    key, dropout_key = jax.random.split(state.key)
    mask = batch["mask"]

    def world_loss(params):
        z, (reward, change) = state.world.apply_fn(
            params, _history(batch), batch["observations"], batch["actions"],
            batch["next_observations"],
        )  # fmt: skip
        reward_mse = window_mean((reward - batch["rewards"]) ** 2, mask)
        target = batch["next_observations"] - batch["observations"]
        state_mse = window_mean((change - target) ** 2, mask)
        loss = reward_mse + config.state_weight * state_mse
        return loss, (z, {"world/reward_mse": reward_mse, "world/state_mse": state_mse})

    (world_loss_value, (z, metrics)), world_grads = jax.value_and_grad(world_loss, has_aux=True)(
        state.world.params
    )
    world = state.world.apply_gradients(grads=world_grads)
    metrics["world/loss"] = world_loss_value
    z = jax.lax.stop_gradient(z)

    prompt = None
    if config.prompt_length:
        pool = {n: batch[f"pool_{n}"] for n in ("observations", "actions", "rewards",
                                                "next_observations")}  # fmt: skip
        errors = transition_errors(
            state.world, _history(batch, "pool_"), pool["observations"], pool["actions"],
            pool["rewards"], pool["next_observations"], config,
        )  # fmt: skip
        starts = select_prompt(
            errors, batch["pool_mask"], batch["pool_timesteps"], config.prompt_length,
            config.context_horizon,
        )  # fmt: skip
        fields = {n: batch[f"pool_{n}"] for n in ("observations", "actions", "returns_to_go",
                                                  "timesteps")}  # fmt: skip
        prompt = _gather_prompt({**fields, "errors": errors}, starts, config.prompt_length)
        metrics["world/prompt_error"] = jnp.mean(prompt.pop("errors"))

    def loss_fn(params):
        predictions = state.actor.apply_fn(
            params, batch["observations"], batch["actions"], batch["returns_to_go"],
            batch["timesteps"], None, deterministic=False, rngs={"dropout": dropout_key},
            contexts=z, prompt=prompt,
        )  # fmt: skip
        return dt.sequence_loss(predictions, batch, batch["actions"], config)

    grads, actor_metrics = jax.grad(loss_fn, has_aux=True)(state.actor.params)
    metrics.update(actor_metrics)
    metrics["actor/grad_norm"] = optax.tree.norm(grads)
    actor = state.actor.apply_gradients(grads=grads)
    return state.replace(actor=actor, world=world, key=key, step=state.step + 1), metrics


def act(state: State, window, key, deterministic: bool, config: Config):
    """The action for the last real step of every window of ``K + h`` steps: contexts
    from each step's ``h`` predecessors in the window, the transformer on the last
    ``K`` real steps, and the prompt when the window carries one (``prompt_*``
    fields, ``[N, P, ...]``: few-shot); without one, zero-shot."""
    mask = window["mask"]
    length = config.context_length
    returns = window["returns_to_go"]
    # the reward of step t is R_t - R_{t+1} (the history keeps returns-to-go, not rewards)
    # (a concatenation, not a pad: ONNX export has no pad over a symbolic batch)
    rewards = jnp.concatenate([returns[:, :-1] - returns[:, 1:], 0.0 * returns[:, :1]], axis=1)
    history = histories_in(
        window["observations"], window["actions"], rewards, config.context_horizon
    )
    z = state.world.apply_fn(state.world.params, *history, method=ContextWorldModel.encode)
    last = jnp.maximum(jnp.sum(mask, axis=-1).astype(jnp.int32) - 1, 0)
    first = jnp.maximum(last - length + 1, 0)  # the transformer's window starts here
    fields = {"observations": window["observations"], "actions": window["actions"],
              "returns_to_go": returns, "timesteps": window["timesteps"], "mask": mask,
              "contexts": z}  # fmt: skip
    part = _gather_prompt(fields, first, length)
    prompt = None
    if "prompt_observations" in window:
        prompt = {n: window[f"prompt_{n}"] for n in ("observations", "actions", "returns_to_go",
                                                     "timesteps")}  # fmt: skip
    out = state.actor.apply_fn(
        state.actor.params, part["observations"], part["actions"], part["returns_to_go"],
        part["timesteps"], None, contexts=part["contexts"], prompt=prompt,
    )  # fmt: skip
    return at_last_step(out["actions"], part["mask"])
