"""offrl data inspect | validate | convert."""

import dataclasses
from typing import Literal

import numpy as np
import tyro

from offrl.cli.common import _fail, _group_help
from offrl.data.dataset import LABEL_FIXES


def cmd_data(argv: list[str]) -> None:
    from rich.console import Console

    from offrl.data.loading import load_dataset

    console = Console()
    usage = (
        "usage: offrl data inspect|validate|convert|quality|curate|weigh|retrieve|augment ... "
        "(add --help to any of them)"
    )
    _group_help(argv, usage)
    verbs = ("inspect", "validate", "convert", "quality", "curate", "weigh", "retrieve", "augment")
    if not argv or argv[0] not in verbs:
        _fail(usage)
    verb, rest = argv[0], argv[1:]
    commands = {
        "quality": cmd_quality,
        "curate": cmd_curate,
        "weigh": cmd_weigh,
        "retrieve": cmd_retrieve,
        "augment": cmd_augment,
    }
    if verb in commands:
        return commands[verb](rest, console)

    @dataclasses.dataclass(frozen=True)
    class Source:
        """Load a dataset (every load validates it)."""

        dataset: tyro.conf.Positional[str]
        """A .hdf5 file, a Minari dataset directory or id, or suite:NAME."""
        observation_keys: tuple[str, ...] | None = None
        """robomimic-style files: the obs/<key> arrays that form the observation, in order."""
        env_id: str | None = None
        """The environment the data came from (D4RL-style files: checks shapes and bounds)."""
        filter_key: str | None = None
        """Only the episodes of this named subset (offrl data inspect lists them)."""
        done_means: Literal["truncation", "termination"] = "truncation"
        """LeRobot datasets: what an episode's last frame is (a recording that stopped,
        or a terminal state)."""

    @dataclasses.dataclass(frozen=True)
    class Inspect(Source):
        """Summarize a dataset: sizes, returns, lengths, actions."""

        plot: str | None = None
        """Also write the return histogram and action distributions to this PNG."""

    @dataclasses.dataclass(frozen=True)
    class Convert(Source):
        """Convert a dataset to a Minari or LeRobot (v3.0) dataset directory."""

        output: tyro.conf.Positional[str] = ""
        """The dataset directory to write."""
        format: Literal["hdf5", "arrow", "lerobot"] = "hdf5"
        """Minari's HDF5 or Arrow back end, or a LeRobot v3.0 dataset."""
        task: str | None = None
        """LeRobot: the task of episodes no task:... subset names (default: the name)."""
        fps: int | None = None
        """LeRobot: frames per second (default: the environment's render_fps, else 30)."""
        overwrite: bool = False
        """Replace an existing output directory."""
        drop: tuple[Literal["actions", "rewards"], ...] = ()
        """Leave these fields out (an action-free or reward-free copy, e.g. to try the
        labeling commands on data whose labels are known)."""

    cls = {"convert": Convert, "inspect": Inspect}.get(verb, Source)
    args = tyro.cli(cls, args=rest, prog=f"offrl data {verb}")
    dataset = load_dataset(
        args.dataset, args.observation_keys, args.env_id, args.filter_key, args.done_means
    )
    if verb == "validate":
        console.print(
            f"[green]valid[/]: {dataset.size} transitions in {dataset.num_episodes} "
            f"episodes ({args.dataset})"
        )
        for name in dataset.missing_fields():
            console.print(f"[yellow]no {name}[/]: {LABEL_FIXES[name]}")
    elif verb == "inspect":
        from offrl.data.summary import print_summary

        print_summary(dataset, console)
        if args.plot:
            from offrl.evaluate.report import dataset_figure

            dataset_figure(dataset).savefig(args.plot, dpi=100, bbox_inches="tight")
            console.print(f"wrote {args.plot}")
    else:
        from offrl.data.formats.minari import write_minari

        if not args.output:
            _fail("offrl data convert SOURCE OUTPUT: OUTPUT is missing")
        dataset = dataset.replace(**{name: None for name in args.drop})
        if args.format == "lerobot":
            from offrl.data.formats.lerobot import write_lerobot

            path = write_lerobot(
                dataset, args.output, args.task, args.fps, overwrite=args.overwrite
            )
            console.print(f"wrote {dataset.size} transitions to {path} (LeRobot v3.0)")
            return
        path = write_minari(dataset, args.output, data_format=args.format, overwrite=args.overwrite)
        console.print(f"wrote {dataset.size} transitions to {path} (Minari, {args.format})")


