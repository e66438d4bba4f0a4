"""``offrl bench``: algorithms x datasets x seeds, one table.

Every cell (algorithm, dataset) is one run directory under ``output`` with all
seeds trained in parallel; a finished cell is reused and an unfinished one is
resumed, so an interrupted benchmark continues where it stopped. The table
reports, per dataset, the final and the best evaluation score (mean ± std over
seeds), and per algorithm the interquartile mean over all (dataset, seed) runs
with a 95% stratified bootstrap interval. Scores are normalized scores where the
task has reference returns, raw returns otherwise.
"""

import csv
import dataclasses
import json
import pathlib

import numpy as np

from offrl.evaluate.statistics import performance_profile, summarize_scores
from offrl.run.rundir import mean_std, sample_std


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Run algorithms x datasets x seeds and write a markdown and CSV table."""

    algorithms: tuple[str, ...] = ("bc", "td3_bc", "iql", "cql")
    """Registered offline algorithms."""
    datasets: tuple[str, ...] = ("suite:pendulum-mixed",)
    """Datasets (anything `offrl train --dataset` takes)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds, trained in parallel within each cell."""
    steps: int = 1_000_000
    """Gradient updates per seed (state it with the results: 1M is the D4RL protocol)."""
    eval_every: int = 10_000
    """Evaluation interval; the best score is the best of these evaluations."""
    eval_episodes: int = 10
    """Episodes per evaluation and seed."""
    checkpoint_every: int = 50_000
    """Checkpoint interval, so an interrupted cell resumes."""
    heldout_episodes: int = 100
    """Episodes per seed of the final scores (final and best), on reset seeds no
    periodic evaluation uses."""
    output: str = "runs/bench"
    """Directory for the cells' runs and the tables."""
    presets: bool = False
    """Train each algorithm with its per-dataset settings from its paper's released
    configs where it has them for the dataset (ReBRAC's penalties, EDAC's N and eta,
    MOPO's rollout length and penalty...); its defaults elsewhere."""
    settings: tuple[str, ...] = ()
    """``FIELD=VALUE`` entries set in every algorithm's ``Config`` that has ``FIELD``
    (the others keep theirs), e.g. ``hidden_dims=64,64`` for smaller networks on a
    low-dimensional task; the table states them."""
    validation_key: str | None = None
    """A named subset of every dataset kept out of training as its validation set
    (NeoRL-2's split: ``validation`` in the suite's industrial datasets); the
    behavior score beside each row is then the training episodes' own."""

    def check(self) -> None:
        """Raise ``RunError`` for the first invalid setting, before any cell runs."""
        from offrl.core import registry
        from offrl.run.settings import RunError

        self.train_config().check()
        if not self.algorithms or not self.datasets:
            raise RunError("--algorithms and --datasets each need at least one entry")
        for name in self.algorithms:
            if name.replace("-", "_") not in registry.OFFLINE_ALGORITHMS:
                raise RunError(
                    f"--algorithms: '{name}' is not an offline algorithm; choose from "
                    f"{', '.join(registry.OFFLINE_ALGORITHMS)}"
                )
        used = set()
        for name in registry.OFFLINE_ALGORITHMS:  # a typo is no field of any algorithm
            used |= set(algorithm_settings(name, registry.get(name).Config(), self.settings)[1])
        for entry in self.settings:
            field = entry.partition("=")[0]
            if field not in used:
                raise RunError(
                    f"--settings {entry}: no offline algorithm has a setting '{field}' (write "
                    "FIELD=VALUE with a field of an algorithm's Config)"
                )

    def train_config(self):
        from offrl.run.train import TrainConfig

        return TrainConfig(
            steps=self.steps,
            eval_every=self.eval_every,
            eval_episodes=self.eval_episodes,
            checkpoint_every=self.checkpoint_every,
            heldout_episodes=self.heldout_episodes,
            seeds=self.seeds,
            validation_key=self.validation_key,
        )


def _setting_value(text: str, annotation: str):
    """``text`` read as a value of a Config field annotated ``annotation`` (a string:
    the algorithms use postponed annotations): ``none`` for ``None``, a comma list for
    a tuple, else the first of bool, int, float the annotation names, else the text."""
    if text.lower() == "none":
        return None
    if annotation.startswith("tuple"):
        return tuple(float(v) if "float" in annotation else int(v) for v in text.split(","))
    if annotation.startswith("bool"):
        return text.lower() in ("1", "true", "yes")
    if annotation.startswith("int"):
        return int(text)
    if annotation.startswith("float"):
        return float(text)
    return text


