"""offrl label preferences | rewards | actions."""

import dataclasses

import tyro

from offrl.cli.common import _fail, _group_help


@dataclasses.dataclass(frozen=True)
class Preferences:
    """Label random segment pairs of a dataset with a scripted teacher from its true
    rewards (the larger return wins; ties within --equivalence get 0.5; --flip inverts
    labels at random): a preference file for offrl label rewards."""

    dataset: tyro.conf.Positional[str]
    """A dataset with true rewards."""
    output: str
    """The preference file to write (.npz)."""
    queries: int = 500
    """Segment pairs."""
    length: int = 50
    """Steps per segment."""
    equivalence: float = 0.0
    """Returns closer than this are a tie (label 0.5)."""
    flip: float = 0.0
    """Probability that the teacher inverts a label."""
    seed: int = 0
    """Seed of the segments and the flips."""


@dataclasses.dataclass(frozen=True)
class Rewards:
    """Learn a Bradley-Terry reward model (an MLP ensemble over states and actions,
    segments summed) from a preference file and write the dataset with its rewards."""

    dataset: tyro.conf.Positional[str]
    """The dataset the preferences label."""
    preferences: str
    """The preference file (first, second, preference, length)."""
    output: str
    """The relabeled Minari dataset directory to write."""
    steps: int = 3000
    """Updates of the reward model."""
    members: int = 3
    """Reward networks in the ensemble."""
    seed: int = 0
    """Seed of the networks."""
    overwrite: bool = False
    """Replace an existing output directory."""


@dataclasses.dataclass(frozen=True)
class Actions:
    """Label actions with SS-ORL's inverse-dynamics model p(a_t | s_{t-1}, s_t, s_{t+1}).
    With --unlabeled: fitted on DATASET (which has actions), it labels the action-free
    log UNLABELED. Without: fitted on --fraction of DATASET's trajectories (drawn from
    the lower half by return, as the released code), it labels the rest (to try the
    method where every action is known). Either way the output holds both parts, as
    subsets labeled and inferred."""

    dataset: tyro.conf.Positional[str]
    """The dataset with actions (without --unlabeled: whose actions are kept on the
    labeled part only)."""
    output: str
    """The relabeled Minari dataset directory to write."""
    unlabeled: str | None = None
    """An action-free dataset of the same robot to label."""
    fraction: float = 0.1
    """Without --unlabeled: share of the trajectories whose actions are used."""
    steps: int = 5000
    """Updates of the inverse-dynamics model."""
    seed: int = 0
    """Seed of the model and of the labeled trajectories."""
    overwrite: bool = False
    """Replace an existing output directory."""


@dataclasses.dataclass(frozen=True)
class Progress:
    """Label rewards with a progress model (VLAC's idea on states): from demonstrations
    that end where the task is done, a pairwise model learns the progress between two
    states and a done model P(done | s); each step of DATASET is rewarded with the
    progress from s to s' (about 1 per demonstration step)."""

    dataset: tyro.conf.Positional[str]
    """The dataset to label (its rewards, if any, are replaced)."""
    demonstrations: str
    """Demonstrations of the task, each ending where the task is done."""
    output: str
    """The relabeled Minari dataset directory to write."""
    steps: int = 5000
    """Updates of the progress model."""
    done_steps: int = 1
    """Last states of each demonstration labeled done."""
    done_reward: float = 0.0
    """Weight of P(done | s') added to the reward."""
    seed: int = 0
    """Seed of the model."""
    overwrite: bool = False
    """Replace an existing output directory."""


