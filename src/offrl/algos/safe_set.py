"""Safe-set gated exploration: SAC that explores only inside a safe set learned from
offline data, with optimistic forgetting (after Quessy, Richardson & Ramamoorthy,
"Safe Reinforcement Learning with Minimal Supervision", 2025; CAPABILITIES row 13).

The safe set comes first, from offline data with safety margins and no task
supervision (``offrl safety fit`` / ``offrl train vocbf`` on, e.g.,
``suite:pointrobot-mixed``): V-OCBF's safety critic ``Qc(s, a)`` (the
discounted worst future margin; ``>= 0`` reads "from s, doing a, the data shows a
way to stay safe"). ``offrl finetune safe_set --from VOCBF_RUN`` then learns the
task online with SAC from scratch while the frozen critic gates every action::

    S_t = {(s, a) : min_i Qc_i(s, a) >= tau_t}

For each state the gate scores ``C`` candidates: the policy's own sample first,
then more samples of the policy, then uniform actions, and then the V-OCBF Qc
filter's projection of the policy's action; the first candidate in that order
that lies in ``S_t`` is taken. When none does (the state is already outside the
set), the candidate with the largest ``Qc`` is taken and the step counts as
infeasible. The gate therefore never proposes an action the set rejects while
any candidate is accepted. Evaluation acts through the same gate (with the
policy's mean first).

**Optimistic forgetting** relaxes the set as online experience accumulates, so
a set learned from little data does not hold the agent back for ever::

    tau_t = margin - (margin - floor) * min(1, t / forget_steps)

with ``t`` the update count; ``forget_steps = 0`` keeps ``tau = margin`` (a
fixed gate). SAC learns from every online transition, gated or not.

Settings: SAC's (:mod:`offrl.algos.sac`); ``margin`` 0.05 (the V-OCBF Qc filter
margin that removed 96-100% of the point robot's violations,
docs/benchmarks.md), ``floor`` -0.1, ``forget_steps`` 20,000, 16 policy and 16
uniform candidates. Deviations: the paper's safe set is a classifier of states
from which demonstrations succeeded, and its data come from unsupervised RL;
here the set is V-OCBF's action-value barrier fit on whatever offline data has
margins. The paper's forgetting rule was not read (only its abstract and
summaries): the linear relaxation of the threshold above is this module's
reading of "optimistic forgetting", not the paper's formula. The barrier is not
updated online.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos import sac, vocbf
from offrl.core.registry import OnlineSpec
from offrl.safety.filter import qc_filter

DEFAULT_REWARD_SCALING = "none"
#: The data only taught the safe set: SAC learns from its own online transitions.
ONLINE = OnlineSpec(mixing="online", random_steps=0, learning_starts=1000)
#: The run a gated fine-tuning starts from (its safe set).
BASE_ALGORITHMS = ("vocbf",)
#: The frozen safety critic is not optimized (one object: equal pytree structure).
_META = optax.identity()
#: What ``act`` reads: the actor and the frozen safety critic.
POLICY_FIELDS = ("actor", "qc")


@dataclasses.dataclass(frozen=True)
class Config(sac.Config):
    """Gated exploration settings: SAC's plus the gate's."""

    margin: float = 0.05
    """tau_0: the gate accepts (s, a) with min_i Qc_i(s, a) >= tau."""
    floor: float = -0.1
    """The threshold optimistic forgetting relaxes tau to."""
    forget_steps: int = 20_000
    """Updates over which tau falls linearly from margin to floor; 0: a fixed gate."""
    policy_candidates: int = 16
    """Policy samples the gate scores (the first is the action the policy proposed)."""
    uniform_candidates: int = 16
    """Uniform actions the gate scores after the policy's."""
    qc_hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths of the safety critic (set from the V-OCBF run)."""
    qc_num_critics: int = 2
    """Size of the safety critic ensemble (set from the V-OCBF run)."""
    qc_iterations: int = 5
    """Linearize-and-project steps of the Qc filter candidate."""


@struct.dataclass
class State:
    actor: TrainState
    critic: TrainState
    log_alpha: TrainState
    target_critic_params: dict
    qc: TrainState
    """The frozen safety critic of the V-OCBF run (its optimizer is not used)."""
    key: jax.Array
    step: jax.Array


def _sac(state: State) -> sac.State:
    return sac.State(
        actor=state.actor,
        critic=state.critic,
        log_alpha=state.log_alpha,
        target_critic_params=state.target_critic_params,
        key=state.key,
        step=state.step,
    )


def init(config: Config, example_batch, key: jax.Array) -> State:
    """SAC and a fresh safety critic (a run normally starts from a V-OCBF run instead)."""
    key, sac_key, qc_key = jax.random.split(key, 3)
    base = sac.init(config, example_batch, sac_key)
    qc_config = vocbf.Config(hidden_dims=config.qc_hidden_dims, num_critics=config.qc_num_critics)
    qc = vocbf.init(qc_config, example_batch, qc_key).qc
    return State(**{f: getattr(base, f) for f in _SAC_FIELDS}, qc=qc, key=key, step=base.step)


_SAC_FIELDS = ("actor", "critic", "log_alpha", "target_critic_params")


def config_for_base(config: Config, base_config) -> Config:
    """The safety critic's shape is the V-OCBF run's."""
    return dataclasses.replace(
        config,
        qc_hidden_dims=tuple(base_config.hidden_dims),
        qc_num_critics=int(base_config.num_critics),
    )


def init_from(config: Config, example_batch, key, base_state, base_config) -> State:
    """Fresh SAC; the V-OCBF run's safety critic, frozen."""
    state = init(config, example_batch, key)
    return state.replace(qc=base_state.qc)


