"""Uni-O4's offline stage: its losses against NumPy, the gate, and a run through the loop."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from offrl.algos import uni_o4


def np_log_prob(mean, log_std, x):
    z = (x - mean) / np.exp(log_std)
    return (-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)


def test_bc_ensemble_and_ppo_clip_losses_match_numpy():
    rng = np.random.default_rng(0)
    k, b, a = 3, 7, 2
    means = rng.normal(size=(k, 1, a)).astype(np.float32)
    log_stds = rng.normal(scale=0.3, size=(k, 1, a)).astype(np.float32)
    obs = rng.normal(size=(b, 4)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(b, a)).astype(np.float32)

    def apply_fn(params, observations):  # a policy that ignores its input
        shape = (observations.shape[0], a)
        return jnp.broadcast_to(params["m"], shape), jnp.broadcast_to(params["l"], shape)

    params = {"m": jnp.asarray(means), "l": jnp.asarray(log_stds)}
    total, per = uni_o4.bc_ensemble_loss(apply_fn, params, jnp.asarray(obs), actions, 0.1)
    logp = np.stack([np_log_prob(means[i], log_stds[i], actions) for i in range(k)])  # [K, B]
    expected = (-logp - 0.1 * (logp - logp.max(axis=0))).mean(axis=1)
    np.testing.assert_allclose(per, expected, rtol=1e-5)
    np.testing.assert_allclose(total, expected.sum(), rtol=1e-5)

    adv = rng.normal(size=(k, b)).astype(np.float32)
    z = (adv - adv.mean(1, keepdims=True)) / (adv.std(1, ddof=1, keepdims=True) + 1e-8)
    weighted = np.where(z > 0, 0.7, 0.3) * z
    ours = uni_o4.weighted_advantages(jnp.asarray(adv), 0.7)
    np.testing.assert_allclose(ours, weighted, rtol=1e-5)

    new, old = rng.normal(size=(k, b)), rng.normal(size=(k, b))
    ratio = np.exp(new - old)
    clipped = np.clip(ratio, 0.8, 1.2)
    expected = -np.minimum(ratio * weighted, clipped * weighted).mean(axis=1)
    loss, fraction = uni_o4.ppo_clip_loss(
        jnp.asarray(new, jnp.float32), jnp.asarray(old, jnp.float32), jnp.asarray(weighted), 0.2
    )
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    assert float(fraction) == pytest.approx(np.mean(np.abs(ratio - 1) > 0.2))

    # eps decays linearly over the first updates of the run, then holds (the released schedule)
    config = uni_o4.Config(decay_steps=1000, clip_decay_updates=200)
    assert float(uni_o4.clip_ratio_at(0, config)) == pytest.approx(0.25)
    assert float(uni_o4.clip_ratio_at(100, config)) == pytest.approx(0.25 * 0.9)
    assert float(uni_o4.clip_ratio_at(900, config)) == pytest.approx(0.25 * 0.8)


def test_gate_refuses_a_policy_whose_estimated_value_is_lower():
    best = jnp.asarray([1.0, 2.0, 3.0])
    candidate = jnp.asarray([1.5, 1.0, 3.0])  # better, worse, equal
    references = {"w": jnp.zeros((3, 2))}
    params = {"w": jnp.ones((3, 2))}
    kept, new_best, improved = uni_o4.gate(best, candidate, references, params, gated=True)
    np.testing.assert_array_equal(improved, [True, False, False])
    np.testing.assert_array_equal(kept["w"], [[1, 1], [0, 0], [0, 0]])
    np.testing.assert_array_equal(new_best, [1.5, 2.0, 3.0])
    # Ungated, every policy's step is kept, worse or not.
    kept, new_best, improved = uni_o4.gate(best, candidate, references, params, gated=False)
    assert bool(improved.all()) and np.all(np.asarray(kept["w"]) == 1)
    np.testing.assert_array_equal(new_best, candidate)


@pytest.mark.parametrize("gated", [True, False])
def test_uni_o4_runs_through_the_loop_and_counts_its_gate_decisions(gated, tmp_path):
    from offrl.run.rundir import load_run
    from offrl.run.train import TrainConfig, train

    config = uni_o4.Config(
        hidden_dims=(32, 32),
        num_policies=2,
        bc_steps=300,
        value_steps=200,
        critic_steps=200,
        value_hidden_dims=(32,),
        critic_hidden_dims=(32,),
        model_num_models=3,
        model_num_elites=2,
        model_hidden_dims=(32,),
        model_weight_decays=(1e-4, 1e-4),
        model_max_epochs=5,
        amq_starts=32,
        amq_horizon=10,
        gate_every=10,
        gate=gated,
    )
    # 35 updates: the windows ending at updates 10, 20 and 30 decide; the last is open
    train_config = TrainConfig(
        steps=35, steps_per_call=35, checkpoint_every=35, evaluate=False, progress=False
    )
    train("uni_o4", "suite:pendulum-mixed", tmp_path / "run", config, train_config)
    states = load_run(tmp_path / "run").states
    accepted, refused = int(states.accepted[0]), int(states.refused[0])
    assert accepted + refused == 3 * 2  # 3 gates x 2 policies
    if not gated:
        assert refused == 0
    best = np.asarray(states.best_amq[0])
    assert np.all(np.isfinite(best))
    pretrain = (tmp_path / "run" / "pretrain.json").read_text()
    assert "initial_amq" in pretrain and "bc_loss" in pretrain
    assert dataclasses.asdict(config)["gate"] is gated
    # --no-evaluate: nothing was evaluated in the environment
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert "eval/" not in metrics and "heldout/" not in metrics
