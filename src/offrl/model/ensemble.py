"""A dynamics ensemble learned from data, its uncertainty penalties and model steps.

N Gaussian models (:class:`offrl.nn.GaussianEnsemble`) predict the change of state
and the reward from the standardized state and action. They are fit as
OfflineRL-Kit's ``EnsembleDynamics.train`` fits them (MBPO's recipe):

- a held-out set of ``min(0.2 n, 1000)`` transitions; the input standardization
  is fit on the rest;
- each model trains on its own bootstrap of the training rows (drawn once with
  replacement, reshuffled every epoch), batch 256, Adam 1e-3, on::

      sum_i [ mean_{b,d} (mu - y)^2 exp(-logvar) + mean_{b,d} logvar ]
        + sum_l w_l / 2 ||W_l||^2 + 0.01 (sum max_logvar - sum min_logvar)

  with per-layer weight decays ``w_l`` (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4);
- after every epoch each model's held-out MSE of its mean; a model's weights are
  kept (snapshot) when that improves by more than 1%; training stops after 5
  epochs without any improvement (or at ``max_epochs``); the snapshots are
  restored and the ``num_elites`` models of lowest held-out error are the elites.

Deviations: an epoch drops its last partial batch (the rows are reshuffled each
epoch, so every row is still seen); several seeds are fit side by side under
``vmap``, and a seed that has stopped keeps its weights while the others go on.

A model step (:func:`step`) draws ``mean + std * noise`` from every model and keeps
one elite's draw per row, chosen uniformly (OfflineRL-Kit's ``random_elite_idxs``).

The uncertainty penalties (:func:`penalty`) are the five heuristics compared in
"Revisiting Design Choices in Offline Model-Based RL" (Lu et al., 2022), over all
N models as OfflineRL-Kit computes them:

- ``aleatoric`` (MOPO): ``max_i ||sigma_i||_2`` over the state and reward outputs;
- ``pairwise`` (MOReL): ``max_{i,j} ||mu_i - mu_j||_2`` over the next-state means;
- ``ensemble_std``: ``sqrt(mean_d Var_i mu_{i,d})`` over the next-state means
  (OfflineRL-Kit's ``ensemble_std``);
- ``ensemble_var``: ``mean_d Var_i mu_{i,d}`` (its square: the same ranking of
  states, a different penalty shape);
- ``ll_var``: ``Var_i log N(x | mu_i, sigma_i)`` at the step's drawn next state
  and reward ``x``.

MOBILE's penalty, the spread of Bellman targets across models, needs a critic; it
lives with MOBILE (:mod:`offrl.algos.mobile`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training.train_state import TrainState

from offrl.data.dataset import num_rows
from offrl.nn import GaussianEnsemble

PENALTIES = ("aleatoric", "pairwise", "ensemble_std", "ensemble_var", "ll_var")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How the ensemble is built and fit (OfflineRL-Kit's defaults)."""

    num_models: int = 7
    num_elites: int = 5
    hidden_dims: tuple[int, ...] = (200, 200, 200, 200)
    weight_decays: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    learning_rate: float = 1e-3
    batch_size: int = 256
    holdout_ratio: float = 0.2
    max_holdout: int = 1000
    max_epochs: int | None = None
    max_epochs_since_update: int = 5
    logvar_loss_coef: float = 0.01

    def check(self) -> None:
        if len(self.weight_decays) != len(self.hidden_dims) + 1:
            raise ValueError(
                f"model weight_decays needs one value per layer ({len(self.hidden_dims) + 1} "
                f"for {len(self.hidden_dims)} hidden layers), got {len(self.weight_decays)}"
            )
        if not 1 <= self.num_elites <= self.num_models:
            raise ValueError(
                f"num_elites must be between 1 and num_models ({self.num_models}), "
                f"got {self.num_elites}"
            )
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ValueError(f"model max_epochs must be at least 1 or None, got {self.max_epochs}")


