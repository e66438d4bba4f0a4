"""PointMaze: flat goal observations, the waypoint planner, deterministic recipes."""

import numpy as np

from offrl.envs import get_task, make_env, normalized_score
from offrl.suites import maze


def test_flat_goal_observation():
    env = make_env("PointMaze_UMaze-v3")
    observation, _ = env.reset(seed=0)
    assert observation.shape == (6,) and observation.dtype == np.float32
    assert env.observation_space.shape == (6,)
    np.testing.assert_array_equal(observation[2:4], [0.0, 0.0])  # starts at rest
    assert env.spec.max_episode_steps == 300


def test_planner_reaches_goals_and_beats_random():
    planner = maze.evaluate_controller("umaze", False, "planner", episodes=5)
    random = maze.evaluate_controller("umaze", False, "random", episodes=5)
    assert planner > 200 and random < 60
    task = get_task("pointmaze-umaze")
    assert 80 < normalized_score(planner, task) < 120


def test_recipe_is_deterministic_and_valid():
    first = maze.build("pointmaze-medium-dense", num_steps=1500)
    second = maze.build("pointmaze-medium-dense", num_steps=1500)
    assert first.size == 1500 and first.num_episodes == 3  # horizon 600: 600 + 600 + 300
    for name, value in first.step_fields().items():
        np.testing.assert_array_equal(getattr(second, name), value)
    assert np.all(np.abs(first.actions) <= 1.0)
    # Dense reward is exp(-distance to the goal recorded in the observation).
    distance = np.linalg.norm(
        first.next_observations[:, :2] - first.next_observations[:, 4:], axis=1
    )
    np.testing.assert_allclose(first.rewards, np.exp(-distance), rtol=1e-4, atol=1e-5)
    assert first.info.env_id == "PointMaze_MediumDense-v3"
