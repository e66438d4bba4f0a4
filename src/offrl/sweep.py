"""``offrl sweep CONFIG``: algorithms x datasets x settings on Ray Tune, on this
machine or a cluster, aggregated into the ``offrl bench`` table.

The sweep file (TOML or JSON) names what to run::

    algorithms = ["td3_bc", "iql"]
    datasets = ["suite:pendulum-mixed", "suite:pendulum-medium"]
    seeds = [0, 1, 2]
    steps = 20000
    search = "grid"                 # or "random": `samples` draws per algorithm x dataset

    [space.td3_bc]
    alpha = "cat:1.0,2.5,5.0"       # a grid takes cat: lists; random also int/float/log
    [space.iql]
    expectile = "cat:0.5,0.7,0.9"

The dimensions are ``offrl search``'s (``cat:A,B``, ``int:LO:HI``, ``float:LO:HI``,
``log:LO:HI``), per algorithm. Every trial is one offrl run directory under
``OUTPUT/runs/<algorithm>/<dataset>/<settings>`` with all its seeds trained in
parallel under ``vmap`` (Ray Tune has no seed aggregation; a trial reports its
seeds' mean). Ray Tune schedules the trials (``--address`` joins a running
cluster; the run directories and the output must then be on storage every node
sees). A finished trial is reused and an interrupted one resumed from its
checkpoint when the sweep is run again, as ``offrl bench`` cells are; random
draws come from ``sample_seed``, so a rerun draws the same settings.

The table is ``offrl bench``'s (``OUTPUT/results.md``, ``.csv``, ``.json``,
``profiles.png``): one row per (dataset, algorithm with its settings), the
interquartile mean with 95% stratified bootstrap intervals per algorithm setting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import pathlib
import tomllib
from typing import Literal

import numpy as np

from offrl.bench import BenchConfig, cell_name, table, write_tables
from offrl.core import registry
from offrl.run.settings import RunError
from offrl.run.train import TrainConfig, train_or_reuse
from offrl.search import parse_space


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """What a sweep file holds: its own keys are these fields; the training and scoring
    keys (``seeds``, ``steps``, ``eval_every``, ``eval_episodes``, ``checkpoint_every``,
    ``heldout_episodes``, ``presets``, ``output``) are :class:`offrl.bench.BenchConfig`'s
    and mean what they mean there."""

    algorithms: tuple[str, ...]
    datasets: tuple[str, ...]
    bench: BenchConfig
    space: dict = dataclasses.field(default_factory=dict)
    search: Literal["grid", "random"] = "grid"
    samples: int = 1
    sample_seed: int = 0
    cpus_per_trial: float = 1.0

    def train_config(self) -> TrainConfig:
        return dataclasses.replace(self.bench.train_config(), progress=False)

    @classmethod
    def from_dict(cls, raw: dict) -> SweepConfig:
        """Rebuilt from ``dataclasses.asdict`` (what a Ray worker receives)."""
        bench = BenchConfig(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in raw["bench"].items()})  # fmt: skip
        rest = {k: v for k, v in raw.items() if k != "bench"}
        rest["algorithms"], rest["datasets"] = tuple(rest["algorithms"]), tuple(rest["datasets"])
        return cls(bench=bench, **rest)


_OWN = {f.name for f in dataclasses.fields(SweepConfig)} - {"bench"}
_BENCH = {f.name for f in dataclasses.fields(BenchConfig)} - {"algorithms", "datasets"}


def read_sweep(path: str | os.PathLike, output: str | None = None) -> SweepConfig:
    """The sweep file as a :class:`SweepConfig`; ``RunError`` naming a bad key."""
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise RunError(f"cannot read the sweep file {path}: {error.strerror}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise RunError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: "
                       f"{error}") from None  # fmt: skip
    known = _OWN | _BENCH
    unknown = sorted(set(raw) - known)
    if unknown:
        raise RunError(f"{path}: unknown key(s) {', '.join(unknown)}; keys: "
                       f"{', '.join(sorted(known))}")  # fmt: skip
    for key in ("algorithms", "datasets"):
        if not raw.get(key):
            raise RunError(f"{path}: '{key}' needs at least one entry")
    bench = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in _BENCH}
    bench["output"] = output or bench.get("output", "runs/sweep")
    own = {k: v for k, v in raw.items() if k in _OWN}
    own["algorithms"], own["datasets"] = tuple(own["algorithms"]), tuple(own["datasets"])
    config = SweepConfig(bench=BenchConfig(**bench), **own)
    config.train_config().check()
    for name in config.algorithms:
        if name.replace("-", "_") not in registry.OFFLINE_ALGORITHMS:
            raise RunError(f"{path}: '{name}' is not an offline algorithm; choose from "
                           f"{', '.join(registry.OFFLINE_ALGORITHMS)}")  # fmt: skip
    extra = sorted(set(config.space) - set(config.algorithms))
    if extra:
        raise RunError(f"{path}: [space.{extra[0]}] names an algorithm the sweep does not run")
    if config.search == "random" and config.samples < 1:
        raise RunError(f"{path}: samples must be at least 1")
    return config


def _settings(config: SweepConfig, algorithm: str, rng: np.random.Generator) -> list[dict]:
    """The settings of one (algorithm, dataset) cell: the grid, or ``samples`` draws."""
    entries = [f"{name}={spec}" for name, spec in config.space.get(algorithm, {}).items()]
    dims = parse_space(entries, algorithm)
    if not dims:
        return [{}]
    if config.search == "grid":
        for dim in dims:
            if dim.kind != "cat":
                raise RunError(
                    f"[space.{algorithm}] {dim.name}: a grid takes cat:A,B,... values "
                    '(use search = "random" for ranges)'
                )
        return [
            dict(zip([d.name for d in dims], values, strict=True))
            for values in itertools.product(*(d.choices for d in dims))
        ]
    draws = []
    for _ in range(config.samples):
        draw = {}
        for dim in dims:
            if dim.kind == "cat":
                draw[dim.name] = dim.choices[int(rng.integers(len(dim.choices)))]
            elif dim.kind == "int":
                draw[dim.name] = int(rng.integers(int(dim.low), int(dim.high) + 1))
            elif dim.kind == "log":
                draw[dim.name] = float(np.exp(rng.uniform(np.log(dim.low), np.log(dim.high))))
            else:
                draw[dim.name] = float(rng.uniform(dim.low, dim.high))
        draws.append(draw)
    return draws


def _label(algorithm: str, settings: dict) -> str:
    if not settings:
        return algorithm
    return algorithm + " " + ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in settings.items())  # fmt: skip


def trials(config: SweepConfig) -> list[dict]:
    """Every trial: algorithm, dataset, settings, label and run directory (stable: the
    directory name is the settings and a hash of them)."""
    rng = np.random.default_rng(config.sample_seed)
    out = []
    output = pathlib.Path(config.bench.output).absolute()
    for algorithm in config.algorithms:
        for dataset in config.datasets:
            for settings in _settings(config, algorithm, rng):
                digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()
                parts = [f"{k}{v:.3g}" if isinstance(v, float) else f"{k}{v}"
                         for k, v in settings.items()]  # fmt: skip
                name = "-".join(parts) + f"-{digest[:6]}" if settings else "default"
                out.append(
                    {
                        "algorithm": algorithm,
                        "dataset": dataset,
                        "settings": settings,
                        "label": _label(algorithm, settings),
                        "run_dir": str(output / "runs" / algorithm / cell_name(dataset) / name),
                    }
                )
    return out


def algo_config(config: SweepConfig, trial: dict):
    """The trial's algorithm Config: the preset (with ``presets``) or the defaults, with
    the trial's settings."""
    presets = config.bench.presets
    base = registry.preset_config(trial["algorithm"], trial["dataset"]) if presets else None
    base = base or registry.get(trial["algorithm"]).Config()
    return dataclasses.replace(base, **trial["settings"])