@dataclasses.dataclass(frozen=True)
class ModelFields:
    """The dynamics ensemble's settings as fields of a model-based algorithm's Config
    (MOPO, MOBILE, Uni-O4), with OfflineRL-Kit's defaults; :meth:`model_spec` is the
    :class:`ModelSpec` they describe."""

    termination: str = "auto"
    """Where model rollouts end: auto (the task's own rule, or never for a task whose
    data never terminates), never, hopper or walker2d."""
    model_num_models: int = 7
    """N: models in the dynamics ensemble."""
    model_num_elites: int = 5
    """Models of lowest held-out error that generate rollouts."""
    model_hidden_dims: tuple[int, ...] = (200, 200, 200, 200)
    """Hidden widths of each dynamics model."""
    model_weight_decays: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    """L2 weight of each layer of the dynamics models (one per layer)."""
    model_learning_rate: float = 1e-3
    """Adam learning rate of the dynamics ensemble."""
    model_batch_size: int = 256
    """Batch size of the dynamics fit."""
    model_max_epochs: int | None = None
    """Most epochs of the dynamics fit (None: until 5 epochs without improvement)."""
    model_max_epochs_since_update: int = 5
    """The fit stops after this many epochs without a held-out improvement of 1%."""

    def model_spec(self) -> ModelSpec:
        return ModelSpec(
            num_models=self.model_num_models,
            num_elites=self.model_num_elites,
            hidden_dims=tuple(self.model_hidden_dims),
            weight_decays=tuple(self.model_weight_decays),
            learning_rate=self.model_learning_rate,
            batch_size=self.model_batch_size,
            max_epochs=self.model_max_epochs,
            max_epochs_since_update=self.model_max_epochs_since_update,
        )


@struct.dataclass
class Ensemble:
    """A fitted (or freshly initialized) ensemble: its weights, elites and input
    standardization. Leaves may carry a leading seed axis."""

    params: dict
    elites: jax.Array  # [K] int32
    input_mean: jax.Array  # [obs_dim + act_dim]
    input_std: jax.Array


@functools.cache
def network(spec: ModelSpec, observation_dim: int) -> GaussianEnsemble:
    """The ensemble's network: ``observation_dim + 1`` outputs (state change, reward)."""
    return GaussianEnsemble(observation_dim + 1, spec.num_models, tuple(spec.hidden_dims))


def init(spec: ModelSpec, observation_dim: int, action_dim: int, key: jax.Array) -> Ensemble:
    """Untrained weights, the first ``num_elites`` models as elites, no standardization."""
    inputs = jnp.zeros((1, observation_dim + action_dim), jnp.float32)
    params = network(spec, observation_dim).init(key, inputs)
    return Ensemble(
        params=params,
        elites=jnp.arange(spec.num_elites, dtype=jnp.int32),
        input_mean=jnp.zeros(observation_dim + action_dim, jnp.float32),
        input_std=jnp.ones(observation_dim + action_dim, jnp.float32),
    )


def _member_layers(params) -> list:
    members = params["params"]["members"]
    return [members[f"Dense_{i}"] for i in range(len(members))]


def decay_loss(spec: ModelSpec, params) -> jax.Array:
    """``sum_l w_l / 2 ||W_l||^2`` over every member's kernels (biases are not decayed)."""
    layers = _member_layers(params)
    return sum(
        w * 0.5 * jnp.sum(layer["kernel"] ** 2)
        for w, layer in zip(spec.weight_decays, layers, strict=True)
    )


