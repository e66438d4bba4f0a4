"""``offrl report RUN_DIR...``: one self-contained HTML page per set of runs.

For each run: the checkpoint offrl recommends deploying and how sure it is
(FQE with its bootstrap interval, next to the data's own behavior value), the
training diagnostics with their verdicts, learning curves, offline estimates
against the true returns where the run logged evaluations, how each selector
ranks the checkpoints, and a summary of the dataset. Figures are PNGs embedded
as base64 data URIs, so the file can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import os
import pathlib

import numpy as np

from offrl.data.dataset import Dataset
from offrl.evaluate.selection import (
    SELECTORS,
    analyze_run,
    choose,
    load_run_dataset,
    nan_table,
    pooled_ranking,
    rank_selectors,
    true_table,
)
from offrl.run.loggers import read_jsonl

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
.box { background: #eef6ee; border: 1px solid #9c9; padding: .8em 1em; margin: 1em 0; }
.warn { background: #fff4e5; border-color: #e6a23c; }
.verdict-ok { color: #2a7a2a; } .verdict-bad { color: #b25d00; font-weight: bold; }
img { max-width: 100%; } .small { color: #666; font-size: .9em; }
"""


def _figure_uri(fig) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:  # step axes reach 1e6: keep their tick labels apart
        ax.xaxis.set_major_locator(MaxNLocator(5))

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _e(value) -> str:
    """Anything the report did not write itself (run names, ids, cached values), escaped."""
    return html.escape(str(value))


