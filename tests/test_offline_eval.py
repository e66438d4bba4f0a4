"""Offline evaluation: FQE on an MDP with a known value, diagnostics on synthetic
curves, ranking statistics and selector scoring against hand-computed values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import linear_system

from offrl.data import DatasetInfo, from_episodes, validate
from offrl.evaluate.diagnostics import diagnose
from offrl.evaluate.fqe import FQEConfig, bootstrap_rows, discounted_episode_returns, fqe
from offrl.evaluate.selection import pooled_ranking, rank_selectors
from offrl.evaluate.statistics import performance_profile, rankdata, spearman


def chain_dataset(n=6, episodes=300, horizon=15, seed=0):
    """A chain of ``n`` one-hot states; action > 0 moves right, else left (floored at 0).
    Reaching state ``n - 1`` pays 1 and terminates. Behavior: uniform random actions,
    episodes start in a random non-goal state."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(episodes):
        s = int(rng.integers(0, n - 1))
        obs, acts, rews, terms = [], [], [], []
        for _ in range(horizon):
            obs.append(np.eye(n)[s])
            a = rng.uniform(-1, 1)
            acts.append([a])
            s = min(s + 1, n - 1) if a > 0 else max(s - 1, 0)
            rews.append(1.0 if s == n - 1 else 0.0)
            terms.append(s == n - 1)
            if terms[-1]:
                break
        obs.append(np.eye(n)[s])
        truncations = np.zeros(len(rews), bool)
        truncations[-1] = not terms[-1]
        out.append(
            {
                "observations": np.asarray(obs, np.float32),
                "actions": np.asarray(acts, np.float32),
                "rewards": np.asarray(rews, np.float32),
                "terminations": np.asarray(terms),
                "truncations": truncations,
            }
        )
    info = DatasetInfo(name="chain", action_low=(-1.0,), action_high=(1.0,))
    return validate(from_episodes(out, info))


def test_fqe_recovers_the_value_of_a_chain_policy():
    n, gamma = 6, 0.9
    data = chain_dataset(n)
    start_states = np.argmax(np.asarray(data.observations)[np.asarray(data.episode_starts)], 1)
    # Going right from state s reaches the goal after n-1-s moves; the reward comes
    # on the last one: V = gamma^(n-2-s). Going left never reaches it: V = 0.
    truth_right = np.mean(gamma ** (n - 2 - start_states))
    right = lambda o: np.full((len(o), 1), 0.5, np.float32)  # noqa: E731
    left = lambda o: np.full((len(o), 1), -0.5, np.float32)  # noqa: E731
    config = FQEConfig(
        updates=6000,
        min_updates=1000,
        discount=gamma,
        hidden_dims=(64, 64),
        bootstrap=4,
        batch_size=128,
    )
    result = fqe(data, [right, left], config)
    # The fits stop once the estimates settle, well before the maximum, and are right.
    assert 1000 < result.updates < 6000 and result.history[-1][0] == result.updates
    assert abs(result.value[0] - truth_right) < 0.05 * truth_right
    assert abs(result.value[1]) < 0.1
    assert result.fits.shape == (2, 4)
    assert np.all(result.low <= result.value) and np.all(result.value <= result.high)
    # The behavior's value is the Monte Carlo mean of the episodes' discounted returns.
    assert result.behavior_value == pytest.approx(discounted_episode_returns(data, gamma).mean())