def gaussian_nll_loss(spec: ModelSpec, params, inputs, targets, observation_dim: int):
    """The training loss above for per-member batches ``inputs [N, B, in]`` (already
    standardized) and ``targets [N, B, obs_dim + 1]``; returns ``(loss, metrics)``."""
    mean, logvar = network(spec, observation_dim).apply(params, inputs)
    inv_var = jnp.exp(-logvar)
    mse_inv = ((mean - targets) ** 2 * inv_var).mean(axis=(1, 2))
    var_loss = logvar.mean(axis=(1, 2))
    bounds = params["params"]
    loss = (
        mse_inv.sum()
        + var_loss.sum()
        + decay_loss(spec, params)
        + spec.logvar_loss_coef * (bounds["max_logvar"].sum() - bounds["min_logvar"].sum())
    )
    return loss, {"model/loss": loss, "model/mse": ((mean - targets) ** 2).mean()}


def holdout_mse(spec: ModelSpec, params, inputs, targets, observation_dim: int) -> jax.Array:
    """Each model's MSE of its mean on shared rows ``inputs [B, in]`` (standardized):
    ``[N]``, the quantity that picks snapshots and elites."""
    mean, _ = network(spec, observation_dim).apply(params, inputs)
    return ((mean - targets[None]) ** 2).mean(axis=(1, 2))


def standardize(ensemble: Ensemble, observations, actions) -> jax.Array:
    inputs = jnp.concatenate([observations, actions], axis=-1)
    return (inputs - ensemble.input_mean) / ensemble.input_std


def distribution(spec: ModelSpec, ensemble: Ensemble, observations, actions):
    """Every model's prediction of ``(next state, reward)``: ``(mean, std)``, each
    ``[N, B, obs_dim + 1]`` (the mean's state part is ``s + predicted change``)."""
    dim = observations.shape[-1]
    mean, logvar = network(spec, dim).apply(
        ensemble.params, standardize(ensemble, observations, actions)
    )
    mean = mean.at[..., :dim].add(observations)
    return mean, jnp.exp(0.5 * logvar)


def step(spec: ModelSpec, ensemble: Ensemble, observations, actions, key):
    """One model step: ``(next_observations [B, D], rewards [B], mean, std, draw)``;
    ``draw [B, D + 1]`` is the chosen elite's sample (for ``ll_var``)."""
    noise_key, pick_key = jax.random.split(key)
    mean, std = distribution(spec, ensemble, observations, actions)
    samples = mean + std * jax.random.normal(noise_key, mean.shape)
    rows = observations.shape[0]
    models = ensemble.elites[jax.random.randint(pick_key, (rows,), 0, ensemble.elites.shape[0])]
    draw = samples[models, jnp.arange(rows)]
    return draw[:, :-1], draw[:, -1], mean, std, draw


def penalty(kind: str, mean, std, draw=None) -> jax.Array:
    """The uncertainty ``u(s, a)`` ``[B]`` of one of :data:`PENALTIES` from every
    model's ``mean, std [N, B, D + 1]`` (``draw [B, D + 1]`` for ``ll_var``)."""
    states = mean[..., :-1]
    if kind == "aleatoric":
        return jnp.max(jnp.linalg.norm(std, axis=-1), axis=0)
    if kind == "pairwise":
        diff = states[:, None] - states[None, :]  # [N, N, B, D]
        return jnp.max(jnp.linalg.norm(diff, axis=-1), axis=(0, 1))
    if kind == "ensemble_std":
        return jnp.sqrt(states.var(axis=0).mean(axis=-1))
    if kind == "ensemble_var":
        return states.var(axis=0).mean(axis=-1)
    if kind == "ll_var":
        if draw is None:
            raise ValueError("the ll_var penalty needs the drawn next state and reward")
        log_density = -0.5 * (
            ((draw[None] - mean) / std) ** 2 + 2.0 * jnp.log(std) + jnp.log(2.0 * jnp.pi)
        ).sum(axis=-1)  # [N, B]
        return log_density.var(axis=0)
    raise ValueError(f"unknown penalty '{kind}'; choose one of {', '.join(PENALTIES)}")