@dataclasses.dataclass(frozen=True)
class Quality:
    """Score a dataset and each of its episodes: action divergence, novelty, DemInf's
    mutual-information score, overlap with a reference, returns (offrl.curate.quality)."""

    dataset: tyro.conf.Positional[str]
    """A .hdf5 file, a Minari dataset directory or id, or suite:NAME."""
    output: str | None = None
    """Write the scores here (JSON; offrl data curate reads it). Default: print only."""
    plot: str | None = None
    """Also write a figure of every score against the episode return to this PNG."""
    reference: str | None = None
    """A dataset to measure overlap with (e.g. the clean demonstrations)."""
    observation_keys: tuple[str, ...] | None = None
    """robomimic-style files: the obs/<key> arrays that form the observation, in order."""
    env_id: str | None = None
    """The environment the data came from (D4RL-style files: checks shapes and bounds)."""
    encoder: Literal["auto", "vae", "none"] = "auto"
    """DemInf's latents: a beta-VAE per space, the standardized data, or auto."""
    vae_steps: int = 2000
    """Updates of each beta-VAE (DemInf: 50,000)."""
    repeats: int = 4
    """Passes over the data in fresh random batches."""
    seed: int = 0
    """Seed of the batches and the VAE."""


def cmd_quality(argv: list[str], console) -> None:
    from offrl.curate.quality import QualityConfig, assess, write_scores
    from offrl.curate.report import print_quality, quality_figure
    from offrl.data.loading import load_dataset

    args = tyro.cli(Quality, args=argv, prog="offrl data quality")
    if args.vae_steps <= 0 or args.repeats <= 0:
        _fail("--vae-steps and --repeats must be positive")
    dataset = load_dataset(args.dataset, args.observation_keys, args.env_id)
    reference = load_dataset(args.reference) if args.reference else None
    config = QualityConfig(
        encoder=args.encoder, vae_steps=args.vae_steps, repeats=args.repeats, seed=args.seed
    )
    scores = assess(dataset, config, reference)
    scores["dataset"] = args.dataset
    print_quality(scores, console)
    if args.output:
        console.print(f"wrote {write_scores(args.output, scores)}")
    if args.plot:
        quality_figure(scores).savefig(args.plot, dpi=100, bbox_inches="tight")
        console.print(f"wrote {args.plot}")


@dataclasses.dataclass(frozen=True)
class Curate:
    """Keep the best episodes by a quality score as a named subset (a filter key), a new
    dataset, or per-episode loss weights (offrl.curate.select)."""

    dataset: tyro.conf.Positional[str]
    """The dataset the scores were computed for."""
    scores: str
    """The scores file of offrl data quality --output."""
    by: str = "deminf"
    """The score to rank by: deminf, action_divergence, return, overlap, novelty."""
    top: float | None = None
    """Keep this fraction of the episodes (of each --within subset)."""
    threshold: float | None = None
    """Keep the episodes whose score is at least this (at most, when lower is better)."""
    within: tuple[str, ...] = ()
    """Keep the top fraction within each of these subsets (e.g. one per operator)."""
    lower_is_better: bool | None = None
    """Override the score's direction (needed for novelty)."""
    key: str | None = None
    """Store the kept episodes as this named subset of the dataset."""
    output: str | None = None
    """Write the kept episodes as a new Minari dataset here."""
    weights_output: str | None = None
    """Write per-episode loss weights exp(z / T) of the standardized score (mean 1) to this
    .npz, for offrl train --weights."""
    temperature: float = 1.0
    """T of --weights-output."""
    observation_keys: tuple[str, ...] | None = None
    """robomimic-style files: the obs/<key> arrays that form the observation, in order."""
    env_id: str | None = None
    """The environment the data came from (D4RL-style files)."""