def test_fqe_settles_only_when_every_estimate_holds_still_in_its_place():
    from offrl.evaluate.fqe import _settled

    config = FQEConfig(updates=10_000, min_updates=2000, settle_window=1000, tolerance=0.01)

    def history(*values, every=500):
        return [(every * (i + 1), np.asarray(v, float)) for i, v in enumerate(values)]

    assert _settled(history(*[[-400.0, -300.0]] * 4), config)
    # 1% of the mean absolute estimate (350) is 3.5: a move of 3 settles, 4 does not.
    assert _settled(history([0, 0], [-400, -300], [-400, -300], [-403, -300]), config)
    assert not _settled(history([0, 0], [-400, -300], [-400, -300], [-404, -300]), config)
    # Estimates within the tolerance (3 here) of each other may trade places ...
    assert _settled(history([0, 0], [-300.5, -301], [-301, -301], [-301, -300.5]), config)
    # ... but not two that end further apart, even when neither moved too far.
    assert not _settled(history([0, 0], [-301, -299], [-300, -300], [-298, -302]), config)
    assert _settled(history([0, 0], [-301, -299], [-300, -300], [-302, -298]), config)
    # Before min_updates, and without an estimate a whole window back, never.
    assert not _settled(history(*[[-400, -300]] * 3), config)
    late = [(2000, np.array([-400.0, -300.0])), (2500, np.array([-400.0, -300.0]))]
    assert not _settled(late, config)
    assert not _settled(history(*[[-400, -300]] * 4), dataclasses.replace(config, tolerance=None))


def test_fqe_work_scales_to_the_candidates(small_dataset):
    config = FQEConfig()
    assert [config.fits_per_policy(p) for p in (1, 8, 10, 16, 20, 40, 100)] == [5, 5, 4, 2, 2, 0, 0]
    assert FQEConfig(bootstrap=3).fits_per_policy(100) == 3
    thorough = FQEConfig.thorough()
    assert (thorough.updates, thorough.tau, thorough.hidden_dims, thorough.tolerance) == (
        10_000,
        0.05,
        (256, 256),
        None,
    )
    assert thorough.fits_per_policy(100) == 5
    # Without a tolerance every fit runs every update; one full-data fit per policy.
    policy = lambda o: np.zeros((len(o), 2), np.float32)  # noqa: E731
    fixed = fqe(
        small_dataset,
        [policy] * 40,
        FQEConfig(
            updates=20, check_every=10, tolerance=None, work=40 * 20, hidden_dims=(8,), batch_size=8
        ),
    )
    assert fixed.updates == 20 and fixed.fits.shape == (40, 1)
    assert [n for n, _ in fixed.history] == [10, 20]


def test_discounted_episode_returns_by_hand(small_dataset):
    returns = discounted_episode_returns(small_dataset, 0.5)
    rewards = np.asarray(small_dataset.rewards)
    first = rewards[:5] @ (0.5 ** np.arange(5))
    assert returns[0] == pytest.approx(first)
    assert discounted_episode_returns(small_dataset, 1.0) == pytest.approx(
        small_dataset.episode_returns()
    )


def test_bootstrap_rows_resample_whole_episodes():
    starts, lengths = np.array([0, 4, 10]), np.array([4, 6, 3])
    rows, counts = bootstrap_rows(starts, lengths, 13, np.random.default_rng(1))
    assert rows.shape == (13,) and counts.sum() >= 1
    # Every row lies in an episode that was drawn.
    episode_of = np.searchsorted(starts, rows, side="right") - 1
    assert set(episode_of) <= set(np.flatnonzero(counts))


def test_fqe_rejects_bad_input(small_dataset):
    policy = lambda o: np.zeros((len(o), 2), np.float32)  # noqa: E731
    with pytest.raises(ValueError, match="discount"):
        fqe(small_dataset, [policy], FQEConfig(discount=1.0, updates=10))
    with pytest.raises(ValueError, match="updates"):
        fqe(small_dataset, [policy], FQEConfig(updates=0))
    with pytest.raises(ValueError, match="next_actions must be"):
        fqe(
            small_dataset,
            config=FQEConfig(updates=10),
            next_actions=np.zeros((1, 3, 2)),
            start_actions=np.zeros((1, 3, 2)),
        )


# ----------------------------------------------------------------- diagnostics
STEPS = np.arange(1, 11) * 1000


def kinds(verdicts):
    return [v.kind for v in verdicts]


def test_diagnose_overfitting_names_the_peak():
    q = np.array([1, 3, 5, 7, 8, 7.5, 6, 5, 4, 3.5])
    verdicts = diagnose(STEPS, q, td_error=np.full(10, 0.1))
    assert kinds(verdicts) == ["overfitting"]
    assert verdicts[0].step == 5000
    assert "5000" in verdicts[0].recommendation