def cmd_label(argv: list[str]) -> None:
    from rich.console import Console

    from offrl.curate import preferences as prefs
    from offrl.data.formats.minari import write_minari
    from offrl.data.loading import load_dataset

    console = Console()
    usage = (
        "usage: offrl label preferences|rewards|actions|progress ... (add --help to any of them)"
    )
    _group_help(argv, usage)
    if not argv or argv[0] not in ("preferences", "rewards", "actions", "progress"):
        _fail(usage)
    verb, rest = argv[0], argv[1:]
    if verb == "progress":
        from offrl.curate import progress

        args = tyro.cli(Progress, args=rest, prog="offrl label progress")
        if args.steps <= 0 or args.done_steps <= 0:
            _fail("--steps and --done-steps must be positive")
        dataset, demos = load_dataset(args.dataset), load_dataset(args.demonstrations)
        if demos.observation_dim != dataset.observation_dim:
            _fail(
                f"the demonstrations have {demos.observation_dim}-D observations, the dataset "
                f"{dataset.observation_dim}-D: they must come from the same task"
            )
        config = progress.Config(
            steps=args.steps, done_steps=args.done_steps, done_reward=args.done_reward,
            seed=args.seed,
        )  # fmt: skip
        model = progress.fit_model(demos, config)
        path = write_minari(progress.relabel(dataset, model), args.output, overwrite=args.overwrite)
        console.print(
            f"progress model from {demos.num_episodes} demonstrations: loss "
            f"{model.losses[:50].mean():.3f} -> {model.losses[-50:].mean():.3f}; wrote {path}"
        )
        return
    if verb == "actions":
        from offrl.curate import inverse_dynamics

        args = tyro.cli(Actions, args=rest, prog="offrl label actions")
        if not 0.0 < args.fraction <= 1.0 or args.steps <= 0:
            _fail("--fraction must be in (0, 1] and --steps positive")
        dataset = load_dataset(args.dataset)
        config = inverse_dynamics.Config(steps=args.steps, seed=args.seed)
        if args.unlabeled:
            unlabeled = load_dataset(args.unlabeled)
            relabeled, diagnostics = inverse_dynamics.label_unlabeled(dataset, unlabeled, config)
        else:
            dataset.require(("actions", "rewards"), "choosing the labeled trajectories by return")
            labeled = inverse_dynamics.labeled_trajectories(dataset, args.fraction, args.seed)
            relabeled, diagnostics = inverse_dynamics.fit_and_label(dataset, labeled, config)
        path = write_minari(relabeled, args.output, overwrite=args.overwrite)
        if diagnostics.get("dropped_fields"):
            console.print(
                f"left out {', '.join(diagnostics['dropped_fields'])}: only one of the two "
                "datasets has them"
            )
        console.print(
            f"inverse dynamics from {diagnostics['labeled_episodes']} trajectories labeled "
            f"{relabeled.num_episodes - diagnostics['labeled_episodes']}: "
            f"NLL {diagnostics['nll_first']:.3f} -> {diagnostics['nll_last']:.3f}; wrote {path} "
            "(subsets labeled, inferred)"
        )
        return
    if verb == "preferences":
        args = tyro.cli(Preferences, args=rest, prog="offrl label preferences")
        if args.queries <= 0 or args.length <= 0 or not 0.0 <= args.flip <= 1.0:
            _fail("--queries and --length must be positive and --flip in [0, 1]")
        dataset = load_dataset(args.dataset)
        labeled = prefs.scripted_preferences(
            dataset, args.queries, args.length, args.equivalence, args.flip, args.seed
        )
        path = prefs.write_preferences(args.output, dataset, labeled)
        share = float((labeled["preference"] == 0.5).mean())
        console.print(f"wrote {args.queries} preferences to {path} ({100 * share:.0f}% ties)")
        return
    args = tyro.cli(Rewards, args=rest, prog="offrl label rewards")
    if args.steps <= 0 or args.members <= 0:
        _fail("--steps and --members must be positive")
    dataset = load_dataset(args.dataset)
    labeled = prefs.read_preferences(args.preferences, dataset)
    config = prefs.Config(members=args.members, steps=args.steps, seed=args.seed)
    reward, diagnostics = prefs.fit_reward_model(dataset, labeled, config)
    accuracy = prefs.preference_accuracy(reward, dataset, labeled)
    path = write_minari(prefs.relabel(dataset, reward), args.output, overwrite=args.overwrite)
    console.print(
        f"reward model: loss {diagnostics['loss_first']:.3f} -> {diagnostics['loss_last']:.3f}, "
        f"agrees with {100 * accuracy:.1f}% of the decided training preferences; wrote {path}"
    )
