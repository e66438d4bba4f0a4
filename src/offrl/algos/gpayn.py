"""G-PAYN: SAC seeded with automatically collected demonstrations (Ceola, Maiettini,
Rosasco & Natale, IROS 2023, "A Grasp Pose is All You Need").

G-PAYN's pipeline removes the person from the demonstrations: a scripted
controller (on the iCub, a grasp pose from an external planner followed by a
reaching law) runs the task, only its successful episodes are kept, and they

- initialise the policy by behavior cloning (``offrl train bc --policy gaussian``
  on them), and
- seed SAC's replay buffer, where they stay and are sampled like the agent's own
  transitions (the loop's ``union`` mixing: rows are drawn uniformly from the
  demonstrations and the online data together).

``offrl finetune gpayn --from BC_RUN`` runs the second part; the BC run's data
are the demonstrations. offrl's automatically collected demonstrations are the
suite's ``pointmaze-umaze-demos`` (the noise-free planner, successes only:
:func:`offrl.suites.maze.collect_demonstrations`); any dataset of a scripted
controller's successful episodes works the same way.

Settings: SAC's (:mod:`offrl.algos.sac`); the actor starts as the BC policy and
the critics and temperature start fresh, as in the released code (SB3's SAC with
the BC weights loaded into the actor and the demonstrations put in its replay
buffer). Deviations: state observations instead of images and touch; SAC's
defaults here, not the released code's per-task settings; there is no
separate learning-rate for the pre-trained actor.
"""

from __future__ import annotations

import dataclasses

from offrl.algos import sac
from offrl.algos.concurrent_bc import config_for_base, init_from  # noqa: F401  (BC start)
from offrl.algos.sac import State, act, init, update  # noqa: F401  (SAC unchanged)
from offrl.core.registry import OnlineSpec

DEFAULT_REWARD_SCALING = "none"
ONLINE = OnlineSpec(mixing="union", random_steps=0, learning_starts=1000)
#: The run a G-PAYN fine-tuning starts from (the BC initialisation).
BASE_ALGORITHMS = ("bc",)


@dataclasses.dataclass(frozen=True)
class Config(sac.Config):
    """G-PAYN settings: SAC's."""
