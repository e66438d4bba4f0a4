"""Cal-QL: calibrated conservative Q-learning for offline-to-online (Nakamoto et al., 2023).

CQL's penalty pushes down the values of policy actions without limit, so a
pre-trained CQL critic can sit far below the true values; once online, the
first real returns then look like huge improvements for *any* action and the
policy unlearns (the initial dip). Cal-QL floors the pushed-down values at
a reference value, the Monte-Carlo return-to-go of the data's behavior::

    G(s_t) = r_t + gamma * (1 - terminated_t) * G(s_{t+1})   (within the episode)

    C_i(s) = T * logsumexp_j( [Q_i(s, u_j) - log(0.5^|A|),
                               max(Q_i(s, a_j),  G(s)) - log pi(a_j|s),
                               max(Q_i(s, a'_j), G(s)) - log pi(a'_j|s')] / T )
    penalty_i = E_D [C_i(s) - Q_i(s, a)]

Everything else is CQL (:mod:`offrl.algos.cql`, whose losses this module
calls with the floor). Offline, ``G`` comes from the dataset's episodes
(:func:`prepare_dataset`); online, from each finished episode of the
fine-tuning loop, and a row whose episode is still running has no floor.
Batches are ``mixing_ratio`` = 0.5 offline, 0.5 online, as in the released
code.

Defaults: the released code's (nakamotoo/Cal-QL via CORL's port, read):
critics with two hidden layers of 256, a three-layer actor, CQL with
importance sampling, N = 10 sampled actions, T = 1, no entropy backup, the same
CQL weight offline and online, batch 256, 50/50 mixing. CORL's default weight
is 10 and policy learning rate 3e-5 (AntMaze/Adroit settings); this module
uses the CQL locomotion values (weight 5, actor 1e-4) because the suite is
locomotion. Deviations: the sparse-reward special case (a failed episode's
return-to-go set to r / (1 - gamma)) is not implemented; an online row's
floor is its episode's return once the episode ends (CORL's port writes 0 for
online rows); network initialisation is Flax's default.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from offrl.algos import cql
from offrl.algos.cql import State, act  # noqa: F401  (the contract's names)
from offrl.core.registry import OnlineSpec
from offrl.data.returns import dataset_returns_to_go

DEFAULT_REWARD_SCALING = "none"
ONLINE = OnlineSpec(mixing="ratio")


@dataclasses.dataclass(frozen=True)
class Config(cql.Config):
    """Cal-QL settings: CQL's (:class:`offrl.algos.cql.Config`), with the released
    code's two-layer critics, plus the online weight and the floor's switch."""

    critic_hidden_dims: tuple[int, ...] | None = (256, 256)
    """Hidden widths of the critic MLPs (the released code: two layers of 256)."""
    cql_alpha_online: float = 5.0
    """Weight of the conservative penalty during online fine-tuning."""
    calibrated: bool = True
    """Apply the return-to-go floor (False: plain CQL, for ablations)."""


def init(config: Config, example_batch, key):
    return cql.init(config, example_batch, key)


def prepare_dataset(dataset, config: Config):
    """The training data with ``mc_returns``, in the networks' (scaled) reward units."""
    return dataset.replace(mc_returns=np.asarray(dataset_returns_to_go(dataset, config.discount)))


def online_config(config: Config, finetune_config=None) -> Config:
    return dataclasses.replace(config, cql_alpha=config.cql_alpha_online)


def update(state: State, batch, config: Config):
    floor = batch.get("mc_returns") if config.calibrated else None
    return cql.update(state, batch, config, lower_bound=floor)
