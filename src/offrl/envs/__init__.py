"""Environments: the task registry (reference returns), safety tasks, industrial-style
tasks and construction."""

from offrl.envs import goals, industrial, safety
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
goals.register()

__all__ = [
    "TASKS",
    "EnvError",
    "Task",
    "allow_env_id",
    "check_env_id",
    "get_task",
    "goals",
    "industrial",
    "make_env",
    "normalized_score",
    "safety",
]
