"""Learning online with offline data (issue 26): each method against the baselines its
paper compares with, at the same number of environment steps, through ``offrl finetune``.

Tables (``--table``):

- ``moorl``: MOORL against RLPD and SAC with the offline data in its replay
  (``--mixing union``) and plain online SAC, all from scratch beside
  ``--dataset`` (default ``suite:pendulum-mixed``).
- ``demos``: the demonstration methods on a sparse-reward task: SAC from
  scratch, SAC from a BC run on the demonstrations (pre-training alone),
  concurrent BC (pre-training plus the BC loss online) and G-PAYN (pre-training
  plus the demonstrations in the replay).

Every cell is a resumable run directory under ``--output`` (a finished cell is
skipped); ``results.json`` and ``table.md`` are written after every cell, so a
stopped benchmark keeps what it finished. Scores are the held-out evaluation of
the final policy (``final``) and of the best periodic one (``best``), normalized;
``start`` is the policy before the first online step. Spreads are sample
standard deviations across seeds.

    python benchmarks/hybrid.py --table moorl --online-steps 8000 \\
        --output benchmarks/results/hybrid-moorl
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from finetune import _done, _resume  # noqa: E402

from offrl.finetune import FinetuneConfig, finetune  # noqa: E402
from offrl.registry_settings import parse_settings  # noqa: E402
from offrl.run.train import TrainConfig, train  # noqa: E402


def _config(algorithm: str, settings: list[str]):
    from offrl.core import registry

    return parse_settings(registry.get(algorithm).Config(), settings)
