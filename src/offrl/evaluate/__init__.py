"""Offline evaluation: fitted Q evaluation, checkpoint selection, statistics, reports.

Rollouts in an environment live in :mod:`offrl.envs.rollout`.
"""
