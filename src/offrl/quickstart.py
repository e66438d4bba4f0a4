"""``offrl quickstart``: the small end-to-end job.

Builds the tiny Pendulum dataset (mixed quality: noisy and random-acting
controllers plus random actions), trains BC and IQL on it with several seeds
in parallel, evaluates them in the environment through training, scores the
final and the best policies on 100 held-out episodes, prints a table, and
writes plots and a JSON report. About 80 seconds on 2 CPU cores: networks of
128x128 and 5,000 updates (IQL's library default, 256x256 for 1M updates, is
the benchmarks'; on this data IQL then reaches about 99 against BC's 56, at
about 3.5 minutes).
"""

import dataclasses
import json
import pathlib
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class QuickstartConfig:
    """Build a Pendulum dataset, train BC and IQL, evaluate, write a table and plots."""

    output: str = "runs/quickstart"
    """Directory for the runs, plots and report (a numbered sibling if it exists)."""
    dataset: str = "pendulum-mixed"
    """Suite dataset to build and train on."""
    algorithms: tuple[str, ...] = ("bc", "iql")
    """Algorithms to train."""
    steps: int = 5_000
    """Gradient updates per seed."""
    hidden_dims: tuple[int, ...] = (128, 128)
    """Hidden widths of every network (smaller than the algorithms' defaults, to finish
    in about a minute and a half on 2 CPU cores)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds, trained in parallel under vmap."""
    eval_every: int = 1_000
    """Evaluation interval (updates)."""
    eval_episodes: int = 5
    """Episodes per evaluation and seed."""


def _with_widths(algo_config, hidden_dims: tuple[int, ...]):
    """``algo_config`` with every ``*hidden_dims`` field set to ``hidden_dims``."""
    widths = {
        f.name: tuple(hidden_dims)
        for f in dataclasses.fields(algo_config)
        if f.name.endswith("hidden_dims") and getattr(algo_config, f.name) is not None
    }
    return dataclasses.replace(algo_config, **widths)


def _free_directory(path: pathlib.Path) -> pathlib.Path:
    candidate, index = path, 1
    while candidate.exists():
        index += 1
        candidate = path.with_name(f"{path.name}-{index}")
    return candidate


def run_quickstart(config: QuickstartConfig) -> dict:
    from rich.console import Console
    from rich.table import Table

    from offrl.core import registry
    from offrl.data.summary import print_summary
    from offrl.run.rundir import mean_std
    from offrl.run.train import RunError, TrainConfig, train
    from offrl.suites import available, build_suite_dataset, load_suite_dataset

    train_config = TrainConfig(
        steps=config.steps,
        eval_every=config.eval_every,
        checkpoint_every=config.steps,
        seeds=config.seeds,
        eval_episodes=config.eval_episodes,
    )
    train_config.check()  # bad settings fail before anything is written
    if config.dataset.removeprefix("suite:") not in available():
        raise RunError(
            f"--dataset: unknown suite dataset '{config.dataset}'; choose one of "
            f"{', '.join(available())}"
        )
    for name in config.algorithms:
        if name.replace("-", "_") not in registry.OFFLINE_ALGORITHMS:
            raise RunError(
                f"--algorithms: '{name}' is not an offline algorithm; choose from "
                f"{', '.join(registry.OFFLINE_ALGORITHMS)}"
            )
    config = dataclasses.replace(config, dataset=config.dataset.removeprefix("suite:"))
    console = Console()
    output = _free_directory(pathlib.Path(config.output))
    output.mkdir(parents=True)
    started = time.perf_counter()
    console.rule("1. dataset")
    path = build_suite_dataset(config.dataset)
    dataset = load_suite_dataset(config.dataset)
    console.print(f"suite:{config.dataset} (Minari dataset at {path})")
    data_summary = print_summary(dataset, console)

    results = {}
    for name in config.algorithms:
        console.rule(f"2. train {name} ({len(config.seeds)} seeds in parallel)")
        algo = registry.get(name)
        summary = train(
            name,
            dataset,
            output / name,
            algo_config=_with_widths(algo.Config(), config.hidden_dims),
            train_config=train_config,
        )
        results[name] = summary
        console.print(
            f"{name}: final {mean_std(summary['final_mean'], summary['final_std'])} "
            "(held-out episodes), "
            f"{summary['updates_per_second_per_seed']:.0f} updates/s per seed"
        )

    console.rule("3. results")
    table = Table(
        title=f"normalized score on suite:{config.dataset} after {config.steps} "
        f"updates ({len(config.seeds)} seeds; final and best on "
        f"{train_config.heldout_episodes} held-out episodes each, ± sample std)"
    )
    for column in ("algorithm", "final (mean ± std)", "best (mean ± std)", "updates/s per seed"):
        table.add_column(column)
    for name, s in results.items():
        table.add_row(
            name,
            mean_std(s["final_mean"], s["final_std"]),
            mean_std(s["best_mean"], s["best_std"]),
            f"{s['updates_per_second_per_seed']:.0f}",
        )
    console.print(table)
    console.print(
        "normalized score: 0 = uniform random policy, 100 = the scripted expert "
        f"(dataset mean: {data_summary.get('normalized_return_mean', float('nan')):.1f})"
    )

    plots = _plots(output, results, dataset)
    report = {
        "dataset": data_summary,
        "results": results,
        "plots": plots,
        "wall_seconds": time.perf_counter() - started,
    }
    (output / "report.json").write_text(json.dumps(report, indent=2))
    console.print(f"runs, plots and report in {output}/ ({report['wall_seconds']:.0f} s in all)")
    console.print(f"evaluate again with: offrl eval {output / config.algorithms[-1]}")
    return report


def _plots(output: pathlib.Path, results: dict, dataset) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, summary in results.items():
        steps = [e["step"] for e in summary["evaluations"]]
        scores = np.asarray([e["normalized_per_seed"] for e in summary["evaluations"]])
        mean = scores.mean(axis=1)
        std = scores.std(axis=1, ddof=1) if scores.shape[1] > 1 else np.zeros_like(mean)
        axes[0].plot(steps, mean, label=name)
        axes[0].fill_between(steps, mean - std, mean + std, alpha=0.2)
    axes[0].set_xlabel("gradient updates")
    axes[0].set_ylabel("normalized score")
    axes[0].set_title("periodic evaluation (mean ± sample std over seeds)")
    axes[0].legend()
    from offrl.envs.registry import normalized_score

    returns = dataset.episode_returns()
    score = normalized_score(returns, dataset.info.env_id)
    axes[1].hist(score if score is not None else returns, bins=30, color="gray")
    axes[1].set_xlabel("normalized episode return" if score is not None else "episode return")
    axes[1].set_ylabel("episodes")
    axes[1].set_title(f"dataset {dataset.info.name}: {dataset.num_episodes} episodes")
    fig.tight_layout()
    path = output / "quickstart.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [str(path)]
