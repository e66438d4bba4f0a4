"""offrl suite list | build | card."""

import dataclasses

import tyro

from offrl.cli.common import _fail, _group_help


def cmd_suite(argv: list[str]) -> None:
    from rich.console import Console

    from offrl import suites

    console = Console()
    usage = "usage: offrl suite list | offrl suite build NAME [--force] | offrl suite card NAME"
    _group_help(argv, usage)
    if not argv or argv[0] not in ("list", "build", "card"):
        _fail(usage)
    if argv[0] == "card":
        if len(argv) != 2:
            _fail("usage: offrl suite card NAME")
        console.print(suites.read_card(argv[1].removeprefix("suite:")))
        return
    if argv[0] == "list":
        for name in suites.available():
            path = suites.cache_dir() / name
            missing = suites.missing_behavior(name)
            if path.exists():
                state = f"built: {path}"
            elif missing:
                state = f"not buildable here: {missing}"
            else:
                state = f"not built: {path}"
            console.print(f"suite:{name}  ({state})")
        return

    @dataclasses.dataclass(frozen=True)
    class Args:
        """Build a suite dataset into the local cache ($OFFRL_DATA_DIR)."""

        name: tyro.conf.Positional[str]
        """The dataset, e.g. pendulum-mixed."""
        force: bool = False
        """Rebuild even if it is cached."""

    args = tyro.cli(Args, args=argv[1:], prog="offrl suite build")
    path = suites.build_suite_dataset(args.name.removeprefix("suite:"), force=args.force)
    console.print(f"built suite:{args.name.removeprefix('suite:')} at {path}")
