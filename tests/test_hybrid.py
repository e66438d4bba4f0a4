"""Online learning with offline data (issue 26): MOORL, ..."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.algos import moorl, sac


def _batch(rng, size=8, obs_dim=3, act_dim=2):
    return {
        "observations": jnp.asarray(rng.normal(size=(size, obs_dim)), jnp.float32),
        "actions": jnp.asarray(rng.uniform(-1, 1, (size, act_dim)), jnp.float32),
        "rewards": jnp.asarray(rng.normal(size=size), jnp.float32),
        "next_observations": jnp.asarray(rng.normal(size=(size, obs_dim)), jnp.float32),
        "terminations": jnp.zeros(size, jnp.float32),
        "truncations": jnp.zeros(size, jnp.float32),
        "offline": jnp.asarray(np.r_[np.ones(size // 2), np.zeros(size // 2)], jnp.float32),
    }


def _close(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


def _far(a, b):
    return max(float(jnp.abs(x - y).max()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("offline_probability, half", [(1.0, slice(0, 4)), (0.0, slice(4, 8))])
def test_moorl_meta_update_matches_a_hand_computed_reptile_step(offline_probability, half):
    """K inner SAC steps on the chosen buffer's half, then meta += beta (fast - meta)."""
    rng = np.random.default_rng(0)
    config = moorl.Config(
        hidden_dims=(8, 8),
        inner_steps=3,
        meta_step_size=0.25,
        offline_probability=offline_probability,
    )
    batches = [_batch(rng) for _ in range(4)]
    state = moorl.init(config, batches[0], jax.random.PRNGKey(1))
    meta_actor0, meta_critic0 = state.actor.params, state.critic.params
    _close(meta_actor0, state.fast.actor.params)

    # By hand: three plain SAC updates on the chosen half, from the meta weights.
    fast = state.fast
    for batch in batches[:3]:
        fast, _ = sac.update(fast, jax.tree.map(lambda x: x[half], batch), config)
    beta = 0.25
    expected_actor = jax.tree.map(lambda m, f: m + beta * (f - m), meta_actor0, fast.actor.params)
    expected_critic = jax.tree.map(
        lambda m, f: m + beta * (f - m), meta_critic0, fast.critic.params
    )

    for i, batch in enumerate(batches[:3]):
        state, metrics = moorl.update(state, batch, config)
        assert float(metrics["moorl/offline_epoch"]) == offline_probability
        if i < 2:  # the meta weights wait for the K-th inner step
            _close(state.actor.params, meta_actor0)
            _close(state.critic.params, meta_critic0)
    _close(state.actor.params, expected_actor, rtol=1e-5, atol=1e-6)
    _close(state.critic.params, expected_critic, rtol=1e-5, atol=1e-6)
    assert _far(state.actor.params, meta_actor0) > 1e-4
    # The next epoch's fast weights start from the new meta weights; the rest of
    # SAC's state (temperature, targets, optimizer moments) carries over.
    _close(state.fast.actor.params, expected_actor, rtol=1e-5, atol=1e-6)
    _close(state.fast.critic.params, expected_critic, rtol=1e-5, atol=1e-6)
    _close(state.fast.log_alpha.params, fast.log_alpha.params, rtol=1e-6)
    _close(state.fast.target_critic_params, fast.target_critic_params, rtol=1e-6)

    # The meta actor acts.
    obs = batches[0]["observations"]
    np.testing.assert_allclose(
        moorl.act(state, obs, jax.random.PRNGKey(0), True, config),
        sac.act(state.fast.replace(actor=state.actor), obs, jax.random.PRNGKey(0), True, config),
    )


def test_moorl_draws_a_source_per_epoch_and_checks_its_settings():
    rng = np.random.default_rng(1)
    config = moorl.Config(hidden_dims=(8,), inner_steps=2, offline_probability=0.5)
    state = moorl.init(config, _batch(rng), jax.random.PRNGKey(3))
    update = jax.jit(moorl.update, static_argnums=2)
    sources = []
    for _ in range(40):
        state, metrics = update(state, _batch(rng), config)
        sources.append(float(metrics["moorl/offline_epoch"]))
    epochs = np.asarray(sources).reshape(20, 2)
    assert (epochs[:, 0] == epochs[:, 1]).all()  # one source per epoch
    assert 0 < epochs[:, 0].sum() < 20  # both buffers are drawn
    with pytest.raises(ValueError, match="inner_steps"):
        moorl.init(moorl.Config(inner_steps=0), _batch(rng), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="meta_step_size"):
        moorl.init(moorl.Config(meta_step_size=0.0), _batch(rng), jax.random.PRNGKey(0))
    from offrl.run.settings import FinetuneConfig

    with pytest.raises(ValueError, match="offline-ratio 0.5"):
        moorl.online_config(config, FinetuneConfig(offline_ratio=0.3))
    with pytest.raises(ValueError, match="even --batch-size"):
        moorl.online_config(config, FinetuneConfig(batch_size=255))
