"""``offrl search``: choose an offline algorithm's settings without an environment.

"Revisiting Design Choices in Offline Model-Based RL" (Lu et al., 2022) found that
the number of models N, the rollout length h and the penalty weight lambda interact
strongly, and that searching them with Bayesian optimization beats the hand-tuned
defaults. This runs that search with Optuna (its TPE sampler; a study in
``OUTPUT/study.db``, so an interrupted search continues where it stopped):

1. the first trial is the algorithm's released setting (its per-dataset preset where
   it has one, else its defaults), so the search is judged against it by the same
   objective;
2. every trial trains the algorithm on the dataset (all seeds, in parallel) with no
   evaluation in an environment;
3. its final checkpoint is scored offline (:func:`offrl.evaluate.selection.analyze_run`),
   the mean over seeds of one of

   ``fqe``          the FQE value from the data's episode starts;
   ``amq``          Uni-O4's AM-Q in a dynamics ensemble fit once for the search;
   ``model_value``  the same rollouts' discounted model value;
   ``true_return``  FOR THE STUDY ONLY: the held-out score in the environment. A
                    search that sees true returns has used the environment; its
                    output says so.

With ``study`` each trial is also evaluated in the environment after it is scored
(held-out episodes), and the output reports how well the offline objective ranked
the trials (Spearman) and what choosing by it cost (regret): numbers the search
itself never saw.

The search space is ``name=kind:args`` entries over the algorithm's Config fields:
``int:LOW:HIGH``, ``float:LOW:HIGH``, ``log:LOW:HIGH`` (log-uniform) or
``cat:A,B,C``. MOPO and MOBILE have a default space over (N, h, lambda); the ranges
are ours (N in {5, 7, 10}, h in 1..20, lambda log-uniform in [0.1, 10]), not read
from the paper.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import shutil
from collections.abc import Callable

import numpy as np

from offrl.evaluate.fqe import FQEConfig
from offrl.evaluate.model_ope import ModelOPEConfig
from offrl.evaluate.policy import evaluate_run
from offrl.evaluate.selection import analyze_run
from offrl.evaluate.statistics import spearman
from offrl.run.rundir import scores, write_json_atomic
from offrl.run.settings import RunError, TrainConfig

OBJECTIVES = {
    "fqe": "FQE value of the final policy (data only)",
    "amq": "AM-Q of the final policy in a learned model (data only)",
    "model_value": "discounted model value of the final policy (data only)",
    "true_return": "held-out score in the environment (uses the environment: study only)",
}

#: Default search spaces (N, h, lambda) of the model-based methods.
SPACES: dict[str, tuple[str, ...]] = {
    "mopo": ("model_num_models=cat:5,7,10", "rollout_length=int:1:20", "penalty_coef=log:0.1:10"),
    "mobile": (
        "model_num_models=cat:5,7,10",
        "rollout_length=int:1:20",
        "penalty_coef=log:0.1:10",
    ),
}


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Search an offline algorithm's settings with Optuna, scored without an environment."""

    algorithm: str = "mopo"
    """A registered offline algorithm."""
    dataset: str = "suite:pendulum-mixed"
    """The dataset (anything `offrl train --dataset` takes)."""
    trials: int = 12
    """Trials in all, the released setting first."""
    objective: str = "fqe"
    """fqe, amq or model_value (no environment); true_return (the environment: study only)."""
    space: tuple[str, ...] | None = None
    """name=kind:args entries (int:LOW:HIGH, float:LOW:HIGH, log:LOW:HIGH, cat:A,B,C);
    default: the algorithm's (N, h, lambda) space."""
    fixed: tuple[str, ...] = ()
    """name=value settings every trial uses on top of the released one (e.g.
    model_max_epochs=30 to cap the model fits on a CPU)."""
    steps: int = 10_000
    """Gradient updates per trial and seed."""
    seeds: tuple[int, ...] = (0,)
    """Seeds per trial, trained in parallel; the objective is their mean."""
    study: bool = False
    """Also evaluate every trial in the environment (after it is scored) and report how
    well the objective ranked the trials; the search never sees these numbers."""
    heldout_episodes: int = 10
    """Episodes per seed of a trial's evaluation in the environment (study, true_return)."""
    model_horizon: int = 100
    """Model steps per rollout of the amq and model_value objectives."""
    fqe_updates: int = 4000
    """FQE updates per fit at most (the fqe objective; the amq critic's too)."""
    seed: int = 0
    """Seed of the sampler and of the offline estimators."""
    output: str = "runs/search"
    """Directory of the study, the trials' runs and the results."""

    def check(self) -> None:
        from offrl.core import registry

        if self.algorithm.replace("-", "_") not in registry.OFFLINE_ALGORITHMS:
            raise RunError(
                f"unknown offline algorithm '{self.algorithm}'; choose one of "
                f"{', '.join(sorted(registry.OFFLINE_ALGORITHMS))}"
            )
        if self.objective not in OBJECTIVES:
            raise RunError(
                f"--objective must be one of {', '.join(OBJECTIVES)}, got '{self.objective}'"
            )
        counts = (self.trials, self.steps, self.heldout_episodes, self.fqe_updates)
        if min(counts) < 1:
            raise RunError(
                "--trials, --steps, --heldout-episodes and --fqe-updates must be positive "
                f"integers, got {', '.join(map(str, counts))}"
            )
        if self.space is None and self.algorithm.replace("-", "_") not in SPACES:
            raise RunError(
                f"{self.algorithm} has no default search space; pass --space, e.g. "
                "--space alpha=log:0.5:5"
            )
        parse_space(self.space_entries(), self.algorithm)
        fixed_settings(self.fixed, self.algorithm)

    def space_entries(self) -> tuple[str, ...]:
        return tuple(self.space) if self.space else SPACES[self.algorithm.replace("-", "_")]