def test_diagnose_healthy_run_is_ok():
    q = 10 - 9 * np.exp(-np.arange(10.0))  # rises and settles
    td = np.linspace(1.0, 0.2, 10)
    assert kinds(diagnose(STEPS, q, td)) == ["ok"]


def test_diagnose_still_rising_is_not_converged():
    q = np.linspace(1, 10, 10)  # +1 per point: 20% of the final value over the last 2
    td = np.linspace(1.0, 0.2, 10)
    verdicts = diagnose(STEPS, q, td)
    assert kinds(verdicts) == ["not-converged"]
    assert "train longer" in verdicts[0].recommendation


def test_diagnose_underfitting_when_td_error_stays_high():
    q = np.full(10, 2.0)
    td = np.full(10, 1.5)
    verdicts = diagnose(STEPS, q, td)
    assert kinds(verdicts) == ["underfitting"]
    assert "capacity" in verdicts[0].recommendation


def test_diagnose_divergence_and_nan():
    q = np.linspace(1, 500, 10)
    verdicts = diagnose(STEPS, q, None, q_bound=100.0)
    assert "diverging" in kinds(verdicts)
    assert verdicts[0].step == 3000  # linspace: 1, 56.4, 111.9 (the first above 100), ...
    q_nan = q.copy()
    q_nan[6] = np.nan
    assert kinds(diagnose(STEPS, q_nan)) == ["diverging"]
    assert kinds(diagnose(STEPS, None)) == ["no-critic"]
    with pytest.raises(ValueError, match="points"):
        diagnose(STEPS, q[:5])


# ----------------------------------------------------------------- statistics
def test_rankdata_and_spearman_by_hand():
    assert rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # d = rank differences (0, 1, -1, 0): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 30), rng.normal(size=30)
    assert spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)


def test_performance_profile_by_hand():
    scores = np.array([[10.0, 50.0], [30.0, 70.0], [60.0, 90.0]])  # [runs, tasks]
    out = performance_profile(scores, np.array([0.0, 40.0, 80.0]), reps=200)
    # tau=40: task 0 has 1/3 above, task 1 has 3/3 -> mean 2/3; tau=80: (0 + 1/3)/2.
    assert out["fraction"] == pytest.approx([1.0, 2 / 3, 1 / 6])
    assert np.all(out["low"] <= out["fraction"] + 1e-12)
    assert np.all(out["fraction"] <= out["high"] + 1e-12)


# ----------------------------------------------------------------- selectors
def synthetic_analysis():
    # 4 checkpoints x 2 seeds; true normalized scores and two selectors' signals.
    return {
        "seeds": [0, 1],
        "true_normalized": [[10, 20], [40, 30], [30, 50], [20, 40]],
        "true_return": [[1, 2], [4, 3], [3, 5], [2, 4]],
        "signals": {
            "fqe": [[1, 1], [4, 2], [3, 5], [2, 3]],  # ranks both seeds perfectly
            "validation": [[-4, -4], [-3, -3], [-2, -2], [-1, -1]],  # prefers the last
            "last": [[0, 0], [1, 1], [2, 2], [3, 3]],
            "q_peak": None,
            "critic": None,
        },
    }


def test_rank_selectors_by_hand():
    ranking = rank_selectors(synthetic_analysis())
    assert ranking["score"] == "normalized score"
    fqe_row = ranking["selectors"]["fqe"]
    # seed 0: perfect ranking (rho 1, regret 0); seed 1: ranks 1,2,4,3 vs 1,2,4,3 -> 1.
    assert fqe_row["spearman"] == pytest.approx(1.0)
    assert fqe_row["regret"] == pytest.approx(0.0)
    last = ranking["selectors"]["last"]
    # seed 0 picks 20 (best 40): regret 20; seed 1 picks 40 (best 50): regret 10.
    assert last["regret"] == pytest.approx(15.0)
    assert "q_peak" not in ranking["selectors"]


def test_pooled_ranking_over_runs():
    a = synthetic_analysis()
    pooled = pooled_ranking([a, a])
    assert pooled["fqe"]["candidates"] == 16
    assert pooled["fqe"]["regret"] == pytest.approx(0.0)
    assert pooled["validation"]["regret"] == pytest.approx(50 - 20)


