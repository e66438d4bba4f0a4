"""The algorithm registry: a name maps to a module that follows the contract.

An algorithm module exposes ``Config`` (a frozen dataclass with a docstring per
field), ``State`` (a pytree), ``init(config, example_batch, key) -> State``,
``update(state, batch, config) -> (state, metrics)`` and
``act(state, observations, key, deterministic, config) -> actions``, plus
``DEFAULT_REWARD_SCALING`` (the scaling its paper uses), and optionally
``REQUIRED_FIELDS`` (dataset fields it cannot train without; ``actions`` and
``rewards`` when it does not say, see :func:`required_fields`),
``load_pretrained(states, config, preprocessor)`` (starts the initial states from
pre-trained weights the config names), ``ONLINE`` (an :class:`OnlineSpec`: mixing,
update-to-data ratio and warm-ups in
the interaction loop), ``RUN_KIND`` (``"barrier"`` for a safety filter) and
``USES_WEIGHTS`` (its loss takes the dataset's per-sample weights: ``--weights``),
``window_length(config)`` (it learns from windows of that many steps,
:mod:`offrl.data.windows`, not single transitions), ``sample_batch(dataset, key,
batch_size, config)`` (its own training batches, e.g. windows with fields gathered
from other episodes of the same task), ``history_length(config)``
(``act`` reads a window of the episode's last steps, kept during rollouts by
:mod:`offrl.core.history`) and ``prepare_dataset(dataset, config)`` (derived
fields it reads, e.g. returns-to-go) and ``pretrain(states, config, dataset,
preprocessor, keys, log) -> (states, summary)`` (work on the preprocessed training
data before the first update, e.g. MOPO's dynamics fit; not repeated on resume).
The CLI and the trainer know nothing else about an algorithm.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType


@dataclasses.dataclass(frozen=True)
class OnlineSpec:
    """What an algorithm needs from the interaction loop (``ONLINE`` in its module);
    the loop reads it, and a user's explicit settings override it.

    Room is left here for what later methods add (model rollouts feeding the
    replay, a trajectory-window sampler): a new field with a default that keeps
    every existing algorithm's behaviour.
    """

    mixing: str = "ratio"
    """ratio (a fixed offline share of every batch), union (offline data in the replay
    buffer) or online (no offline data)."""
    utd: int = 1
    """Updates per environment step."""
    random_steps: int = 0
    """Uniformly random actions (and no updates) for this many first steps."""
    learning_starts: int = 0
    """No updates before this many steps."""


def online_spec(module: ModuleType) -> OnlineSpec:
    """The algorithm's :class:`OnlineSpec` (the defaults when it declares none)."""
    return getattr(module, "ONLINE", OnlineSpec())


_ALGORITHMS: dict[str, str] = {
    "bc": "offrl.algos.bc",
    "td3_bc": "offrl.algos.td3_bc",
    "iql": "offrl.algos.iql",
    "cql": "offrl.algos.cql",
    "sac": "offrl.algos.sac",
    "vocbf": "offrl.algos.vocbf",
    "td3_bc_lag": "offrl.algos.td3_bc_lag",
    "calql": "offrl.algos.calql",
    "rlpd": "offrl.algos.rlpd",
    "resfit": "offrl.algos.resfit",
    "h2o": "offrl.algos.h2o",
    "moorl": "offrl.algos.moorl",
    "concurrent_bc": "offrl.algos.concurrent_bc",
    "gpayn": "offrl.algos.gpayn",
    "safe_set": "offrl.algos.safe_set",
    "rm_rl": "offrl.algos.rm_rl",
    "arsq": "offrl.algos.arsq",
    "rebrac": "offrl.algos.rebrac",
    "awac": "offrl.algos.awac",
    "edac": "offrl.algos.edac",
    "sac_n": "offrl.algos.sac_n",
    "dt": "offrl.algos.dt",
    "meta_dt": "offrl.algos.meta_dt",
    "mo_dt": "offrl.algos.mo_dt",
    "dmamba": "offrl.algos.dmamba",
    "bc_rnn": "offrl.algos.bc_rnn",
    "iql_history": "offrl.algos.iql_history",
    "chunked_iql": "offrl.algos.chunked_iql",
    "mopo": "offrl.algos.mopo",
    "mobile": "offrl.algos.mobile",
    "uni_o4": "offrl.algos.uni_o4",
}
#: Algorithms that learn from a fixed dataset (``offrl train``); SAC is online.
OFFLINE_ALGORITHMS = (
    "bc", "td3_bc", "iql", "cql", "vocbf", "td3_bc_lag", "calql", "rebrac", "awac", "edac",
    "sac_n", "dt", "mo_dt", "dmamba", "meta_dt", "bc_rnn", "iql_history",
    "chunked_iql", "mopo", "mobile", "uni_o4",
)  # fmt: skip
#: Algorithms ``offrl finetune`` runs (offline-to-online or hybrid).
FINETUNE_ALGORITHMS = (
    "iql",
    "cql",
    "calql",
    "rlpd",
    "resfit",
    "h2o",
    "sac",
    "moorl",
    "concurrent_bc",
    "gpayn",
    "safe_set",
    "rm_rl",
    "arsq",
)
#: Algorithms ``offrl online`` trains with no offline data at all.
ONLINE_ALGORITHMS = ("sac",)
REQUIRED = ("Config", "State", "init", "update", "act", "DEFAULT_REWARD_SCALING")


def names() -> tuple[str, ...]:
    return tuple(_ALGORITHMS)


def get(name: str) -> ModuleType:
    """The algorithm module registered under ``name`` (``td3-bc`` and ``td3_bc`` both work)."""
    key = name.replace("-", "_").lower()
    if key not in _ALGORITHMS:
        raise KeyError(f"unknown algorithm '{name}'; registered: {', '.join(_ALGORITHMS)}")
    module = importlib.import_module(_ALGORITHMS[key])
    missing = [attr for attr in REQUIRED if not hasattr(module, attr)]
    if missing:
        raise TypeError(f"algorithm module {module.__name__} lacks {missing}")
    return module


def preset_config(algorithm: str, dataset: str):
    """The algorithm's ``Config.preset(dataset)`` (its paper's released per-dataset
    settings), or ``None`` when it has no preset for the dataset."""
    preset = getattr(get(algorithm).Config, "preset", None)
    if preset is None:
        return None
    try:
        return preset(dataset)
    except KeyError:
        return None


def register(name: str, module_path: str) -> None:
    """Register an algorithm module (by import path) under ``name``."""
    _ALGORITHMS[name] = module_path


#: What an algorithm needs from a dataset when its module does not say.
DEFAULT_REQUIRED_FIELDS = ("actions", "rewards")


def required_fields(module: ModuleType) -> tuple[str, ...]:
    """The dataset fields ``module`` cannot train without (``REQUIRED_FIELDS``)."""
    return tuple(getattr(module, "REQUIRED_FIELDS", DEFAULT_REQUIRED_FIELDS))