@dataclasses.dataclass(frozen=True)
class Dimension:
    name: str
    kind: str  # int, float, log, cat
    low: float = 0.0
    high: float = 0.0
    choices: tuple = ()


def _parse_value(text: str, like):
    """A categorical choice typed as the Config field's default is."""
    if isinstance(like, bool):
        if text.lower() not in ("true", "false"):
            raise ValueError(f"'{text}' is not true or false")
        return text.lower() == "true"
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text


def parse_space(entries, algorithm: str) -> list[Dimension]:
    """The search space from ``name=kind:args`` entries; ``RunError`` (one line) for an
    entry that does not parse or names no field of the algorithm's Config."""
    from offrl.core import registry

    config = registry.get(algorithm).Config()
    fields = {f.name for f in dataclasses.fields(config)}
    dims = []
    for entry in entries:
        try:
            name, spec = entry.split("=", 1)
            kind, _, args = spec.partition(":")
            if name not in fields:
                raise ValueError(f"{algorithm} has no setting '{name}'")
            default = getattr(config, name)
            if kind == "cat":
                choices = tuple(_parse_value(v, default) for v in args.split(","))
                dims.append(Dimension(name, kind, choices=choices))
                continue
            if kind not in ("int", "float", "log"):
                raise ValueError(f"unknown kind '{kind}' (int, float, log or cat)")
            low, high = (float(v) for v in args.split(":"))
            if not low < high or (kind == "log" and low <= 0):
                raise ValueError(f"needs LOW < HIGH{' and LOW > 0' if kind == 'log' else ''}")
            dims.append(Dimension(name, kind, low, high))
        except ValueError as error:
            raise RunError(
                f"--space entry '{entry}': {error}; write name=int:LOW:HIGH, "
                "name=float:LOW:HIGH, name=log:LOW:HIGH or name=cat:A,B,C"
            ) from None
    return dims


def fixed_settings(entries, algorithm: str) -> dict:
    """``name=value`` entries typed as the algorithm's Config fields (``RunError`` for
    an unknown name or a value that does not parse)."""
    from offrl.core import registry

    config = registry.get(algorithm).Config()
    out = {}
    for entry in entries:
        name, sep, text = entry.partition("=")
        if not sep or not hasattr(config, name):
            raise RunError(
                f"--fixed entry '{entry}': write name=value with a setting of {algorithm}"
            )
        default = getattr(config, name)
        try:
            if default is None:
                value = None if text.lower() == "none" else _number(text)
            elif isinstance(default, tuple):
                value = tuple(_parse_value(v, default[0]) for v in text.split(",") if v)
            else:
                value = _parse_value(text, default)
        except ValueError as error:
            raise RunError(f"--fixed entry '{entry}': {error}") from None
        out[name] = value
    return out


