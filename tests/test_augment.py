"""Data augmentation: EDM diffusion (SynthER) against NumPy references and a 2-D
mixture, synthetic transitions as a dataset."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.curate import synther
from offrl.curate.fit import EMA, fit
from offrl.data import DatasetError, DatasetInfo, load_dataset, validate
from offrl.data.formats import read_minari, write_minari
from offrl.nn import diffusion
from offrl.nn.diffusion import EDMConfig


def linear_denoiser(params, x, c_noise):
    return x @ params["w"] + c_noise[:, None] * params["b"]


def numpy_denoise(params, x, sigma, sigma_data):
    sigma = np.broadcast_to(np.asarray(sigma, np.float64), x.shape[:1])[:, None]
    c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
    c_out = sigma * sigma_data / np.sqrt(sigma**2 + sigma_data**2)
    c_in = 1 / np.sqrt(sigma**2 + sigma_data**2)
    c_noise = 0.25 * np.log(sigma)
    w, b = np.asarray(params["w"], np.float64), np.asarray(params["b"], np.float64)
    return c_skip * x + c_out * ((c_in * x) @ w + c_noise * b)


PARAMS = {
    "w": jnp.asarray([[0.5, -0.2, 0.1], [0.3, 0.8, 0.0], [-0.4, 0.1, 0.6]]),
    "b": jnp.asarray([0.2, -0.1, 0.05]),
}


def test_edm_loss_matches_numpy():
    config = EDMConfig(sigma_data=0.7)
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    key = jax.random.PRNGKey(3)
    loss = diffusion.denoising_loss(linear_denoiser, PARAMS, jnp.asarray(x), key, config)
    sigma_key, noise_key = jax.random.split(key)
    sigma = np.exp(-1.2 + 1.2 * np.asarray(jax.random.normal(sigma_key, (16,)), np.float64))
    noise = np.asarray(jax.random.normal(noise_key, (16, 3)), np.float64)
    estimate = numpy_denoise(PARAMS, x + sigma[:, None] * noise, sigma, 0.7)
    weight = (sigma**2 + 0.49) / (sigma * 0.7) ** 2
    expected = np.mean(np.mean((estimate - x) ** 2, axis=1) * weight)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)


def test_sampler_schedule_and_one_heun_step_match_numpy():
    config = EDMConfig(sample_steps=8)
    n, rho = 8, 7.0
    i = np.arange(n)
    expected = (80 ** (1 / rho) + i / (n - 1) * (0.002 ** (1 / rho) - 80 ** (1 / rho))) ** rho
    levels = np.asarray(diffusion.noise_levels(config))
    np.testing.assert_allclose(levels, np.r_[expected, 0.0], rtol=1e-5)
    gamma = min(80 / 8, math.sqrt(2) - 1)
    rng = np.random.default_rng(1)
    x, noise = rng.normal(size=(2, 5, 3))
    for sigma, sigma_next, churned in ((20.0, 10.0, True), (60.0, 50.0, False), (0.01, 0.0, False)):
        got = diffusion.sampler_step(
            linear_denoiser, PARAMS, jnp.asarray(x, jnp.float32), jnp.float32(sigma),
            jnp.float32(sigma_next), jnp.asarray(noise, jnp.float32), config,
        )  # fmt: skip
        g = gamma if churned else 0.0
        sigma_hat = sigma * (1 + g)
        x_hat = x + math.sqrt(sigma_hat**2 - sigma**2) * 1.003 * noise
        slope = (x_hat - numpy_denoise(PARAMS, x_hat, sigma_hat, 1.0)) / sigma_hat
        want = x_hat + (sigma_next - sigma_hat) * slope
        if sigma_next > 0:
            slope_next = (want - numpy_denoise(PARAMS, want, sigma_next, 1.0)) / sigma_next
            want = x_hat + 0.5 * (sigma_next - sigma_hat) * (slope + slope_next)
        np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=1e-4)


def test_ema_follows_the_released_schedule():
    ema = EMA(decay=0.995, every=10, start=100)
    average = {"p": jnp.zeros(())}
    # Copies the parameters through update 100, then moves only every 10th update.
    assert float(ema.update(average, {"p": jnp.ones(())}, jnp.int32(100))["p"]) == 1.0
    assert float(ema.update(average, {"p": jnp.ones(())}, jnp.int32(105))["p"]) == 0.0
    at_200 = float(ema.update(average, {"p": jnp.ones(())}, jnp.int32(200))["p"])
    np.testing.assert_allclose(at_200, (1 + 99) ** (-2 / 3), rtol=1e-5)  # 1 - decay(t = 99)
    late = float(ema.update(average, {"p": jnp.ones(())}, jnp.int32(100_000))["p"])
    np.testing.assert_allclose(late, 0.005, rtol=1e-4)  # decay capped at 0.995


def test_fit_returns_the_moving_average_when_asked():
    """Plain SGD on (p - 1)^2 from p = 0: fit returns the last iterate, or with an EMA
    the average the released schedule gives (checked against a NumPy recursion)."""
    import optax

    def loss(params, key):
        return (params["p"] - 1.0) ** 2

    sgd = optax.sgd(0.05)
    start = {"p": jnp.zeros(())}
    last, _ = fit(start, loss, 60, 0.0, jax.random.PRNGKey(0), sgd)
    ema = EMA(decay=0.9, every=3, start=10)
    average, _ = fit(start, loss, 60, 0.0, jax.random.PRNGKey(0), sgd, ema)
    p, a = 0.0, 0.0
    for step in range(1, 61):
        p = p - 0.05 * 2 * (p - 1.0)
        t = max(step - 10 - 1, 0)
        decay = 0.0 if step <= 10 or t == 0 else min(0.9, 1 - (1 + t) ** (-2 / 3))
        if step <= 10 or step % 3 == 0:
            a = decay * a + (1 - decay) * p
    np.testing.assert_allclose(float(last["p"]), p, rtol=1e-5)
    np.testing.assert_allclose(float(average["p"]), a, rtol=1e-5)
    assert abs(a - p) > 1e-3


def test_diffusion_reproduces_a_two_dimensional_gaussian_mixture():
    """Three components with different weights, means and covariances: the samples'
    mean, covariance and component shares match the mixture's (measured: mean within
    0.05, covariance within 0.1, shares within 0.03)."""
    rng = np.random.default_rng(0)
    means = np.asarray([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]])
    scales = np.asarray([[0.4, 0.2], [0.3, 0.5], [0.25, 0.25]])
    weights = np.asarray([0.5, 0.3, 0.2])
    component = rng.choice(3, 6000, p=weights)
    data = means[component] + scales[component] * rng.normal(size=(6000, 2))
    mean, std = data.mean(0), data.std(0)
    standardized = jnp.asarray((data - mean) / std, jnp.float32)
    network = diffusion.ResidualMLPDenoiser(2, width=128, depth=2)
    params = network.init(jax.random.PRNGKey(0), standardized[:1], jnp.zeros(1))
    config = EDMConfig(sample_steps=64)

    def loss(params, key):
        rows_key, noise_key = jax.random.split(key)
        rows = jax.random.randint(rows_key, (256,), 0, 6000)
        return diffusion.denoising_loss(
            network.apply, params, standardized[rows], noise_key, config
        )

    params, _ = fit(params, loss, 4000, 1e-3, jax.random.PRNGKey(1), ema=EMA())
    samples = diffusion.sample(network.apply, params, jax.random.PRNGKey(2), 4000, 2, config)
    samples = np.asarray(samples) * std + mean
    np.testing.assert_allclose(samples.mean(0), data.mean(0), atol=0.1)
    np.testing.assert_allclose(np.cov(samples.T), np.cov(data.T), atol=0.2)
    nearest = np.argmin(((samples[:, None] - means[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(np.bincount(nearest, minlength=3) / 4000, weights, atol=0.05)


def test_synthetic_transitions_form_a_dataset(tmp_path):
    """Terminations thresholded at 0.5 (else truncated: bootstrapped), actions clipped
    to the bounds, one-step episodes marked synthetic; a fitted model's samples mixed
    with the real rows validate, round-trip with their card, and train."""
    from offrl.cli import main

    layout = synther.Layout(observation_dim=2, action_dim=1)
    vectors = np.asarray(
        [[0.1, 0.2, 3.0, 1.0, 0.3, 0.4, 0.2], [0.5, 0.6, -0.4, -1.0, 0.7, 0.8, 0.7]], np.float32
    )
    info = DatasetInfo(action_low=(-2.0,), action_high=(2.0,))
    made = validate(synther.vectors_to_dataset(vectors, layout, info))
    np.testing.assert_array_equal(made.actions[:, 0], np.float32([2.0, -0.4]))
    np.testing.assert_array_equal(made.terminations, [False, True])
    np.testing.assert_array_equal(made.truncations, [True, False])
    np.testing.assert_array_equal(made.rewards, [1.0, -1.0])
    assert made.num_episodes == 2 and dict(made.info.subsets)["synthetic"] == (0, 1)

    real = load_dataset("suite:pendulum-mixed").select_episodes(range(10))
    config = synther.Config(width=64, depth=2, steps=300, sample_batch=256)
    mixed, model = synther.augment(real, 500, config, mix=True)
    mixed = validate(mixed)
    assert mixed.size == real.size + 500
    assert len(dict(mixed.info.subsets)["real"]) == 10
    np.testing.assert_array_equal(mixed.subset("real").observations, real.observations)
    assert model.losses[-100:].mean() < model.losses[:100].mean()
    assert model.mean[-1] == 0.0 and model.std[-1] == 1.0  # terminations stay 0/1 (released)
    np.testing.assert_allclose(model.std[:3], real.observations.std(0, ddof=1) + 1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="positive"):
        synther.augment(real, 0, config)

    main(["data", "augment", "synther", "suite:pendulum-mixed", "--output", str(tmp_path / "s"),
          "--samples", "300", "--steps", "50", "--width", "32", "--depth", "1",
          "--synthetic-only"])  # fmt: skip
    written = read_minari(tmp_path / "s")
    assert written.size == 300 and dict(written.info.subsets)["synthetic"] == tuple(range(300))
    card = (tmp_path / "s" / "data" / "metadata.json").read_text()
    assert '"offrl_synthetic"' in card and '"synther"' in card
    write_minari(mixed, tmp_path / "mixed")
    main(["train", "td3_bc", "--dataset", str(tmp_path / "mixed"), "--run-dir",
          str(tmp_path / "run"), "--steps", "20", "--eval-every", "0",
          "--heldout-episodes", "0"])  # fmt: skip


UMAZE = [[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 1, 1, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]]


def maze_segment(positions, goal):
    positions = np.asarray(positions, np.float64)
    velocities = np.vstack([np.diff(positions, axis=0) / 0.1, np.zeros((1, 2))])
    observations = np.hstack([positions, velocities, np.tile(goal, (len(positions), 1))])
    return {"observations": observations, "actions": velocities[:-1] / 10.0}


def test_guda_predicate_operations_and_walls():
    """In the U-maze (goal at the bottom-left), a segment walking the corridor toward
    the goal is progress, the same one reversed is not, and so is not one that only
    nears the goal in a straight line through the wall; a translation keeps the
    segment's shape, a reflection mirrors positions, velocities and forces; a segment
    into a wall is invalid."""
    from offrl.curate import guda
    from offrl.envs.pointmaze import MazeGeometry

    geometry = MazeGeometry(UMAZE)
    goal = np.asarray([-1.0, -1.0])
    toward = maze_segment(np.linspace([1.0, 1.0], [1.0, -0.5], 8), goal)  # down the right arm
    away = {
        "observations": toward["observations"][::-1].copy(),
        "actions": -toward["actions"][::-1].copy(),
    }
    progress = guda.makes_progress(geometry)
    assert progress(toward) and not progress(away)
    assert not guda.makes_progress(geometry, margin=2.0)(toward)  # falls by 1.5 < 2
    # Leftward on the top arm: the straight-line distance to the goal falls (2.15 ->
    # 2.0) but the way around the U gets longer; rightward is the progress.
    leftward = maze_segment(np.linspace([-0.2, 1.0], [-1.0, 1.0], 8), goal)
    rightward = maze_segment(np.linspace([-1.0, 1.0], [-0.2, 1.0], 8), goal)
    ends = leftward["observations"][[0, -1], :2]
    assert np.linalg.norm(ends[1] - goal) < np.linalg.norm(ends[0] - goal)
    assert not progress(leftward) and progress(rightward)

    rng = np.random.default_rng(0)
    moved = guda.translate(geometry)(toward, rng)
    np.testing.assert_allclose(
        np.diff(moved["observations"][:, :2], axis=0),
        np.diff(toward["observations"][:, :2], axis=0),
    )
    np.testing.assert_array_equal(moved["observations"][:, 2:], toward["observations"][:, 2:])
    shift = moved["observations"][0, :2] - toward["observations"][0, :2]
    np.testing.assert_allclose(shift, np.round(shift))  # whole cells
    for seed in range(6):  # both axes and several lines
        mirrored = guda.reflect(geometry)(toward, np.random.default_rng(seed))
        changed = ~np.isclose(mirrored["observations"][:, :2], toward["observations"][:, :2]).all(0)
        assert changed.sum() <= 1
        axis = int(np.argmax(changed))
        sums = mirrored["observations"][:, axis] + toward["observations"][:, axis]
        np.testing.assert_allclose(sums, sums[0])  # mirrored about one line
        assert (sums[0] / 2 + 2.5) % 1.0 == pytest.approx(0.5)  # a cell's centre line
        velocity = mirrored["observations"][:, 2 + axis]
        np.testing.assert_allclose(velocity, -toward["observations"][:, 2 + axis])
        np.testing.assert_allclose(mirrored["actions"][:, axis], -toward["actions"][:, axis])
        other = 1 - axis
        np.testing.assert_array_equal(
            mirrored["observations"][:, other], toward["observations"][:, other]
        )
    through_wall = maze_segment(np.linspace([-1.0, 1.0], [-1.0, -1.0], 8), goal)
    assert not geometry.free(through_wall["observations"][:, :2]).all()


def test_guda_augments_a_pointmaze_dataset(tmp_path):
    """Kept segments respect the walls and (guided) make progress; the real episodes
    are unchanged; rewards are the task's; the command writes both subsets."""
    from offrl.cli import main
    from offrl.curate import guda
    from offrl.envs.pointmaze import MazeGeometry, goal_reward

    real = load_dataset("suite:pointmaze-operators").select_episodes(range(6))
    config = guda.Config(segments=60, length=10, seed=1)
    out, report = guda.augment_pointmaze(real, config)
    assert report["kept"] == 60 and report["invalid"] > 0 and report["rejected"] > 0
    np.testing.assert_array_equal(out.subset("real").observations, real.observations)
    geometry = MazeGeometry.of(real.info.env_id)
    augmented = out.subset("augmented")
    assert geometry.free(augmented.observations[:, :2]).all()
    progress = guda.makes_progress(geometry)
    for i in range(augmented.num_episodes):
        episode = augmented.select_episodes([i])
        segment = {
            "observations": np.vstack([episode.observations, episode.next_observations[-1:]]),
            "actions": episode.actions,
        }
        assert progress(segment)
    next_obs = augmented.next_observations
    expected = goal_reward(next_obs[:, :2], next_obs[:, 4:6], "Dense" in real.info.env_id)
    np.testing.assert_array_equal(augmented.rewards, expected)
    _, unguided = guda.augment_pointmaze(real, dataclasses.replace(config, guided=False))
    assert unguided["rejected"] == 0 and unguided["kept"] == 60
    with pytest.raises(DatasetError, match="PointMaze"):
        guda.augment_pointmaze(load_dataset("suite:pendulum-mixed"), config)

    source = write_minari(real, tmp_path / "real")
    main(["data", "augment", "guda", str(source), "--output", str(tmp_path / "g"),
          "--segments", "20", "--length", "10", "--unguided"])  # fmt: skip
    written = read_minari(tmp_path / "g")
    assert len(dict(written.info.subsets)["augmented"]) == 20