def algorithm_settings(algorithm: str, config, settings) -> tuple[object, list[str]]:
    """``config`` with every ``FIELD=VALUE`` of ``settings`` whose field it has set,
    each value read as the field's annotated type (:func:`_setting_value`); returns
    the new config and the fields set."""
    from offrl.run.settings import RunError

    annotations = {f.name: str(f.type) for f in dataclasses.fields(config)}
    changes = {}
    for entry in settings:
        field, equals, text = entry.partition("=")
        if not equals:
            raise RunError(f"--settings {entry!r}: write FIELD=VALUE (e.g. hidden_dims=64,64)")
        if field not in annotations:
            continue
        try:
            changes[field] = _setting_value(text, annotations[field])
        except ValueError as error:
            raise RunError(f"--settings {entry!r} ({algorithm}): {error}") from error
    return (dataclasses.replace(config, **changes) if changes else config), sorted(changes)


def cell_name(dataset: str) -> str:
    return pathlib.Path(dataset.removeprefix("suite:").rstrip("/")).name.replace(".hdf5", "")


def behavior_score(dataset: str, validation_key: str | None = None) -> dict:
    """The data's own score, the bar an offline method has to clear: the mean
    (normalized, where the task has references) return of the training episodes,
    with its sample standard deviation across episodes (as the dataset card's)."""
    from offrl.data import load_dataset
    from offrl.envs.registry import normalized_score

    data = load_dataset(dataset)
    if validation_key:
        kept = np.setdiff1d(np.arange(data.num_episodes), data.subset_episodes(validation_key))
        data = data.select_episodes(kept)
    returns = data.episode_returns()
    score = normalized_score(returns, data.info.env_id)
    values = returns if score is None else np.asarray(score)
    return {
        "behavior_mean": float(values.mean()),
        "behavior_std": sample_std(values),
        "behavior_episodes": int(values.size),
    }


def run_cell(config: BenchConfig, algorithm: str, dataset: str) -> dict:
    from offrl.core import registry
    from offrl.run.train import train_or_reuse

    run_dir = pathlib.Path(config.output) / algorithm / cell_name(dataset)
    algo_config = registry.preset_config(algorithm, dataset) if config.presets else None
    if config.settings:
        base = algo_config or registry.get(algorithm).Config()
        algo_config = algorithm_settings(algorithm, base, config.settings)[0]
    return train_or_reuse(algorithm, dataset, run_dir, algo_config, config.train_config())


def table(config: BenchConfig, summaries: dict[tuple[str, str], dict]) -> dict:
    """Rows per (dataset, algorithm) and aggregates per algorithm."""
    rows, aggregates = [], {}
    behavior = {d: behavior_score(d, config.validation_key) for d in config.datasets}
    for algorithm in config.algorithms:
        finals, bests = [], []
        for dataset in config.datasets:
            s = summaries[(algorithm, dataset)]
            if "final_per_seed" not in s:
                raise ValueError(
                    f"{algorithm} on {dataset} has no evaluation (no environment "
                    "recorded for the dataset): bench needs one"
                )
            finals.append(s["final_per_seed"])
            bests.append(s["best_per_seed"])
            rows.append(
                {
                    "dataset": dataset,
                    "algorithm": algorithm,
                    "score": s["score"],
                    "steps": s["steps"],
                    "seeds": len(s["final_per_seed"]),
                    "final_mean": float(np.mean(s["final_per_seed"])),
                    "final_std": sample_std(s["final_per_seed"]),
                    "best_mean": float(np.mean(s["best_per_seed"])),
                    "best_std": sample_std(s["best_per_seed"]),
                    "scores_on": s.get("scores_on"),
                    "wall_seconds": s.get("wall_seconds"),
                    "updates_per_second_per_seed": s.get("updates_per_second_per_seed"),
                    **behavior[dataset],
                    **(
                        {"cost_mean": float(np.mean(s["final_cost_per_seed"]))}
                        if "final_cost_per_seed" in s
                        else {}
                    ),
                    **(
                        {"within_budget_mean": float(np.mean(s["final_within_budget_per_seed"]))}
                        if "final_within_budget_per_seed" in s
                        else {}
                    ),
                }
            )
        final = np.asarray(finals).T  # [seeds, datasets]
        best = np.asarray(bests).T
        profile = performance_profile(final, PROFILE_THRESHOLDS)
        aggregates[algorithm] = {
            "final": summarize_scores(final),
            "best": summarize_scores(best),
            "final_profile": {k: np.asarray(v).tolist() for k, v in profile.items()},
        }
    return {"rows": rows, "aggregates": aggregates}


#: Thresholds of the performance profiles (score distributions of final scores).
PROFILE_THRESHOLDS = np.linspace(0.0, 120.0, 25)