def cmd_curate(argv: list[str], console) -> None:
    from offrl.curate.quality import read_scores
    from offrl.curate.select import episode_weights, keep
    from offrl.data.formats.minari import write_minari
    from offrl.data.loading import load_dataset
    from offrl.data.subsets import write_subsets
    from offrl.data.weights import write_weights

    args = tyro.cli(Curate, args=argv, prog="offrl data curate")
    if not (args.key or args.output or args.weights_output):
        _fail("offrl data curate: say what to write: --key NAME, --output DIR or --weights-output")
    wants_selection = args.key or args.output
    if wants_selection and (args.top is None) == (args.threshold is None):
        _fail("offrl data curate: give exactly one of --top FRACTION and --threshold VALUE")
    dataset = load_dataset(args.dataset, args.observation_keys, args.env_id)
    scores = read_scores(args.scores, dataset)
    direction = None if args.lower_is_better is None else not args.lower_is_better
    if wants_selection:
        groups = [dataset.subset_episodes(name) for name in args.within] or None
        kept = keep(scores, args.by, args.top, args.threshold, groups, direction)
        if kept.size == 0:
            _fail(f"no episode passes the selection by {args.by}; nothing was written")
        console.print(
            f"kept {kept.size} of {dataset.num_episodes} episodes by {args.by} "
            f"({int(np.asarray(dataset.episode_lengths)[kept].sum())} transitions)"
        )
        if args.key:
            write_subsets(dataset, {args.key: kept})
            console.print(f"wrote the subset '{args.key}' to {dataset.info.location}")
        if args.output:
            path = write_minari(dataset.select_episodes(kept), args.output)
            console.print(f"wrote {path} (Minari)")
    if args.weights_output:
        weights = episode_weights(scores, args.by, args.temperature, direction)
        path = write_weights(args.weights_output, dataset, weights, episode_scores=weights)
        console.print(
            f"wrote {path}: per-episode weights by {args.by} (min {weights.min():.3g}, "
            f"max {weights.max():.3g}, mean 1)"
        )


@dataclasses.dataclass(frozen=True)
class Weigh:
    """Per-sample loss weights for offrl train --weights: PTR (how well a step's outcome
    can be picked out of K candidates; offrl.curate.ptr), OOD-IL (how well each
    demonstration transfers to the imitator's dynamics; offrl.curate.oodil) or APO (from
    intervention flags: corrections up, the steps before a takeover down;
    offrl.curate.apo) or EIL (0 for the extraneous steps no other demonstration shares,
    by temporal cycle-consistency; offrl.curate.eil)."""

    dataset: tyro.conf.Positional[str]
    """The demonstrations to weigh."""
    method: Literal["ptr", "oodil", "apo", "eil"]
    """ptr, oodil, apo or eil."""
    output: str
    """The weights file to write (.npz)."""
    feasible: str | None = None
    """oodil: transitions logged on the imitator's own system (any behavior), covering the
    demonstrations' states."""
    horizon: int = 10
    """ptr: steps ahead of the outcome (1: the next state)."""
    pre_window: int = 15
    """apo: policy steps before a takeover counted undesirable."""
    steps: int = 3000
    """Updates of each network."""
    seed: int = 0
    """Seed of the networks."""
    observation_keys: tuple[str, ...] | None = None
    """robomimic-style files: the obs/<key> arrays that form the observation, in order."""
    env_id: str | None = None
    """The environment the data came from (D4RL-style files)."""


