"""offrl search: the Optuna study over an algorithm's settings, scored offline."""

from __future__ import annotations

import dataclasses
import json

import pytest

from offrl.run.settings import RunError
from offrl.search import SearchConfig, parse_space, run_search


def test_space_entries_parse_and_bad_ones_name_the_fix():
    dims = parse_space(
        ("rollout_length=int:1:20", "penalty_coef=log:0.1:10", "model_num_models=cat:5,7"),
        "mopo",
    )
    assert [(d.name, d.kind) for d in dims] == [
        ("rollout_length", "int"),
        ("penalty_coef", "log"),
        ("model_num_models", "cat"),
    ]
    assert dims[2].choices == (5, 7)  # typed as the Config field is
    for entry, message in (
        ("rollout_lenght=int:1:5", "mopo has no setting 'rollout_lenght'"),
        ("penalty_coef=log:0:10", "needs LOW < HIGH and LOW > 0"),
        ("penalty_coef=beta:1:2", "unknown kind 'beta'"),
        ("penalty_coef", "write name=int:LOW:HIGH"),
    ):
        with pytest.raises(RunError, match=message):
            parse_space((entry,), "mopo")
    with pytest.raises(RunError, match="td3_bc has no default search space; pass --space"):
        SearchConfig(algorithm="td3_bc").check()
    with pytest.raises(RunError, match="--objective must be one of"):
        SearchConfig(objective="returns").check()
    with pytest.raises(RunError, match="--fixed entry 'rollout=3': write name=value"):
        SearchConfig(fixed=("rollout=3",)).check()


def test_search_starts_from_the_released_setting_resumes_and_retries_a_killed_trial(tmp_path):
    import optuna

    from offrl.algos import td3_bc

    config = SearchConfig(
        algorithm="td3_bc",
        dataset="suite:pendulum-mixed",
        space=("alpha=log:0.5:10",),
        fixed=("hidden_dims=16,16",),
        trials=2,
        steps=50,
        fqe_updates=100,
        study=True,
        heldout_episodes=1,
        output=str(tmp_path / "search"),
    )
    result = run_search(config)
    trials = result["trials"]
    assert [t["trial"] for t in trials] == [0, 1]
    assert trials[0]["released"] and trials[0]["params"] == {"alpha": td3_bc.Config().alpha}
    assert 0.5 <= trials[1]["params"]["alpha"] <= 10
    saved = json.loads((tmp_path / "search" / "trial-001" / "config.json").read_text())
    assert saved["algorithm_config"]["hidden_dims"] == [16, 16]  # --fixed, in every trial
    assert result["best"]["objective"] == max(t["objective"] for t in trials)
    assert not result["objective_uses_environment"]
    # The study's true scores sit beside the objective, and the ranking is reported.
    assert all("true_score" in t for t in trials) and "spearman" in result["study"]
    text = (tmp_path / "search" / "search.md").read_text()
    assert "true score (not used)" in text and "0 (released)" in text

    # A process killed mid-trial leaves it RUNNING: the next search retries its setting.
    study = optuna.load_study(
        study_name="search", storage=f"sqlite:///{tmp_path / 'search' / 'study.db'}"
    )
    killed = study.ask({"alpha": optuna.distributions.FloatDistribution(0.5, 10, log=True)})
    (tmp_path / "search" / f"trial-{killed.number:03d}").mkdir()  # its partial run
    more = run_search(dataclasses.replace(config, trials=3))
    assert [t["trial"] for t in more["trials"][:2]] == [0, 1]  # kept, not rerun
    assert more["trials"][:2] == trials
    assert more["trials"][2]["params"] == killed.params
    assert len(json.loads((tmp_path / "search" / "trials.json").read_text())) == 3

    # Other settings in the same output directory would mix two searches.
    with pytest.raises(RunError, match="holds a search with other settings"):
        run_search(dataclasses.replace(config, steps=60))
