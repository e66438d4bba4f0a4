"""Environments: the task registry (reference returns), safety tasks, industrial-style
tasks and construction."""

from offrl.envs import industrial, safety
from offrl.envs.registry import (
    TASKS,
    EnvError,
    Task,
    allow_env_id,
    check_env_id,
    get_task,
    make_env,
    normalized_score,
)

safety.register()
industrial.register()

__all__ = [
    "TASKS",
    "EnvError",
    "Task",
    "allow_env_id",
    "check_env_id",
    "get_task",
    "industrial",
    "make_env",
    "normalized_score",
    "safety",
]
