"""Value pre-training on action-free trajectories (V-PTR's idea, Bhateja et al. 2023,
on states instead of video).

Trajectories without actions still show which states lead to reward. A value
network ``V(s)`` is fitted to them by TD learning: expectile regression of ``V(s)``
onto ``r + gamma (1 - terminated) V_targ(s')`` (the expectile > 0.5 leans toward the
better of the behaviours in the data, as IQL's value does), with a Polyak-averaged
target. IQL then starts from it (``iql.Config(value_init=FILE)``): its value network
takes the pre-trained weights, and the hidden layers of its actor and critics (their
"encoder"; the critics' first layer on its observation inputs only) take the value
network's hidden layers. The observation standardization the pre-training used is
folded into the first layer, so the weights fit whatever standardization the
training run uses.

Rewards come with the trajectories or from a labeling command (``offrl label
progress`` gives trajectories without rewards a progress reward). The paper's
intention-conditioned value functions on video frames are not reproduced.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from offrl.algos.common import expectile_loss
from offrl.data.dataset import Dataset
from offrl.data.formats.atomic import replace_atomically
from offrl.data.validate import DatasetError
from offrl.nn import VNetwork


@dataclasses.dataclass(frozen=True)
class Config:
    """The pre-training's settings (IQL's value settings by default)."""

    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths: must equal those of the algorithm it initialises."""
    discount: float = 0.99
    """Discount factor gamma."""
    expectile: float = 0.7
    """Expectile of the TD regression (0.5: the behaviour's mean value)."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    batch_size: int = 256
    """Transitions per update."""
    steps: int = 20_000
    """Updates."""
    tau_polyak: float = 0.005
    """Polyak rate of the target network."""
    seed: int = 0
    """Seed of the network and the batches."""


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """A pre-trained value network and the standardization of its inputs."""

    params: dict
    mean: np.ndarray
    std: np.ndarray
    config: Config
    losses: np.ndarray

    def value(self, observations: np.ndarray) -> np.ndarray:
        x = (np.asarray(observations, np.float32) - self.mean) / self.std
        return np.asarray(VNetwork(self.config.hidden_dims).apply(self.params, jnp.asarray(x)))


def pretrain(dataset: Dataset, config: Config | None = None) -> Pretrained:
    """Fit ``V`` by expectile TD on ``dataset``'s ``(s, r, s', terminated)``; its
    actions, if any, are not read."""
    config = config or Config()
    dataset.require("rewards", "value pre-training")
    host = dataset.to_numpy()
    observations = np.asarray(host.observations, np.float32)
    mean, std = observations.mean(0), np.maximum(observations.std(0), 1e-6)
    s = jnp.asarray((observations - mean) / std)
    s_next = jnp.asarray((np.asarray(host.next_observations) - mean) / std)
    r = jnp.asarray(host.rewards, jnp.float32)
    done = jnp.asarray(host.terminations, jnp.float32)
    network = VNetwork(config.hidden_dims)
    key, init_key = jax.random.split(jax.random.PRNGKey(config.seed))
    params = network.init(init_key, s[:1])
    optimizer = optax.adam(config.learning_rate)
    size, batch = s.shape[0], min(config.batch_size, s.shape[0])

    def loss_fn(params, target, rows):
        y = r[rows] + config.discount * (1.0 - done[rows]) * network.apply(target, s_next[rows])
        diff = jax.lax.stop_gradient(y) - network.apply(params, s[rows])
        return jnp.mean(expectile_loss(diff, config.expectile))

    def step(carry, step_key):
        params, target, opt_state = carry
        rows = jax.random.randint(step_key, (batch,), 0, size)
        value, grads = jax.value_and_grad(loss_fn)(params, target, rows)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        target = jax.tree_util.tree_map(
            lambda t, p: (1.0 - config.tau_polyak) * t + config.tau_polyak * p, target, params
        )
        return (params, target, opt_state), value

    run = jax.jit(lambda c, k: jax.lax.scan(step, c, k))
    (params, _, _), losses = run(
        (params, params, optimizer.init(params)), jax.random.split(key, config.steps)
    )
    return Pretrained(params, mean, std, config, np.asarray(losses))


# ------------------------------------------------------------------------------ files
def save(path: str | os.PathLike, pretrained: Pretrained) -> pathlib.Path:
    """Write the pre-trained network (.npz: its layers, standardization, settings)."""
    path = pathlib.Path(path)
    leaves = {
        "/".join(str(getattr(k, "key", k)) for k in key_path): np.asarray(leaf)
        for key_path, leaf in jax.tree_util.tree_flatten_with_path(pretrained.params)[0]
    }
    settings = json.dumps(dataclasses.asdict(pretrained.config))

    def write(tmp: pathlib.Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(
                f, mean=pretrained.mean, std=pretrained.std, settings=np.asarray(settings),
                **{f"param:{k}": v for k, v in leaves.items()},
            )  # fmt: skip

    replace_atomically(path, write)
    return path


def load(path: str | os.PathLike) -> Pretrained:
    """Read a file :func:`save` wrote; a one-line error for anything else."""
    try:
        with np.load(path, allow_pickle=False) as content:
            arrays = {k: content[k] for k in content.files}
        settings = json.loads(str(arrays.pop("settings")))
        settings["hidden_dims"] = tuple(settings["hidden_dims"])
        config = Config(**settings)
        mean, std = arrays.pop("mean"), arrays.pop("std")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(
            f"is not a value pre-training file ({type(error).__name__}: {error})",
            field="value_init",
            source=str(path),
            fix="write one with offrl pretrain value",
        ) from error
    params: dict = {}
    for name, value in arrays.items():
        node = params
        *parents, leaf = name.removeprefix("param:").split("/")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = jnp.asarray(value)
    return Pretrained(params, mean, std, config, np.zeros(0))


# --------------------------------------------------------------- initialising networks
def folded_first_layer(kernel, bias, pretrained: Pretrained, mean, std):
    """The first layer for inputs standardized by ``(mean, std)`` instead of the
    pre-training's ``(m, s)``: ``x_pre = x (std / s) + (mean - m) / s``, so
    ``W' = diag(std / s) W`` and ``b' = b + ((mean - m) / s) W``."""
    ratio = jnp.asarray(std / pretrained.std, jnp.float32)
    shift = jnp.asarray((mean - pretrained.mean) / pretrained.std, jnp.float32)
    return ratio[:, None] * kernel, bias + shift @ kernel


def value_params(pretrained: Pretrained, mean, std) -> dict:
    """The pre-trained value network's parameters for inputs standardized by
    ``(mean, std)``."""
    layers = dict(pretrained.params["params"]["MLP_0"])
    first = layers["Dense_0"]
    kernel, bias = folded_first_layer(first["kernel"], first["bias"], pretrained, mean, std)
    layers["Dense_0"] = {"kernel": kernel, "bias": bias}
    return {"params": {"MLP_0": layers}}


def hidden_layers(value: dict) -> dict:
    """The hidden layers (the "encoder") of a value network's parameters."""
    layers = value["params"]["MLP_0"]
    count = len(layers) - 1  # the last Dense is the value head
    return {f"Dense_{i}": layers[f"Dense_{i}"] for i in range(count)}


def check_shape(pretrained: Pretrained, hidden_dims, observation_dim: int, source: str) -> None:
    if tuple(pretrained.config.hidden_dims) != tuple(hidden_dims) or (
        pretrained.mean.shape[0] != observation_dim
    ):
        raise DatasetError(
            f"holds a {pretrained.mean.shape[0]}-input value network of widths "
            f"{tuple(pretrained.config.hidden_dims)}, but the run has {observation_dim}-D "
            f"observations and widths {tuple(hidden_dims)}",
            field="value_init",
            source=source,
            fix="pre-train on the same observations with the run's --hidden-dims",
        )