def threshold(step, config: Config):
    """``tau_t`` of optimistic forgetting after ``step`` updates."""
    if config.forget_steps <= 0:
        return jnp.asarray(config.margin, jnp.float32)
    progress = jnp.minimum(1.0, step / config.forget_steps)
    return config.margin - (config.margin - config.floor) * progress


def safe_q(state: State, observations, actions):
    """``min_i Qc_i(s, a)``."""
    return state.qc.apply_fn(state.qc.params, observations, actions).min(axis=0)


def _draws(key, config: Config, rows: int, action_dim: int):
    """Standard normal ``[N, P - 1, A]`` and uniform ``[N, U, A]`` draws for the
    candidates; with ``key=None`` fixed ones (NumPy, seed 0, the same for every row), so
    deterministic acting is a function of the observation alone and exports without
    random-number operations."""
    shapes = ((config.policy_candidates - 1, action_dim), (config.uniform_candidates, action_dim))
    if key is None:
        rng = np.random.default_rng(0)
        normal = jnp.asarray(rng.standard_normal(shapes[0]), jnp.float32)[None]
        return normal, jnp.asarray(rng.uniform(-1.0, 1.0, shapes[1]), jnp.float32)[None]
    policy_key, uniform_key = jax.random.split(key)
    return (
        jax.random.normal(policy_key, (rows, *shapes[0])),
        jax.random.uniform(uniform_key, (rows, *shapes[1]), minval=-1.0, maxval=1.0),
    )


def candidates(state: State, observations, first, key, config: Config, tau=None):
    """``[N, C, A]`` candidates per state: ``first`` [N, A], policy samples, uniform
    actions and the Qc filter's projection of ``first`` onto ``Qc >= tau`` plus 1e-4 (so
    float rounding cannot leave it just outside; ``tau`` defaults to the margin)
    (``key=None``: fixed draws)."""
    target = (config.margin if tau is None else tau) + 1e-4
    rows, action_dim = first.shape
    normal, uniform = _draws(key, config, rows, action_dim)
    mean, log_std = state.actor.apply_fn(state.actor.params, observations)
    samples = jnp.tanh(mean[:, None] + jnp.exp(log_std)[:, None] * normal)
    uniform = jnp.broadcast_to(uniform, (rows, config.uniform_candidates, action_dim))
    low, high = -jnp.ones(action_dim, first.dtype), jnp.ones(action_dim, first.dtype)

    def project(observation, action):
        return qc_filter(
            lambda z, v: safe_q(state, z, v),
            observation,
            action,
            low,
            high,
            config.qc_iterations,
            target,
        )[0]

    projected = jax.vmap(project)(observations, first)
    return jnp.concatenate([first[:, None], samples, uniform, projected[:, None]], axis=1)


def gate(state: State, observations, proposals, tau):
    """Per row, the first of ``proposals`` [N, C, A] with ``Qc >= tau``, else the one with
    the largest ``Qc``; returns ``(actions [N, A], feasible [N], their Qc [N])``."""
    rows, count, action_dim = proposals.shape
    repeated = jnp.repeat(observations[:, None], count, axis=1).reshape(rows * count, -1)
    qc = safe_q(state, repeated, proposals.reshape(rows * count, action_dim)).reshape(rows, count)
    accepted = qc >= tau
    feasible = accepted.any(axis=-1)
    index = jnp.where(feasible, jnp.argmax(accepted, axis=-1), jnp.argmax(qc, axis=-1))
    actions = jnp.take_along_axis(proposals, index[:, None, None], axis=1)[:, 0]
    return actions, feasible, jnp.take_along_axis(qc, index[:, None], axis=1)[:, 0]


def gated_actions(state: State, observations, first, key, config: Config):
    """Gate every row of ``observations`` [N, D] whose proposed action is ``first`` [N, A]
    (``key=None``: fixed candidate draws)."""
    tau = threshold(state.step, config)
    proposals = candidates(state, observations, first, key, config, tau)
    return gate(state, observations, proposals, tau)


def update(state: State, batch, config: Config):
    """SAC's update; the safety critic stays frozen."""
    new, metrics = sac.update(_sac(state), batch, config)
    state = state.replace(**{f: getattr(new, f) for f in _SAC_FIELDS}, key=new.key, step=new.step)
    return state, {**metrics, "gate/threshold": threshold(state.step, config)}


def explore(state: State, observations, key, step, config: Config):
    """A policy sample, gated."""
    sample_key, gate_key = jax.random.split(key)
    mean, log_std = state.actor.apply_fn(state.actor.params, observations)
    first = jnp.tanh(mean + jnp.exp(log_std) * jax.random.normal(sample_key, mean.shape))
    return gated_actions(state, observations, first, gate_key, config)[0]


def act(state: State, observations, key, deterministic: bool, config: Config):
    """The policy's action (its mean when deterministic), gated; deterministic acting
    uses fixed candidate draws (a function of the observation alone)."""
    if not deterministic:
        key = jax.random.PRNGKey(0) if key is None else key
        return explore(state, observations, key, state.step, config)
    mean, _ = state.actor.apply_fn(state.actor.params, observations)
    return gated_actions(state, observations, jnp.tanh(mean), None, config)[0]