def profile_figure(result: dict, path: pathlib.Path) -> pathlib.Path:
    """Performance profiles (fraction of runs above each score, with 95% bands)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for algorithm, agg in result["aggregates"].items():
        profile = agg["final_profile"]
        line = ax.plot(profile["thresholds"], profile["fraction"], label=algorithm)[0]
        ax.fill_between(
            profile["thresholds"],
            profile["low"],
            profile["high"],
            alpha=0.2,
            color=line.get_color(),
        )
    ax.set_xlabel(f"final {result['rows'][0]['score']} τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_tables(config: BenchConfig, result: dict) -> list[pathlib.Path]:
    output = pathlib.Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    csv_path = output / "results.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(result["rows"][0]))
        writer.writeheader()
        writer.writerows(result["rows"])
    if config.heldout_episodes:
        scored = (
            f"both scored on {config.heldout_episodes} held-out episodes per seed that "
            "nothing was chosen on (summary.json: scores_on, heldout)"
        )
    else:
        scored = (
            "scored on those periodic evaluations (no held-out episodes: the best is "
            "chosen on the episodes that score it, the final is not)"
        )
    lines = [
        f"Scores after {config.steps} updates, {len(config.seeds)} seeds, "
        f"{config.eval_episodes} evaluation episodes per seed and periodic evaluation "
        f"(every {config.eval_every} updates). final = the last policy, best = each seed's "
        f"policy of the best periodic evaluation, {scored}; ± is the sample "
        "standard deviation across seeds."
        + (
            " Per-dataset presets (Config.preset) where the algorithm has one."
            if config.presets
            else ""
        )
        + (
            f" Settings changed in every algorithm that has them: {', '.join(config.settings)}."
            if config.settings
            else ""
        ),
        "",
        "behavior = the training data's own episodes (mean ± std across episodes), the "
        "bar to clear"
        + (
            f"; the '{config.validation_key}' subset of each dataset was kept out of "
            "training as its validation set."
            if config.validation_key
            else "."
        ),
        "",
        "| dataset | algorithm | behavior | final (mean ± std) | best (mean ± std) "
        "| updates/s per seed |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        speed = row["updates_per_second_per_seed"]
        lines.append(
            f"| {row['dataset']} | {row['algorithm']} | "
            f"{mean_std(row['behavior_mean'], row['behavior_std'])} | "
            f"{mean_std(row['final_mean'], row['final_std'])} | "
            f"{mean_std(row['best_mean'], row['best_std'])} | "
            f"{'' if speed is None else f'{speed:.0f}'} |"
        )
    lines += [
        "",
        "Interquartile mean over all (dataset, seed) runs, 95% stratified bootstrap interval:",
        "",
        "| algorithm | final IQM [95% CI] | best IQM [95% CI] |",
        "|---|---|---|",
    ]
    for algorithm, agg in result["aggregates"].items():
        f, b = agg["final"], agg["best"]
        lines.append(
            f"| {algorithm} | {f['iqm']:.1f} [{f['iqm_ci_low']:.1f}, "
            f"{f['iqm_ci_high']:.1f}] | {b['iqm']:.1f} [{b['iqm_ci_low']:.1f}, "
            f"{b['iqm_ci_high']:.1f}] |"
        )
    marks = [25.0, 50.0, 75.0, 100.0]
    lines += [
        "",
        "Performance profile of the final scores (fraction of runs above each score, "
        "every dataset weighted equally; `profiles.png` draws it with 95% bands):",
        "",
        "| algorithm | " + " | ".join(f"> {m:g}" for m in marks) + " |",
        "|---|" + "---|" * len(marks),
    ]
    for algorithm, agg in result["aggregates"].items():
        profile = agg["final_profile"]
        cells = [f"{np.interp(m, profile['thresholds'], profile['fraction']):.2f}" for m in marks]
        lines.append(f"| {algorithm} | " + " | ".join(cells) + " |")
    figure = profile_figure(result, output / "profiles.png")
    md_path = output / "results.md"
    md_path.write_text("\n".join(lines) + "\n")
    json_path = output / "results.json"
    json_path.write_text(json.dumps({"config": dataclasses.asdict(config), **result}, indent=2))
    return [md_path, csv_path, json_path, figure]


def run_bench(config: BenchConfig) -> dict:
    config.check()
    summaries = {}
    for dataset in config.datasets:
        for algorithm in config.algorithms:
            summaries[(algorithm, dataset)] = run_cell(config, algorithm, dataset)
    result = table(config, summaries)
    result["files"] = [str(p) for p in write_tables(config, result)]
    return result