def test_normalized_value_uses_discounted_references():
    from offrl.envs.registry import get_task, normalized_value

    task = get_task("hopper")
    assert normalized_value(task.random_value, "hopper", 0.99) == pytest.approx(0.0)
    assert normalized_value(task.expert_value, "Hopper-v5", 0.99) == pytest.approx(100.0)
    assert normalized_value(100.0, "hopper", 0.9) is None  # references are at 0.99
    assert normalized_value(100.0, "unknown-task", 0.99) is None  # no references at all
    walker = get_task("walker2d")  # offrl's own references carry values too
    assert normalized_value(walker.expert_value, "walker2d", 0.99) == pytest.approx(100.0)


# ----------------------------------------------------------------- run analysis and report
@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A TD3+BC and a BC run on the Pendulum suite: 3 checkpoints x 2 seeds each,
    evaluated at every checkpoint."""
    from offrl.algos import bc, td3_bc
    from offrl.run.train import TrainConfig, train

    root = tmp_path_factory.mktemp("offline-runs")
    config = TrainConfig(
        heldout_episodes=10,
        steps=300,
        eval_every=100,
        checkpoint_every=100,
        eval_episodes=2,
        seeds=(0, 1),
        steps_per_call=100,
        progress=False,
    )
    train(
        "td3_bc",
        "suite:pendulum-mixed",
        root / "td3_bc",
        td3_bc.Config(hidden_dims=(32, 32)),
        config,
    )
    train("bc", "suite:pendulum-mixed", root / "bc", bc.Config(hidden_dims=(32, 32)), config)
    return root


TINY_FQE = FQEConfig(updates=200, bootstrap=2, hidden_dims=(32, 32), batch_size=64)


def test_analyze_run_tables_diagnostics_and_cache(tiny_runs):
    from offrl.evaluate.selection import analyze_run, choose

    analysis = analyze_run(tiny_runs / "td3_bc", fqe_config=TINY_FQE)
    assert analysis["steps"] == [100, 200, 300] and analysis["seeds"] == [0, 1]
    for name in ("fqe", "q_peak", "critic", "validation", "last"):
        assert np.asarray(analysis["signals"][name]).shape == (3, 2), name
    assert np.isfinite(analysis["signals"]["fqe"]).all()
    assert np.asarray(analysis["fqe_fits"]).shape == (3, 2, 2)
    assert np.all(np.asarray(analysis["fqe_low"]) <= np.asarray(analysis["fqe_high"]))
    # Pendulum has discounted references, and the run logged evaluations at every step.
    assert np.asarray(analysis["fqe_normalized"]).shape == (3, 2)
    assert all(row is not None and len(row) == 2 for row in analysis["true_normalized"])
    # The verdicts per seed are the workflow's rules applied to the run's own curves.
    from offrl.evaluate.diagnostics import diagnose

    assert len(analysis["diagnostics"]) == 2
    for s in range(2):
        verdicts = diagnose(
            analysis["steps"],
            np.asarray(analysis["signals"]["q_peak"])[:, s],
            np.asarray(analysis["td_error"])[:, s],
            q_bound=analysis["q_bound"],
        )
        assert analysis["diagnostics"][s] == [v.as_dict() for v in verdicts]
        assert all(v["kind"] for v in analysis["diagnostics"][s])
    c, s = choose(analysis, "fqe")
    assert analysis["signals"]["fqe"][c][s] == np.max(analysis["signals"]["fqe"])
    # A second call reads the cache instead of refitting.
    cache = tiny_runs / "td3_bc" / "offline" / "analysis.json"
    before = cache.stat().st_mtime_ns
    assert analyze_run(tiny_runs / "td3_bc", fqe_config=TINY_FQE) == analysis
    assert cache.stat().st_mtime_ns == before


def test_analyze_run_without_critic_and_with_the_wrong_dataset(tiny_runs):
    from offrl.evaluate.selection import analyze_run
    from offrl.run.train import RunError

    analysis = analyze_run(tiny_runs / "bc", fqe_config=TINY_FQE)
    assert analysis["signals"]["q_peak"] is None and analysis["signals"]["critic"] is None
    assert analysis["diagnostics"][0][0]["kind"] == "no-critic"
    with pytest.raises(RunError, match="not the one it was trained on"):
        analyze_run(tiny_runs / "bc", dataset="suite:pendulum-expert", fqe_config=TINY_FQE)
    with pytest.raises(RunError, match="no checkpoints at steps"):
        analyze_run(tiny_runs / "bc", steps=[150], fqe_config=TINY_FQE)


def test_report_is_self_contained_and_every_image_decodes(tiny_runs, tmp_path):
    import base64
    import html.parser
    import io

    import matplotlib.image

    from offrl.evaluate.report import write_report

    path = write_report(
        [tiny_runs / "td3_bc", tiny_runs / "bc"], tmp_path / "report.html", TINY_FQE
    )
    text = path.read_text()

    class Parser(html.parser.HTMLParser):
        images, headings, tables = [], [], 0
        _in_heading = False

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "img":
                self.images.append(attrs["src"])
            if tag in ("h2", "h3"):
                self._in_heading = True
            if tag == "table":
                self.tables += 1

        def handle_endtag(self, tag):
            if tag in ("h2", "h3"):
                self._in_heading = False

        def handle_data(self, data):
            if self._in_heading:
                self.headings.append(data.strip())

    parser = Parser()
    parser.feed(text)
    # Nothing is linked: every image is an embedded PNG that decodes.
    assert "http://" not in text and "https://" not in text
    assert len(parser.images) >= 6
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        image = matplotlib.image.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    for heading in (
        "Diagnostics",
        "Learning curves",
        "Offline estimates per checkpoint",
        "Dataset",
    ):
        assert parser.headings.count(heading) == 2, heading
    assert "Deploy checkpoint step" in text and "Across the 2 runs" in text
    assert "no-critic" in text


def test_model_ope_values_and_ranks_feedback_policies_on_a_linear_system():
    """Policies ``a = -g s`` on a known linear system: the model's discounted value
    matches the true value from the same starts (run on the real system), and both
    model scores rank the gains as the truth does; the SARSA critic's value of the
    behavior at the episode starts matches the data's Monte Carlo return."""
    import jax.numpy as jnp

    from offrl.evaluate import model_ope
    from offrl.model.ensemble import ModelSpec

    gamma = 0.9
    data = linear_system()
    config = model_ope.ModelOPEConfig(
        horizon=40,
        starts=128,
        discount=gamma,
        model=ModelSpec(
            num_models=3,
            num_elites=2,
            hidden_dims=(32, 32),
            weight_decays=(0.0, 0.0, 0.0),
            learning_rate=1e-2,
            max_epochs=100,
            max_epochs_since_update=20,
        ),
        critic=FQEConfig(updates=2000, min_updates=1000, hidden_dims=(32, 32)),
    )
    fitted = model_ope.fit(data, config)
    assert fitted.termination == "never" and fitted.starts.shape == (128, 2)
    summary = fitted.summary
    assert abs(summary["behavior_critic_value"] - summary["behavior_value"]) < 0.1 * abs(
        summary["behavior_value"]
    )
    gains = np.array([0.0, 0.5, 1.0, -0.5], np.float32)

    def policy(g, observations, key):
        return jnp.clip(-g[:, None, None] * observations, -1.0, 1.0)

    scores = model_ope.evaluate(fitted, policy, (jnp.asarray(gains),), len(gains))
    truth = []
    for g in gains:
        s, value, weight = fitted.starts.astype(np.float64), 0.0, 1.0
        for _ in range(200):
            value = value - weight * (s * s).sum(axis=1)
            s = 0.9 * s + 0.5 * np.clip(-g * s, -1.0, 1.0)
            weight *= gamma
        truth.append(value.mean())
    truth = np.asarray(truth)
    # The three stable gains stay on the data's states; the model's sampled noise costs
    # about sigma^2 per step, so the value is a little low, within 0.5 of -1.5 .. -4.6.
    np.testing.assert_allclose(scores["model_value"][:3], truth[:3], atol=0.5)
    order = np.argsort(truth)
    for name in ("amq", "model_value"):
        np.testing.assert_array_equal(np.argsort(scores[name]), order, err_msg=name)
    np.testing.assert_array_equal(scores["alive_steps"], 40.0)  # the system never terminates


