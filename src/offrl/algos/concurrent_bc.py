"""Concurrent BC: reinforcement learning from a few demonstrations with a behavior-cloning
loss that stays on during online learning (the finding of "On the importance of
offline data in Procgen/MiniGrid", CAPABILITIES row 24: pre-training by BC helps,
and keeping a BC auxiliary loss while learning online helps more, with as few as
two demonstrations).

Three stages, each an ordinary offrl run:

1. ``offrl train bc --policy gaussian --dataset DEMOS`` (BC pre-training; a
   tanh-Gaussian policy, so it can become a SAC actor);
2. ``offrl finetune concurrent_bc --from BC_RUN``: SAC whose actor starts as the
   BC policy and whose critics start fresh;
3. every update's batch is ``n`` demonstration rows (``offline_ratio`` of the batch,
   placed first by the loop) and ``B - n`` online rows. SAC's critic and actor
   losses use the online rows; the actor adds the BC negative log-likelihood of
   the demonstrations::

       L_pi = E_online [alpha log pi(a~|s) - min_i Q_i(s, a~)]
              + lambda * E_demos [-log pi(a_demo | s)]

   with ``lambda`` = ``bc_weight``. The temperature is SAC's, on the online rows.

The comparisons of the paper are settings of the same run: pre-training alone is
``--mixing online`` (no demonstration rows after the start: plain SAC from the BC
policy), no demonstrations at all is ``offrl finetune sac``.

Settings: SAC's (:mod:`offrl.algos.sac`), ``lambda = 1`` and half of every batch
from the demonstrations (the loop's default ``offline_ratio``). Deviations: the
paper's learner is PPO on MiniGrid/Procgen; offrl's interaction loop is
off-policy, so the learner here is SAC and the demonstrations are sampled with
every update rather than in a separate pass; the BC weight is not annealed;
the paper's lambda was not read (1 is chosen: the NLL and SAC's actor loss are
of similar size at the start of a sparse-reward task, where Q is near 0).
"""

from __future__ import annotations

import dataclasses

import jax

from offrl.algos import sac
from offrl.algos.sac import (  # noqa: F401  (SAC's state and tanh-Gaussian act)
    State,
    act,
    init,
)
from offrl.core.registry import OnlineSpec
from offrl.nn import tanh_gaussian_log_prob

DEFAULT_REWARD_SCALING = "none"
ONLINE = OnlineSpec(mixing="ratio", random_steps=0, learning_starts=1000)
#: The run a concurrent-BC fine-tuning starts from (its BC pre-training).
BASE_ALGORITHMS = ("bc",)


@dataclasses.dataclass(frozen=True)
class Config(sac.Config):
    """Concurrent BC settings: SAC's plus the BC loss's."""

    bc_weight: float = 1.0
    """lambda: weight of the demonstrations' negative log-likelihood in the actor loss."""
    demo_rows: int = 0
    """Rows at the start of every batch that are demonstrations (set from the loop's
    offline_ratio and batch size; 0: every row is RL data and the BC loss is off)."""


def online_config(config: Config, finetune_config=None) -> Config:
    """The demonstration rows of every batch, from the loop's sampling."""
    if finetune_config is None:
        return config
    mixing = finetune_config.mixing
    if mixing == "union":
        raise ValueError(
            "concurrent_bc needs demonstrations apart from online rows: use --mixing ratio "
            "(the default) or --mixing online (pre-training alone)"
        )
    rows = (
        0
        if mixing == "online"
        else round(finetune_config.offline_ratio * finetune_config.batch_size)
    )
    if mixing != "online" and not 0 < rows < finetune_config.batch_size:
        raise ValueError(
            f"--offline-ratio {finetune_config.offline_ratio} leaves no demonstration or no "
            f"online rows in a batch of {finetune_config.batch_size}"
        )
    return dataclasses.replace(config, demo_rows=int(rows))


def config_for_base(config: Config, base_config) -> Config:
    """The actor's shape is the BC policy's."""
    if getattr(base_config, "policy", None) != "gaussian":
        raise ValueError(
            "the BC run must have a tanh-Gaussian policy to become the SAC actor: train it "
            "with offrl train bc --policy gaussian"
        )
    if base_config.layer_norm or base_config.dropout_rate:
        raise ValueError(
            "the BC run uses LayerNorm or dropout, which the SAC actor has not: train it "
            "without --layer-norm and --dropout-rate"
        )
    return dataclasses.replace(config, hidden_dims=tuple(base_config.hidden_dims))


def init_from(config: Config, example_batch, key, base_state, base_config) -> State:
    """SAC with the BC policy as its actor (fresh critics and temperature)."""
    state = sac.init(config, example_batch, key)
    return state.replace(actor=state.actor.replace(params=base_state.actor.params))


def bc_nll(actor_params, state: State, demos) -> jax.Array:
    """Mean ``-log pi(a_demo | s)`` over the demonstration rows (actions clipped to
    ``|a| <= 1 - 1e-5`` before ``atanh``, as BC's loss)."""
    mean, log_std = state.actor.apply_fn(actor_params, demos["observations"])
    return -tanh_gaussian_log_prob(mean, log_std, demos["actions"], eps=1e-5).mean()


def update(state: State, batch, config: Config):
    n = config.demo_rows
    if n == 0:  # pre-training alone, or the trainer's own batches
        return sac.update(state, batch, config)
    demos = jax.tree.map(lambda x: x[:n], batch)
    online = jax.tree.map(lambda x: x[n:], batch)

    def policy_loss(actor_params, state, online, config, key):
        loss, (metrics, log_prob) = sac.actor_loss(actor_params, state, online, config, key)
        nll = bc_nll(actor_params, state, demos)
        total = loss + config.bc_weight * nll
        metrics = {**metrics, "actor/loss": total, "actor/sac_loss": loss, "actor/bc_nll": nll}
        return total, (metrics, log_prob)

    return sac.update(state, online, config, policy_loss=policy_loss)