def cmd_weigh(argv: list[str], console) -> None:
    from offrl.curate import apo, eil, oodil, ptr
    from offrl.data.loading import load_dataset
    from offrl.data.weights import attach_weights, write_weights

    args = tyro.cli(Weigh, args=argv, prog="offrl data weigh")
    if args.steps <= 0 or args.horizon <= 0:
        _fail("--steps and --horizon must be positive")
    if args.method == "oodil" and not args.feasible:
        _fail("offrl data weigh --method oodil needs --feasible DATASET (the imitator's own logs)")
    dataset = load_dataset(args.dataset, args.observation_keys, args.env_id)
    if args.method == "ptr":
        config = ptr.Config(horizon=args.horizon, steps=args.steps, seed=args.seed)
        weights = ptr.weights(dataset, config)
    elif args.method == "apo":
        weights = apo.weights(dataset, apo.Config(pre_window=args.pre_window))
    elif args.method == "eil":
        weights, diagnostics = eil.weights(dataset, eil.Config(steps=args.steps, seed=args.seed))
        console.print(", ".join(f"{k} {v:.4g}" for k, v in diagnostics.items()))
    else:
        config = oodil.Config(
            model_steps=args.steps, discriminator_steps=args.steps, seed=args.seed
        )
        weights, diagnostics = oodil.episode_weights(dataset, load_dataset(args.feasible), config)
        console.print(", ".join(f"{k} {v:.4g}" for k, v in diagnostics.items()))
    path = write_weights(args.output, dataset, weights)
    per_step = np.asarray(attach_weights(dataset, weights).weights)
    console.print(
        f"wrote {path}: {args.method} weights, mean {per_step.mean():.3g}, "
        f"min {per_step.min():.3g}, max {per_step.max():.3g}"
    )
    lengths = np.asarray(dataset.episode_lengths)
    rows = np.repeat(np.arange(dataset.num_episodes), lengths)
    for name, ids in dataset.info.subsets:
        mask = np.isin(rows, ids)
        console.print(f"  subset '{name}': mean weight {per_step[mask].mean():.3g}")


@dataclasses.dataclass(frozen=True)
class Retrieve:
    """Behavior Retrieval: keep the prior transitions most like the task demonstrations
    (a beta-VAE embedding of (s, a)) and write them with the demonstrations as one dataset
    (subsets task and retrieved; offrl.curate.retrieval)."""

    prior: str
    """The large prior dataset to retrieve from."""
    task: str
    """The few demonstrations of the task."""
    output: str
    """The Minari dataset directory to write."""
    fraction: float = 0.1
    """Share of the prior transitions retrieved."""
    steps: int = 2000
    """VAE updates."""
    seed: int = 0
    """Seed of the VAE."""
    overwrite: bool = False
    """Replace an existing output directory."""


def cmd_retrieve(argv: list[str], console) -> None:
    from offrl.curate import retrieval
    from offrl.data.formats.minari import write_minari
    from offrl.data.loading import load_dataset

    args = tyro.cli(Retrieve, args=argv, prog="offrl data retrieve")
    if not 0.0 < args.fraction <= 1.0 or args.steps <= 0:
        _fail("--fraction must be in (0, 1] and --steps positive")
    prior, task = load_dataset(args.prior), load_dataset(args.task)
    config = retrieval.Config(fraction=args.fraction, steps=args.steps, seed=args.seed)
    joined, rows = retrieval.retrieve(prior, task, config)
    path = write_minari(joined, args.output, overwrite=args.overwrite)
    console.print(
        f"retrieved {rows.size} of {prior.size} prior transitions; wrote them with the "
        f"{task.num_episodes} task episodes ({task.size} transitions) to {path} (subsets "
        "task, retrieved)"
    )


@dataclasses.dataclass(frozen=True)
class Synther:
    """SynthER: fit an elucidated diffusion model to the dataset's transitions
    (s, a, r, s', termination) and write synthetic ones, after the real episodes
    (subsets real, synthetic) or alone (--synthetic-only). The defaults fit a CPU;
    --released takes the paper's (width 2048, 6 blocks, 100,000 updates)."""

    dataset: tyro.conf.Positional[str]
    """A .hdf5 file, a Minari dataset directory or id, or suite:NAME."""
    output: str
    """The Minari dataset directory to write."""
    samples: int = 100_000
    """Synthetic transitions to write."""
    synthetic_only: bool = False
    """Write only the synthetic transitions."""
    steps: int | None = None
    """Updates of the diffusion model (default 20,000; released 100,000)."""
    width: int | None = None
    """Width of the residual MLP denoiser (default 256; released 2048)."""
    depth: int | None = None
    """Residual blocks of the denoiser (default 3; released 6)."""
    sample_steps: int | None = None
    """Noise levels of the sampler (default and released: 128)."""
    released: bool = False
    """The released settings (overrides --steps, --width, --depth): slow on a CPU."""
    filter_key: str | None = None
    """Model only the episodes of this subset."""
    seed: int = 0
    """Seed of the model and the samples."""
    overwrite: bool = False
    """Replace an existing output directory."""