def test_select_and_report_add_model_based_scores(tiny_runs, tmp_path, capsys):
    """With model OPE every checkpoint and seed gets AM-Q and the model value; runs on
    the same data share one fitted model; the CLI prints both and can deploy by AM-Q."""
    from offrl.cli import main
    from offrl.evaluate.model_ope import ModelOPEConfig
    from offrl.evaluate.report import write_report
    from offrl.evaluate.selection import analyze_run, choose, rank_selectors
    from offrl.model.ensemble import ModelSpec

    config = ModelOPEConfig(
        horizon=5,
        starts=16,
        model=ModelSpec(num_models=2, num_elites=1, hidden_dims=(16,),
                        weight_decays=(0.0, 0.0), max_epochs=2),
        critic=TINY_FQE,
    )  # fmt: skip
    # (first: the analysis without the model, cached by the tests above)
    plain = analyze_run(tiny_runs / "td3_bc", fqe_config=TINY_FQE)
    assert plain["signals"]["amq"] is None and plain["model_ope"] is None
    fitted: dict = {}
    analysis = analyze_run(
        tiny_runs / "td3_bc", fqe_config=TINY_FQE, model_ope=config, fitted_models=fitted
    )
    for name in ("amq", "model_value"):
        assert np.isfinite(analysis["signals"][name]).all() and np.shape(
            analysis["signals"][name]
        ) == (3, 2)
        assert name in rank_selectors(analysis)["selectors"]
    assert analysis["model_ope"]["fit"]["termination"] == "never"  # Pendulum
    c, s = choose(analysis, "amq")
    assert analysis["signals"]["amq"][c][s] == np.max(analysis["signals"]["amq"])
    (only,) = fitted.values()
    analyze_run(tiny_runs / "bc", fqe_config=TINY_FQE, model_ope=config, fitted_models=fitted)
    assert list(fitted.values()) == [only]  # the second run reused the first run's model

    # (the report reads the analysis cached just above)
    path = write_report([tiny_runs / "td3_bc"], tmp_path / "r.html", TINY_FQE, model_ope=config)
    assert "AM-Q" in path.read_text()
    with pytest.raises(SystemExit):
        main(["select", str(tiny_runs / "td3_bc"), "--selector", "amq"])
    assert "--selector amq needs --model-ope" in capsys.readouterr().err


