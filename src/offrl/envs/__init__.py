"""Environments: the task registry (reference returns) and environment construction."""

from offrl.envs.registry import TASKS, Task, get_task, make_env, normalized_score

__all__ = ["TASKS", "Task", "get_task", "make_env", "normalized_score"]
