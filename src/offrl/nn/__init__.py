"""Networks: MLP, the ensemble helper, policies and critics."""

from offrl.nn.critics import QEnsemble, QNetwork, VNetwork
from offrl.nn.dynamics import ControlAffineDynamics, GaussianEnsemble
from offrl.nn.mlp import MLP, ensemble
from offrl.nn.policies import (
    DeterministicPolicy,
    GaussianPolicy,
    gaussian_log_prob,
    sample_gaussian,
    sample_tanh_gaussian,
    tanh_gaussian_action,
    tanh_gaussian_log_prob,
)

__all__ = [
    "MLP",
    "ControlAffineDynamics",
    "DeterministicPolicy",
    "GaussianEnsemble",
    "GaussianPolicy",
    "QEnsemble",
    "QNetwork",
    "VNetwork",
    "ensemble",
    "gaussian_log_prob",
    "sample_gaussian",
    "sample_tanh_gaussian",
    "tanh_gaussian_action",
    "tanh_gaussian_log_prob",
]
