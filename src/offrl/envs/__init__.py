"""Environments: the task registry (reference returns), safety tasks and construction."""

from offrl.envs import safety
from offrl.envs.registry import TASKS, Task, get_task, make_env, normalized_score

safety.register()

__all__ = ["TASKS", "Task", "get_task", "make_env", "normalized_score", "safety"]