@dataclasses.dataclass(frozen=True)
class Guda:
    """GuDA: augment trajectory segments of a PointMaze dataset with translations and
    reflections that keep the maze's walls, and keep only the augmented segments that
    make progress (their shortest-path distance to the goal falls), or every valid
    one with --unguided; written after the real episodes (subsets real, augmented)."""

    dataset: tyro.conf.Positional[str]
    """A PointMaze dataset (offrl's 6-D goal observation)."""
    output: str
    """The Minari dataset directory to write."""
    segments: int = 2000
    """Augmented segments to keep."""
    length: int = 20
    """Steps per segment."""
    operations: tuple[Literal["translate", "reflect"], ...] = ("translate", "reflect")
    """Augmentation operations to draw from."""
    unguided: bool = False
    """Keep every augmented segment that respects the walls (random augmentation)."""
    progress: float = 0.0
    """The guidance predicate: the distance to the goal must fall by more than this."""
    seed: int = 0
    """Seed of the segments and the operations."""
    overwrite: bool = False
    """Replace an existing output directory."""


def cmd_augment(argv: list[str], console) -> None:
    from offrl.data.formats.minari import write_minari
    from offrl.data.loading import load_dataset
    from offrl.run.settings import to_jsonable

    usage = "usage: offrl data augment synther|guda ... (add --help to either)"
    _group_help(argv, usage)
    if not argv or argv[0] not in ("synther", "guda"):
        _fail(usage)
    if argv[0] == "guda":
        from offrl.curate import guda

        args = tyro.cli(Guda, args=argv[1:], prog="offrl data augment guda")
        if args.segments <= 0 or args.length <= 0 or not args.operations:
            _fail("--segments and --length must be positive and --operations non-empty")
        dataset = load_dataset(args.dataset)
        config = guda.Config(
            segments=args.segments, length=args.length, operations=args.operations,
            guided=not args.unguided, progress=args.progress, seed=args.seed,
        )  # fmt: skip
        augmented, report = guda.augment_pointmaze(dataset, config)
        card = {"offrl_augmented": {"method": "guda", "source": args.dataset, **report}}
        path = write_minari(augmented, args.output, metadata=card, overwrite=args.overwrite)
        console.print(
            f"kept {report['kept']} of {report['tried']} augmented segments "
            f"({report['invalid']} crossed a wall, {report['rejected']} made no progress); "
            f"wrote {path} (subsets real, augmented)"
        )
        return
    from offrl.curate import synther

    args = tyro.cli(Synther, args=argv[1:], prog="offrl data augment synther")
    settings = {"steps": args.steps, "width": args.width, "depth": args.depth}
    chosen = {k: v for k, v in settings.items() if v is not None}
    if args.samples <= 0 or any(v <= 0 for v in chosen.values()):
        _fail("--samples, --steps, --width and --depth must be positive")
    if args.released and chosen:
        _fail(f"--released sets {', '.join(chosen)}; pass one or the other")
    dataset = load_dataset(args.dataset, filter_key=args.filter_key)
    config = synther.Config.released(dataset.size) if args.released else synther.Config()
    edm = config.edm
    if args.sample_steps is not None:
        if args.sample_steps < 2:
            _fail("--sample-steps must be at least 2")
        edm = dataclasses.replace(edm, sample_steps=args.sample_steps)
    config = dataclasses.replace(config, **chosen, seed=args.seed, edm=edm)
    augmented, model = synther.augment(dataset, args.samples, config, mix=not args.synthetic_only)
    card = {
        "offrl_synthetic": {
            "method": "synther",
            "source": args.dataset,
            "filter_key": args.filter_key,
            "real_transitions": dataset.size,
            "synthetic_transitions": args.samples,
            "config": to_jsonable(config),
            "loss_first": float(model.losses[:100].mean()),
            "loss_last": float(model.losses[-100:].mean()),
        }
    }
    path = write_minari(augmented, args.output, metadata=card, overwrite=args.overwrite)
    console.print(
        f"diffusion loss {card['offrl_synthetic']['loss_first']:.3f} -> "
        f"{card['offrl_synthetic']['loss_last']:.3f}; wrote {args.samples} synthetic "
        f"transitions{'' if args.synthetic_only else f' after {dataset.size} real ones'} to "
        f"{path} (subset synthetic)"
    )
