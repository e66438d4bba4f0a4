"""The quality scores as a terminal table and a figure."""

from __future__ import annotations

import numpy as np

from offrl.curate.quality import SCORES

_DIRECTION = {True: "higher is better", False: "lower is better", None: ""}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3:
        return float("nan")
    ranks = [np.argsort(np.argsort(v[keep])) for v in (a, b)]
    if ranks[0].std() == 0 or ranks[1].std() == 0:
        return float("nan")
    return float(np.corrcoef(*ranks)[0, 1])


def print_quality(scores: dict, console=None, show: int = 5) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    metrics = Table(title=f"data quality: {scores['dataset']}", show_header=False)
    for name, value in scores["dataset_metrics"].items():
        metrics.add_row(name, f"{value:.4g}")
    metrics.add_row("episodes", str(scores["num_episodes"]))
    console.print(metrics)

    episodes = {k: np.asarray(v, np.float64) for k, v in scores["episodes"].items()}
    names = [n for n in SCORES if n in episodes]
    per_score = Table(title="per-episode scores (mean ± sample std; Spearman with the return)")
    for column in ("score", "direction", "mean ± std", "ρ with return"):
        per_score.add_column(column)
    for name in names:
        values = episodes[name][np.isfinite(episodes[name])]
        spread = f"{values.mean():.3g} ± {values.std(ddof=1):.3g}" if values.size > 1 else "-"
        rho = _spearman(episodes[name], episodes["return"]) if name != "return" else 1.0
        per_score.add_row(name, _DIRECTION[SCORES[name]], spread, f"{rho:.2f}")
    console.print(per_score)

    if scores.get("subsets"):
        subsets = Table(title="subsets (means over their episodes)")
        subsets.add_column("subset")
        for name in names:
            subsets.add_column(name)
        for subset, means in scores["subsets"].items():
            subsets.add_row(subset, *(f"{means.get(n, float('nan')):.3g}" for n in names))
        console.print(subsets)

    if "deminf" in episodes and show > 0:
        order = np.argsort(-np.nan_to_num(episodes["deminf"], nan=-np.inf))
        ranked = Table(title=f"episodes by deminf: the {show} highest and lowest")
        for column in ("episode", "deminf", "action_divergence", "return", "length"):
            ranked.add_column(column)
        shown = list(order[:show]) + list(order[-show:]) if len(order) > 2 * show else order
        for i in shown:
            ranked.add_row(
                str(int(i)),
                *(f"{episodes[c][i]:.3g}" for c in ("deminf", "action_divergence", "return")),
                str(int(episodes["length"][i])),
            )
        console.print(ranked)


def quality_figure(scores: dict):
    """Each per-episode score against the episode's return (one panel per score)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    episodes = {k: np.asarray(v, np.float64) for k, v in scores["episodes"].items()}
    names = [n for n in SCORES if n in episodes and n != "return"]
    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        ax.scatter(episodes[name], episodes["return"], s=10, alpha=0.7)
        ax.set_xlabel(f"{name} ({_DIRECTION[SCORES[name]] or 'no direction'})")
        ax.set_ylabel("episode return")
        ax.set_title(f"ρ = {_spearman(episodes[name], episodes['return']):.2f}")
    figure.suptitle(f"data quality: {scores['dataset']}")
    figure.tight_layout()
    return figure