# ------------------------------------------------------------------------- fitting
def _split(n: int, spec: ModelSpec, seed_key) -> tuple[np.ndarray, np.ndarray]:
    holdout = min(int(n * spec.holdout_ratio), spec.max_holdout)
    if n - holdout < 1 or holdout < 1:
        raise ValueError(
            f"fitting a dynamics model needs at least 2 transitions (one held out), got {n}"
        )
    order = np.asarray(jax.random.permutation(seed_key, n))
    return order[holdout:], order[:holdout]


def _select_members(mask, new, old):
    """Per member (leading axis) ``new`` where ``mask`` else ``old``."""

    def pick(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree_util.tree_map(pick, new, old)


@functools.lru_cache(maxsize=16)
def _epoch_fn(spec: ModelSpec, observation_dim: int, steps: int, batch: int) -> Callable:
    """One epoch for every seed (vmapped): shuffle each model's bootstrap rows,
    ``steps`` Adam steps, the held-out MSE and the snapshot/early-stopping bookkeeping."""

    def one_seed(carry, key, inputs, targets, hold_in, hold_tg):
        train, best, best_loss, since, done, boot = carry
        shuffle = jnp.argsort(jax.random.uniform(key, boot.shape), axis=-1)
        boot = jnp.take_along_axis(boot, shuffle, axis=-1)
        mean, std = train.input_mean, train.input_std

        def body(state, i):
            rows = jax.lax.dynamic_slice_in_dim(boot, i * batch, batch, axis=1)  # [N, B]
            x = (inputs[rows] - mean) / std
            grads, metrics = jax.grad(gaussian_nll_loss, argnums=1, has_aux=True)(
                spec, state.params, x, targets[rows], observation_dim
            )
            return state.apply_gradients(grads=grads), metrics["model/loss"]

        new_state, losses = jax.lax.scan(body, train.state, jnp.arange(steps))
        new_loss = holdout_mse(
            spec, new_state.params, (hold_in - mean) / std, hold_tg, observation_dim
        )
        improved = (best_loss - new_loss) / best_loss > 0.01
        new_best = _select_members(
            improved, new_state.params["params"]["members"], best
        )  # the logvar bounds are not snapshotted (as OfflineRL-Kit)
        new_best_loss = jnp.where(improved, new_loss, best_loss)
        new_since = jnp.where(improved.any(), 0, since + 1)
        out = (
            train.replace(state=new_state),
            new_best,
            new_best_loss,
            new_since,
            done | (new_since >= spec.max_epochs_since_update),
            boot,
        )
        # a seed that has stopped keeps everything as it was
        out = jax.tree_util.tree_map(lambda n, o: jnp.where(done, o, n), out, carry)
        return out, {"train_loss": losses.mean(), "holdout_mse": new_loss}

    return jax.jit(jax.vmap(one_seed, in_axes=(0, 0, None, None, 0, 0)))


@struct.dataclass
class _Training:
    state: TrainState
    input_mean: jax.Array
    input_std: jax.Array


def fit(
    spec: ModelSpec,
    observations,
    actions,
    rewards,
    next_observations,
    keys: jax.Array,
    log: Callable[[int, dict], None] | None = None,
) -> tuple[Ensemble, dict]:
    """Fit one ensemble per seed key (``keys [S, 2]``) on the transitions; returns the
    ensembles (leaves with a leading seed axis) and a summary (epochs, held-out MSE of
    the elites per seed, seconds). ``log(epoch, values)`` is called after every epoch."""
    spec.check()
    started = time.perf_counter()
    observations = np.asarray(observations, np.float32)
    actions = np.asarray(actions, np.float32)
    inputs = np.concatenate([observations, actions], axis=-1)
    targets = np.concatenate(
        [np.asarray(next_observations, np.float32) - observations,
         np.asarray(rewards, np.float32)[:, None]],
        axis=-1,
    )  # fmt: skip
    n, dim = len(inputs), observations.shape[-1]
    num_seeds = keys.shape[0]
    net = network(spec, dim)
    tx = optax.adam(spec.learning_rate)

    carries, hold_ins, hold_tgs = [], [], []
    for s in range(num_seeds):
        split_key, boot_key, init_key = jax.random.split(keys[s], 3)
        train_rows, hold_rows = _split(n, spec, split_key)
        mean = inputs[train_rows].mean(axis=0)
        std = inputs[train_rows].std(axis=0)
        std = np.where(std < 1e-12, 1.0, std).astype(np.float32)
        params = net.init(init_key, jnp.zeros((1, inputs.shape[-1]), jnp.float32))
        boot = train_rows[
            np.asarray(jax.random.randint(boot_key, (spec.num_models, len(train_rows)), 0,
                                          len(train_rows)))
        ]  # fmt: skip
        train = _Training(
            state=TrainState.create(apply_fn=net.apply, params=params, tx=tx),
            input_mean=jnp.asarray(mean, jnp.float32),
            input_std=jnp.asarray(std),
        )
        carries.append(
            (
                train,
                params["params"]["members"],
                jnp.full(spec.num_models, 1e10, jnp.float32),
                jnp.zeros((), jnp.int32),
                jnp.zeros((), bool),
                jnp.asarray(boot, jnp.int32),
            )
        )
        hold_ins.append(inputs[hold_rows])
        hold_tgs.append(targets[hold_rows])
    carry = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *carries)
    train_size = carries[0][5].shape[1]
    batch = min(spec.batch_size, train_size)
    epoch_fn = _epoch_fn(spec, dim, train_size // batch, batch)
    data_in, data_tg = jnp.asarray(inputs), jnp.asarray(targets)
    hold_in, hold_tg = jnp.asarray(np.stack(hold_ins)), jnp.asarray(np.stack(hold_tgs))

    key = jax.random.fold_in(keys[0], 7)
    epoch = 0
    while True:
        epoch += 1
        key, sub = jax.random.split(key)
        carry, values = epoch_fn(
            carry, jax.random.split(sub, num_seeds), data_in, data_tg, hold_in, hold_tg
        )
        done = np.asarray(carry[4])
        if log is not None:
            log(epoch, {k: np.asarray(v) for k, v in values.items()})
        if done.all() or (spec.max_epochs is not None and epoch >= spec.max_epochs):
            break

    train, best, best_loss = carry[0], carry[1], np.asarray(carry[2])
    params = {"params": {**train.state.params["params"], "members": best}}
    elites = np.argsort(best_loss, axis=-1)[:, : spec.num_elites].astype(np.int32)
    fitted = Ensemble(
        params=params,
        elites=jnp.asarray(elites),
        input_mean=train.input_mean,
        input_std=train.input_std,
    )
    elite_loss = np.take_along_axis(best_loss, elites, axis=-1).mean(axis=-1)
    summary = {
        "epochs": epoch,
        "holdout_mse_elites": [float(x) for x in elite_loss],
        "seconds": time.perf_counter() - started,
        "train_rows": int(train_size),
        "holdout_rows": int(hold_in.shape[1]),
    }
    return fitted, summary


def fit_dataset(spec: ModelSpec, dataset, keys: jax.Array, log=None) -> tuple[Ensemble, dict]:
    """:func:`fit` on the rows of a (device, possibly padded) dataset that hold data."""
    rows = num_rows(dataset)
    return fit(
        spec,
        dataset.observations[:rows],
        dataset.actions[:rows],
        dataset.rewards[:rows],
        dataset.next_observations[:rows],
        keys,
        log=log,
    )


__all__ = [
    "PENALTIES",
    "Ensemble",
    "ModelFields",
    "ModelSpec",
    "decay_loss",
    "distribution",
    "fit",
    "fit_dataset",
    "gaussian_nll_loss",
    "holdout_mse",
    "init",
    "network",
    "penalty",
    "step",
]