def _fmt(value, digits: int = 1) -> str:
    """A number with ``digits`` decimals; anything else (a damaged cache) escaped as text."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return _e(value)
    return f"{value:.{digits}f}"


def _percent(value):
    return 100 * value if isinstance(value, int | float) and not isinstance(value, bool) else value


def _table(header: list[str], rows: list[list], left: int = 1) -> str:
    head = "".join(
        f'<th class="{"l" if i < left else ""}">{html.escape(str(h))}</th>'
        for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"l" if i < left else ""}">{html.escape(str(c))}</td>'
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


# ---------------------------------------------------------------- figures
def learning_curves_figure(records: list[dict]):
    plt = _plt()
    train_keys = sorted(
        {k for r in records for k in r if k.startswith("train/") and k.endswith("loss")}
    )
    has_eval = any("eval/return_mean" in r for r in records)
    panels = len(train_keys) + int(has_eval)
    if panels == 0:
        return None
    cols = min(panels, 3)
    rows = (panels + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    axes = axes.ravel()
    index = 0
    if has_eval:
        points = [(r["step"], r) for r in records if "eval/return_mean" in r]
        key = "eval/normalized_score" if "eval/normalized_score" in points[0][1] else None
        ax = axes[index]
        per_seed = "eval/normalized_per_seed" if key else "eval/return_per_seed"
        steps = [p[0] for p in points]
        table = np.asarray([p[1].get(per_seed, [p[1]["eval/return_mean"]]) for p in points])
        for s in range(table.shape[1]):
            ax.plot(steps, table[:, s], alpha=0.5, lw=1)
        ax.plot(steps, table.mean(axis=1), color="k", lw=2, label="mean over seeds")
        ax.set_title("evaluation " + ("(normalized)" if key else "return"))
        ax.set_xlabel("update")
        ax.legend(fontsize=7)
        index += 1
    for name in train_keys:
        ax = axes[index]
        points = [(r["step"], r[name]) for r in records if name in r and r[name] is not None]
        if points:
            ax.plot(*zip(*points, strict=True), lw=1)
        ax.set_title(name)
        ax.set_xlabel("update")
        index += 1
    for ax in axes[index:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def offline_figure(analysis: dict):
    """FQE (with intervals) and the true score per checkpoint; dataset Q and TD error."""
    plt = _plt()
    steps = np.asarray(analysis["steps"])
    seeds = analysis["seeds"]
    truth, label = true_table(analysis)
    normalized = analysis.get("fqe_normalized") is not None and label == "normalized score"
    estimate = np.asarray(analysis["fqe_normalized"] if normalized else analysis["signals"]["fqe"])
    suffix = "_normalized" if normalized else ""
    low = np.asarray(analysis["fqe_low" + suffix])
    high = np.asarray(analysis["fqe_high" + suffix])
    critic = analysis["signals"].get("q_peak") is not None
    cols = 3 if critic else 2
    fig, axes = plt.subplots(1, cols, figsize=(4.4 * cols, 3.3))
    ax = axes[0]
    # Same units (normalized) share the axis; otherwise the true return gets its own.
    truth_ax = ax if normalized else (ax.twinx() if truth is not None else None)
    for s, seed in enumerate(seeds):
        line = ax.plot(steps, estimate[:, s], marker="o", ms=3, label=f"FQE seed {seed}")[0]
        ax.fill_between(steps, low[:, s], high[:, s], color=line.get_color(), alpha=0.15)
        if truth_ax is not None:
            ok = np.isfinite(truth[:, s])
            truth_ax.plot(steps[ok], truth[ok, s], ls="--", color=line.get_color(), lw=1)
    ax.set_title("FQE (solid, with interval) and true score (dashed)")
    ax.set_ylabel("normalized" if normalized else "FQE discounted value")
    if truth_ax is not None and truth_ax is not ax:
        truth_ax.set_ylabel(f"true {label}")
    ax.set_xlabel("checkpoint step")
    ax.legend(fontsize=7)
    ax = axes[1]
    if truth is not None:
        ok = np.isfinite(truth)
        ax.scatter(estimate[ok], truth[ok], s=14)
        ax.set_xlabel("FQE " + ("(normalized)" if normalized else "(discounted value)"))
        ax.set_ylabel(f"true {label}")
        ax.set_title("offline estimate against truth")
    else:
        ax.text(0.5, 0.5, "no logged evaluations:\ntrue returns unknown", ha="center")
        ax.axis("off")
    if critic:
        ax = axes[2]
        q = np.asarray(analysis["signals"]["q_peak"])
        td = np.asarray(analysis["td_error"])
        for s, seed in enumerate(seeds):
            line = ax.plot(steps, q[:, s], label=f"dataset Q, seed {seed}")[0]
            ax.plot(steps, td[:, s], ls=":", color=line.get_color())
        ax.set_title("dataset Q (solid) and TD error (dotted)")
        ax.set_xlabel("checkpoint step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def dataset_figure(dataset: Dataset):
    plt = _plt()
    host = dataset.to_numpy()
    returns = host.episode_returns()
    actions = np.asarray(host.actions)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.0))
    axes[0].hist(returns, bins=min(50, max(5, len(returns) // 5)), color="#4a7")
    axes[0].set_title(f"episode returns ({len(returns)} episodes)")
    axes[0].set_xlabel("return")
    for i in range(min(actions.shape[1], 8)):
        axes[1].hist(actions[:, i], bins=50, histtype="step", label=f"dim {i}")
    axes[1].set_title("action distribution per dimension")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- sections
def _recommendation(analysis: dict) -> str:
    c, s = choose(analysis, "fqe")
    step, seed = analysis["steps"][c], analysis["seeds"][s]
    value = analysis["signals"]["fqe"][c][s]
    low, high = analysis["fqe_low"][c][s], analysis["fqe_high"][c][s]
    fits = len(analysis["fqe_fits"][c][s])
    normalized = analysis.get("fqe_normalized")
    lines = [
        f"<b>Deploy checkpoint step {_e(step)}, seed {_e(seed)}</b> (highest FQE estimate of "
        f"{len(analysis['steps']) * len(analysis['seeds'])} candidates).",
        f"FQE value (discount {_e(analysis['discount'])}): <b>{_fmt(value, 2)}</b>"
        + (
            f", {_fmt(_percent(analysis['fqe_confidence']), 0)}% bootstrap interval "
            f"[{_fmt(low, 2)}, {_fmt(high, 2)}] over {fits} episode resamples"
            if fits > 1
            else " (one fit: no interval; raise --bootstrap)"
        )
        + ".",
        f"The data's own behavior has value {_fmt(analysis['behavior_value'], 2)} "
        "(Monte Carlo over its episodes): "
        + (
            "with a single fit there is no interval to compare against it."
            if fits < 2
            else "the recommended policy is estimated <b>better than the data</b> "
            "(its whole interval lies above)."
            if low > analysis["behavior_value"]
            else "the interval does <b>not</b> clear the behavior's value: no confident "
            "improvement over the data."
        ),
    ]
    if normalized is not None:
        lines.append(
            f"On the normalized scale (discounted references): {_fmt(normalized[c][s])}, "
            f"behavior {_fmt(analysis.get('behavior_normalized'))}."
        )
    bad = [v for seed_v in analysis["diagnostics"] for v in seed_v if v["kind"] != "ok"]
    css = "box warn" if bad else "box"
    return f'<div class="{css}">' + "<br>".join(lines) + "</div>"


def _diagnostics_html(analysis: dict) -> str:
    rows = []
    for seed, verdicts in zip(analysis["seeds"], analysis["diagnostics"], strict=True):
        for v in verdicts:
            kind = v["kind"]
            css = "verdict-ok" if kind in ("ok", "no-critic") else "verdict-bad"
            rows.append(
                f'<tr><td class="l">{_e(seed)}</td><td class="l {css}">{_e(kind)}</td>'
                f'<td class="l">{_e(v["finding"])}</td>'
                f'<td class="l">{_e(v["recommendation"])}</td></tr>'
            )
    return (
        "<table><tr><th>seed</th><th class='l'>verdict</th><th class='l'>finding</th>"
        "<th class='l'>what to do</th></tr>" + "".join(rows) + "</table>"
    )


def _checkpoint_table(analysis: dict) -> str:
    truth, label = true_table(analysis)
    normalized = analysis.get("fqe_normalized")
    header = ["step", "seed", "FQE", "interval"]
    if normalized is not None:
        header.append("FQE (norm.)")
    header += ["dataset Q", "TD error", "action MSE"]
    amq = nan_table(analysis["signals"].get("amq"))
    model_value = nan_table(analysis["signals"].get("model_value"))
    if amq is not None:
        header += ["AM-Q", "model value"]
    if truth is not None:
        header.append(f"true {label}")
    rows = []
    q = nan_table(analysis["signals"].get("q_peak"))
    td = nan_table(analysis.get("td_error"))
    for c, step in enumerate(analysis["steps"]):
        for s, seed in enumerate(analysis["seeds"]):
            row = [
                step,
                seed,
                _fmt(analysis["signals"]["fqe"][c][s], 2),
                f"[{_fmt(analysis['fqe_low'][c][s], 2)}, {_fmt(analysis['fqe_high'][c][s], 2)}]",
            ]
            if normalized is not None:
                row.append(_fmt(normalized[c][s]))
            row += [
                _fmt(None if q is None else q[c, s], 3),
                _fmt(None if td is None else td[c, s], 3),
                _fmt(analysis["action_mse"][c][s], 4),
            ]
            if amq is not None:
                row += [_fmt(amq[c, s], 2), _fmt(model_value[c, s], 2)]
            if truth is not None:
                row.append(_fmt(truth[c, s]))
            rows.append(row)
    return _table(header, rows, left=0)


def _ranking_html(analysis: dict) -> str:
    ranking = rank_selectors(analysis)
    if not ranking["selectors"]:
        return (
            "<p class='small'>The run logged no evaluations at its checkpoint steps, so "
            "the selectors cannot be scored against true returns here.</p>"
        )
    rows = [
        [name, SELECTORS[name], _fmt(v["spearman"], 2), _fmt(v["regret"]), v["seeds"]]
        for name, v in ranking["selectors"].items()
    ]
    return (
        f"<p>How each selector ranks this run's checkpoints against the logged "
        f"evaluations ({_e(ranking['score'])}): Spearman correlation over a seed's checkpoints "
        f"and regret (best true score minus the chosen one's), mean over seeds.</p>"
        + _table(["selector", "rule", "Spearman", "regret", "seeds"], rows, left=2)
    )


def _dataset_html(dataset: Dataset) -> str:
    from offrl.data.summary import summarize

    summary = summarize(dataset)
    r, length = summary["return"], summary["length"]
    rows = [
        ["transitions", summary["transitions"]],
        ["episodes", summary["episodes"]],
        ["terminations / truncations", f"{summary['terminations']} / {summary['truncations']}"],
        [
            "episode return",
            f"{r['mean']:.1f} ± {r['std']:.1f} (min {r['min']:.1f}, max {r['max']:.1f})",
        ],
        ["episode length", f"{length['mean']:.1f} (min {length['min']}, max {length['max']})"],
    ]
    if "normalized_return_mean" in summary:
        rows.append(["normalized return", f"{summary['normalized_return_mean']:.1f}"])
    actions = [
        [i]
        + [
            f"{summary[k][i]:.3f}"
            for k in ("action_mean", "action_std", "action_min", "action_max")
        ]
        for i in range(summary["action_dim"])
    ]
    return (
        _table(["", ""], rows)
        + _table(["action dim", "mean", "std", "min", "max"], actions, left=0)
        + _img(_figure_uri(dataset_figure(dataset)), "dataset returns and actions")
    )


def run_section(run_dir: pathlib.Path, analysis: dict, dataset: Dataset) -> str:
    records = read_jsonl(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []
    parts = [
        f"<h2>{_e(run_dir.name)}: {_e(analysis['algorithm'])} on {_e(analysis['dataset'])}</h2>",
        f"<p class='small'>{_e(run_dir)} · {len(analysis['steps'])} checkpoints "
        f"× {len(analysis['seeds'])} seeds · environment {_e(analysis['env_id'] or 'unknown')} "
        "(not used: everything below the learning curves is computed from the data)</p>",
        _recommendation(analysis),
        "<h3>Diagnostics</h3>",
        _diagnostics_html(analysis),
    ]
    fig = learning_curves_figure(records)
    if fig is not None:
        parts += ["<h3>Learning curves</h3>", _img(_figure_uri(fig), "learning curves")]
    parts += [
        "<h3>Offline estimates per checkpoint</h3>",
        _img(_figure_uri(offline_figure(analysis)), "offline estimates"),
        _ranking_html(analysis),
        "<details><summary>every checkpoint and seed</summary>",
        _checkpoint_table(analysis),
        "</details>",
        f"<p class='small'>Action error measured on the {_e(analysis['validation_source'])}. "
        f"TD error: the run's critic against its own policy's bootstrapped target.</p>",
        "<h3>Dataset</h3>",
        _dataset_html(dataset),
    ]
    return "\n".join(parts)


def write_report(
    run_dirs: list[str | os.PathLike],
    output: str | os.PathLike,
    fqe_config=None,
    dataset: str | None = None,
    progress=None,
    steps: list[int] | None = None,
    model_ope=None,
) -> pathlib.Path:
    """Analyze every run (cached) and write one HTML report to ``output``; ``steps``
    limits the analysis to those checkpoints; ``model_ope`` (a
    :class:`offrl.evaluate.model_ope.ModelOPEConfig`) adds the model-based scores, with
    one model per dataset."""
    from offrl import __version__
    from offrl.run.settings import RunError

    sections, analyses = [], []
    datasets: dict[str, Dataset] = {}
    fitted_models: dict = {}
    for run_dir in map(pathlib.Path, run_dirs):
        config_path = run_dir / "config.json"
        if not config_path.is_file():
            raise RunError(f"{run_dir} is not a run directory (no config.json)")
        spec = dataset or json.loads(config_path.read_text()).get("dataset")
        if spec not in datasets:  # runs on the same data share one load
            datasets[spec] = load_run_dataset(run_dir, dataset)
        analysis = analyze_run(
            run_dir,
            datasets[spec],
            fqe_config,
            steps=steps,
            progress=progress,
            model_ope=model_ope,
            fitted_models=fitted_models,
        )
        analyses.append(analysis)
        sections.append(run_section(run_dir, analysis, datasets[spec]))
    summary = ""
    if len(analyses) > 1:
        pooled = pooled_ranking(analyses)
        best = max(
            ((a, *choose(a, "fqe")) for a in analyses),
            key=lambda t: t[0]["signals"]["fqe"][t[1]][t[2]],
        )
        name = _e(pathlib.Path(best[0]["run_dir"]).name)
        summary = (
            f"<div class='box'><b>Across the {len(analyses)} runs</b>, FQE prefers "
            f"{name} step {_e(best[0]['steps'][best[1]])} seed "
            f"{_e(best[0]['seeds'][best[2]])}.</div>"
        )
        if pooled:
            summary += _table(
                ["selector", "Spearman (all candidates)", "regret", "candidates"],
                [
                    [k, _fmt(v["spearman"], 2), _fmt(v["regret"]), v["candidates"]]
                    for k, v in pooled.items()
                ],
            )
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>offrl report</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>offrl report</h1><p class='small'>offrl {__version__} · {stamp} · "
        f"{len(analyses)} run(s). Offline estimates use the training data only; "
        "FQE values are discounted returns from the data's episode starts.</p>"
        + summary
        + "\n".join(sections)
        + "</body></html>"
    )
    output = pathlib.Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(page)
    tmp.replace(output)
    return output