def test_cli_select_and_report_name_bad_run_dirs(tmp_path, capsys):
    from offrl.cli import main

    for command in ("select", "report"):
        with pytest.raises(SystemExit):
            main([command, str(tmp_path)])
        assert "not a run directory" in capsys.readouterr().err


def test_diagnostics_advice_names_only_options_that_exist():
    """The verdicts once advised critic dropout and LayerNorm, which no offline
    algorithm could switch on; every flag they name must be a real option."""
    import dataclasses
    import inspect
    import re

    import jax
    from flax import traverse_util

    from offrl.core import registry
    from offrl.core.trainer import example_batch
    from offrl.evaluate import diagnostics

    source = inspect.getsource(diagnostics)
    flags = set(re.findall(r"--([a-z][a-z-]+)", source))
    assert "critic-layer-norm" in flags and "dropout" not in source.lower()
    for name in ("td3_bc", "iql", "cql", "calql"):
        algo = registry.get(name)
        options = {f.name.replace("_", "-") for f in dataclasses.fields(algo.Config)}
        assert flags <= options, (name, flags - options)
        config = algo.Config(hidden_dims=(8, 8), critic_layer_norm=True)
        if name in ("cql", "calql"):
            config = dataclasses.replace(config, critic_hidden_dims=(8, 8))
        state = algo.init(config, example_batch(3, 2), jax.random.PRNGKey(0))
        names = "/".join(traverse_util.flatten_dict(state.critic.params, sep="/"))
        assert "LayerNorm" in names, name