def _number(text: str):
    return int(text) if text.lstrip("-").isdigit() else float(text)


def suggest(trial, dims: list[Dimension]) -> dict:
    """Optuna's proposal for every dimension."""
    out = {}
    for d in dims:
        if d.kind == "cat":
            out[d.name] = trial.suggest_categorical(d.name, list(d.choices))
        elif d.kind == "int":
            out[d.name] = trial.suggest_int(d.name, int(d.low), int(d.high))
        else:
            out[d.name] = trial.suggest_float(d.name, d.low, d.high, log=d.kind == "log")
    return out


def released_config(algorithm: str, dataset: str):
    """The algorithm's per-dataset preset where it has one, else its defaults."""
    from offrl.core import registry

    return registry.preset_config(algorithm, dataset) or registry.get(algorithm).Config()


def _train_config(config: SearchConfig, evaluate: bool) -> TrainConfig:
    return TrainConfig(
        steps=config.steps,
        seeds=tuple(config.seeds),
        eval_every=0,
        checkpoint_every=config.steps,
        steps_per_call=min(1000, config.steps),
        heldout_episodes=config.heldout_episodes if evaluate else 0,
        eval_episodes=1,
        evaluate=evaluate,
        progress=False,
    )


def _true_score(run_dir: pathlib.Path, config: SearchConfig) -> float:
    """The held-out score of a trial's final policy (normalized where the task has
    references), evaluated after the fact for the study."""
    return float(np.mean(scores(evaluate_run(run_dir, episodes=config.heldout_episodes))))


