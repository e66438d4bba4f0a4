"""offrl data inspect | validate | convert."""

import dataclasses
from typing import Literal

import tyro

from offrl.cli.common import _fail, _group_help


def cmd_data(argv: list[str]) -> None:
    from rich.console import Console

    from offrl.data.loading import load_dataset

    console = Console()
    usage = "usage: offrl data inspect|validate|convert ... (add --help to any of them)"
    _group_help(argv, usage)
    if not argv or argv[0] not in ("inspect", "validate", "convert"):
        _fail(usage)
    verb, rest = argv[0], argv[1:]

    @dataclasses.dataclass(frozen=True)
    class Source:
        """Load a dataset (every load validates it)."""

        dataset: tyro.conf.Positional[str]
        """A .hdf5 file, a Minari dataset directory or id, or suite:NAME."""
        observation_keys: tuple[str, ...] | None = None
        """robomimic-style files: the obs/<key> arrays that form the observation, in order."""
        env_id: str | None = None
        """The environment the data came from (D4RL-style files: checks shapes and bounds)."""

    @dataclasses.dataclass(frozen=True)
    class Inspect(Source):
        """Summarize a dataset: sizes, returns, lengths, actions."""

        plot: str | None = None
        """Also write the return histogram and action distributions to this PNG."""

    @dataclasses.dataclass(frozen=True)
    class Convert(Source):
        """Convert a dataset to a Minari dataset directory."""

        output: tyro.conf.Positional[str] = ""
        """The Minari dataset directory to write."""
        format: Literal["hdf5", "arrow"] = "hdf5"
        """Minari back end."""
        overwrite: bool = False
        """Replace an existing output directory."""

    cls = {"convert": Convert, "inspect": Inspect}.get(verb, Source)
    args = tyro.cli(cls, args=rest, prog=f"offrl data {verb}")
    dataset = load_dataset(args.dataset, args.observation_keys, args.env_id)
    if verb == "validate":
        console.print(
            f"[green]valid[/]: {dataset.size} transitions in {dataset.num_episodes} "
            f"episodes ({args.dataset})"
        )
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
        path = write_minari(dataset, args.output, data_format=args.format, overwrite=args.overwrite)
        console.print(f"wrote {dataset.size} transitions to {path} (Minari, {args.format})")