def run_trial(params: dict) -> dict:
    """One Ray Tune trial: train (or reuse, or resume) the run and report its scores."""
    config = SweepConfig.from_dict(params["config"])
    trial = params["trial"]
    summary = train_or_reuse(
        trial["algorithm"], trial["dataset"], trial["run_dir"], algo_config(config, trial),
        config.train_config(),
    )  # fmt: skip
    metrics = {
        "final_mean": float(np.mean(summary["final_per_seed"])),
        "best_mean": float(np.mean(summary["best_per_seed"])),
        "wall_seconds": summary.get("wall_seconds"),
    }
    from ray import tune

    tune.report(metrics)
    return metrics


def run_sweep(
    config: SweepConfig, address: str | None = None, num_cpus: int | None = None, progress=print
) -> dict:
    """Run every trial on Ray Tune and write the table; returns ``bench.table``'s
    result with ``files`` and ``trials``."""
    try:
        import ray
        from ray import tune
    except ImportError as error:
        raise RunError('offrl sweep needs Ray Tune: pip install "offrl[sweep]"') from error
    from offrl.data.loading import load_dataset

    planned = trials(config)
    for trial in planned:
        algo_config(config, trial)  # a bad setting fails here, before Ray starts
    for dataset in config.datasets:  # built once here, not by trials racing to build it
        load_dataset(dataset)
    progress(f"{len(planned)} trials, {len(config.bench.seeds)} seeds each")
    output = pathlib.Path(config.bench.output).absolute()
    env_vars = {k: os.environ[k] for k in ("OFFRL_DATA_DIR", "XLA_FLAGS") if k in os.environ}
    started = False
    if not ray.is_initialized():
        ray.init(
            address=address,
            num_cpus=None if address else num_cpus,
            include_dashboard=False,
            runtime_env={"env_vars": env_vars} if env_vars else None,
            log_to_driver=False,
            configure_logging=False,
        )
        started = True
    try:
        absolute = dataclasses.replace(config.bench, output=str(output))
        params = {"config": dataclasses.asdict(dataclasses.replace(config, bench=absolute))}
        tuner = tune.Tuner(
            tune.with_resources(run_trial, {"cpu": config.cpus_per_trial}),
            param_space={**params, "trial": tune.grid_search(planned)},
            tune_config=tune.TuneConfig(num_samples=1),
            run_config=tune.RunConfig(name="sweep", storage_path=str(output / "ray"), verbose=0),
        )
        grid = tuner.fit()
        failed = [r for r in grid if r.error is not None]
        if failed:
            first = failed[0]
            raise RunError(
                f"{len(failed)} of {len(planned)} trials failed; the first, "
                f"{first.config['trial']['label']} on {first.config['trial']['dataset']}: "
                f"{' '.join(str(first.error).split())[:300]}"
            )
    finally:
        if started:
            ray.shutdown()
    summaries, labels = {}, []
    for trial in planned:
        summary = json.loads((pathlib.Path(trial["run_dir"]) / "summary.json").read_text())
        summaries[(trial["label"], trial["dataset"])] = summary
        if trial["label"] not in labels:
            labels.append(trial["label"])
    bench = dataclasses.replace(
        config.bench, algorithms=tuple(labels), datasets=config.datasets, output=str(output)
    )
    result = table(bench, summaries)
    result["files"] = [str(p) for p in write_tables(bench, result)]
    result["trials"] = planned
    return result