def run_search(config: SearchConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Run (or continue) the search; returns the results written to ``OUTPUT/search.json``."""
    import optuna

    from offrl.run.train import train

    config.check()
    say = progress or (lambda message: None)
    algorithm = config.algorithm.replace("-", "_")
    dims = parse_space(config.space_entries(), algorithm)
    output = pathlib.Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    settings_path = output / "search-config.json"
    # --trials may grow (or shrink) between calls; every other setting must agree.
    settings = json.loads(json.dumps({**dataclasses.asdict(config), "trials": None}))
    if settings_path.exists() and json.loads(settings_path.read_text()) != settings:
        raise RunError(
            f"{output} holds a search with other settings ({settings_path}); pass a new "
            "--output or the same settings (any --trials) to continue it"
        )
    write_json_atomic(settings_path, settings)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="search",
        storage=f"sqlite:///{output / 'study.db'}",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        direction="maximize",
        load_if_exists=True,
    )
    # A trial a killed process left running is retried with the same settings.
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)
        shutil.rmtree(output / f"trial-{stale.number:03d}", ignore_errors=True)
        study.enqueue_trial(stale.params)
    released = dataclasses.replace(
        released_config(algorithm, config.dataset), **fixed_settings(config.fixed, algorithm)
    )
    if not study.trials:
        study.enqueue_trial({d.name: getattr(released, d.name) for d in dims})

    fqe_config = FQEConfig(
        seed=config.seed,
        updates=config.fqe_updates,
        min_updates=min(FQEConfig.min_updates, config.fqe_updates),
    )
    model_ope = (
        ModelOPEConfig(
            horizon=config.model_horizon,
            seed=config.seed,
            critic=dataclasses.replace(fqe_config, bootstrap=0),
        )
        if config.objective in ("amq", "model_value")
        else None
    )
    fitted_models: dict = {}  # one model for the whole search
    records = _load_records(output)
    evaluate = config.objective == "true_return"
    while len(records) < config.trials:  # scored trials and rejected settings
        trial = study.ask()
        params = suggest(trial, dims)
        run_dir = output / f"trial-{trial.number:03d}"
        say(f"trial {trial.number}: {params}")
        algo_config = dataclasses.replace(released, **params)
        try:
            summary = train(
                algorithm, config.dataset, run_dir, algo_config, _train_config(config, evaluate)
            )
        except (RunError, ValueError) as error:
            # A setting the algorithm rejects is a failed trial, not a failed search.
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            records.append({"trial": trial.number, "params": params, "error": str(error)})
            write_json_atomic(output / "trials.json", records)
            continue
        if evaluate:
            if "final_per_seed" not in summary:
                raise RunError(
                    f"--objective true_return needs an environment, and {config.dataset} "
                    "records none offrl can create"
                )
            value = float(np.mean(summary["final_per_seed"]))
        else:
            analysis = analyze_run(
                run_dir,
                fqe_config=fqe_config,
                steps=[config.steps],
                model_ope=model_ope,
                fitted_models=fitted_models,
                progress=say,
            )
            value = float(np.mean(analysis["signals"][config.objective][-1]))
        if not math.isfinite(value):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            records.append({"trial": trial.number, "params": params, "error": "not finite"})
            write_json_atomic(output / "trials.json", records)
            continue
        study.tell(trial, value)
        record = {
            "trial": trial.number,
            "params": params,
            "objective": value,
            "released": trial.number == 0,
            "seconds": summary.get("wall_seconds"),
        }
        if config.study:
            record["true_score"] = (
                value if evaluate else _true_score(run_dir, config)
            )  # after the search's decision: it never sees this
        records.append(record)
        write_json_atomic(output / "trials.json", records)
        say(f"trial {trial.number}: {config.objective} {value:.3f}")
    return _write_results(config, records, output)


def _load_records(output: pathlib.Path) -> list[dict]:
    path = output / "trials.json"
    return json.loads(path.read_text()) if path.exists() else []


def _write_results(config: SearchConfig, records: list[dict], output: pathlib.Path) -> dict:
    scored = [r for r in records if "objective" in r]
    best = max(scored, key=lambda r: r["objective"])
    released = next((r for r in scored if r.get("released")), None)
    result = {
        "algorithm": config.algorithm,
        "dataset": config.dataset,
        "objective": config.objective,
        "objective_uses_environment": config.objective == "true_return",
        "trials": records,
        "best": best,
        "released": released,
    }
    truths = [r for r in scored if "true_score" in r]
    if len(truths) >= 2:
        x = np.asarray([r["objective"] for r in truths])
        t = np.asarray([r["true_score"] for r in truths])
        result["study"] = {
            "spearman": spearman(x, t),
            "regret": float(t.max() - t[int(np.argmax(x))]),
            "best_true": float(t.max()),
            "chosen_true": float(t[int(np.argmax(x))]),
            "released_true": None if released is None else released.get("true_score"),
        }
    write_json_atomic(output / "search.json", result)
    (output / "search.md").write_text(_markdown(config, result))
    return result


def _markdown(config: SearchConfig, result: dict) -> str:
    names = sorted({k for r in result["trials"] for k in r["params"]})
    study = config.study
    header = ["trial", *names, config.objective] + (["true score (not used)"] if study else [])
    lines = [
        f"# offrl search: {config.algorithm} on {config.dataset}",
        "",
        f"Objective: {OBJECTIVES[config.objective]}; {config.steps} updates per trial, "
        f"seeds {list(config.seeds)}. Trial 0 is the released setting"
        + (f" (with {', '.join(config.fixed)} in every trial)." if config.fixed else "."),
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
    ]
    for r in result["trials"]:
        cells = [str(r["trial"]) + (" (released)" if r.get("released") else "")]
        cells += [_cell(r["params"].get(n)) for n in names]
        cells.append(_cell(r.get("objective", r.get("error"))))
        if study:
            cells.append(_cell(r.get("true_score")))
        lines.append("| " + " | ".join(cells) + " |")
    best = result["best"]
    lines += ["", f"Best by the objective: trial {best['trial']} {best['params']}."]
    if "study" in result:
        s = result["study"]
        lines.append(
            f"Against the true scores (never seen by the search): Spearman {s['spearman']:.2f}, "
            f"regret {s['regret']:.1f} (chosen {s['chosen_true']:.1f}, best {s['best_true']:.1f}"
            + (f", released {s['released_true']:.1f})." if s["released_true"] is not None else ").")
        )
    if result["objective_uses_environment"]:
        lines.append("The objective used the environment: a study, not an offline search.")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


__all__ = ["OBJECTIVES", "SPACES", "SearchConfig", "parse_space", "run_search", "suggest"]
