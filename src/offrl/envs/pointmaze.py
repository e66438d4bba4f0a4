"""PointMaze (gymnasium-robotics) with a flat observation for offline RL.

Gymnasium-robotics' PointMaze returns a dict: ``observation`` (x, y, vx, vy),
``achieved_goal`` and ``desired_goal``. offrl's datasets hold flat vectors, so
:class:`GoalObservation` concatenates ``observation`` and ``desired_goal`` into
one 6-D vector (goal-conditioned, like D4RL's maze2d data which records the
target beside the state).
"""

from __future__ import annotations

import collections

import gymnasium as gym
import numpy as np

MAZES = {"umaze": "UMaze", "medium": "Medium", "large": "Large"}
HORIZONS = {"umaze": 300, "medium": 600, "large": 800}


def register() -> None:
    """Register gymnasium-robotics' environments (idempotent)."""
    import warnings

    with warnings.catch_warnings():
        # gymnasium-robotics warns about Adroit reward versions on import; not ours.
        warnings.simplefilter("ignore")
        import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)


class GoalObservation(gym.ObservationWrapper):
    """``[x, y, vx, vy, goal_x, goal_y]`` as a float32 Box."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        inner = env.observation_space["observation"]
        goal = env.observation_space["desired_goal"]
        low = np.concatenate([inner.low, goal.low]).astype(np.float32)
        high = np.concatenate([inner.high, goal.high]).astype(np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    def observation(self, observation):
        return np.concatenate([observation["observation"], observation["desired_goal"]]).astype(
            np.float32
        )


def is_pointmaze(env_id: str) -> bool:
    return env_id.startswith("PointMaze_")


def make_pointmaze(env_id: str, **kwargs) -> gym.Env:
    register()
    return GoalObservation(gym.make(env_id, **kwargs))


#: Distance to the goal within which PointMaze's sparse reward pays 1.
GOAL_RADIUS = 0.45


def goal_reward(positions: np.ndarray, goals: np.ndarray, dense: bool) -> np.ndarray:
    """PointMaze's reward for reaching ``positions`` with ``goals`` (per row):
    ``exp(-distance)`` (dense) or 1 within :data:`GOAL_RADIUS` (sparse)."""
    distance = np.linalg.norm(np.asarray(positions) - np.asarray(goals), axis=-1)
    if dense:
        return np.exp(-distance).astype(np.float32)
    return (distance <= GOAL_RADIUS).astype(np.float32)


class MazeGeometry:
    """A PointMaze map as geometry: which positions are free of walls, and the
    shortest-path distance to a goal around the walls (Dijkstra on a grid of
    ``resolution`` x ``resolution`` points per maze cell, 8-connected)."""

    def __init__(self, maze_map, scaling: float = 1.0, resolution: int = 8):
        self.walls = np.asarray(
            [[cell == 1 for cell in row] for row in maze_map], dtype=bool
        )  # [rows, columns]; 'g', 'r', 'c' and 0 are free
        self.scaling = float(scaling)
        self.resolution = int(resolution)
        rows, columns = self.walls.shape
        self.x_center = columns / 2 * self.scaling
        self.y_center = rows / 2 * self.scaling
        self._distances: dict[tuple[int, int], np.ndarray] = {}
        fine = np.repeat(np.repeat(~self.walls, resolution, 0), resolution, 1)
        self._fine_free = fine
        self._graph = _grid_graph(fine)

    @classmethod
    def of(cls, env_id: str) -> MazeGeometry:
        """The geometry of a registered PointMaze environment."""
        env = make_pointmaze(env_id)
        maze = env.unwrapped.maze
        geometry = cls(maze.maze_map, maze.maze_size_scaling)
        env.close()
        return geometry

    def cells(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(row, column)`` of the maze cell holding each position (may be outside)."""
        xy = np.asarray(xy, np.float64)
        column = np.floor((xy[..., 0] + self.x_center) / self.scaling).astype(int)
        row = np.floor((self.y_center - xy[..., 1]) / self.scaling).astype(int)
        return row, column

    def free(self, xy: np.ndarray, margin: float = 0.1) -> np.ndarray:
        """Whether a disc of radius ``margin`` at each position touches no wall."""
        xy = np.asarray(xy, np.float64)
        ok = np.ones(xy.shape[:-1], bool)
        for dx in (-margin, 0.0, margin):
            for dy in (-margin, 0.0, margin):
                row, column = self.cells(xy + np.asarray([dx, dy]))
                inside = (row >= 0) & (row < self.walls.shape[0])
                inside &= (column >= 0) & (column < self.walls.shape[1])
                wall = np.ones_like(ok)
                wall[inside] = self.walls[row[inside], column[inside]]
                ok &= ~wall
        return ok

    def _fine_index(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        step = self.scaling / self.resolution
        column = np.floor((np.asarray(xy)[..., 0] + self.x_center) / step).astype(int)
        row = np.floor((self.y_center - np.asarray(xy)[..., 1]) / step).astype(int)
        rows, columns = self._fine_free.shape
        return np.clip(row, 0, rows - 1), np.clip(column, 0, columns - 1)

    def distance_to(self, goal: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Shortest-path distance from each position to ``goal`` around the walls
        (``inf`` where no path exists)."""
        from scipy.sparse.csgraph import dijkstra

        goal_row, goal_column = self._fine_index(np.asarray(goal))
        key = (int(goal_row), int(goal_column))
        if key not in self._distances:
            columns = self._fine_free.shape[1]
            source = key[0] * columns + key[1]
            field = dijkstra(self._graph, indices=source) * (self.scaling / self.resolution)
            self._distances[key] = field.reshape(self._fine_free.shape)
        row, column = self._fine_index(xy)
        return self._distances[key][row, column]


def _grid_graph(free: np.ndarray):
    """The 8-connected graph of free grid points (edge lengths 1 and sqrt 2)."""
    from scipy.sparse import coo_matrix

    rows, columns = free.shape
    index = np.arange(rows * columns).reshape(rows, columns)
    sources, targets, lengths = [], [], []
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = free[max(0, -dr) : rows - max(0, dr), max(0, -dc) : columns - max(0, dc)]
        b = free[max(0, dr) :, max(0, dc) : columns + min(0, dc) or None]
        b = b[: a.shape[0], : a.shape[1]]
        ia = index[max(0, -dr) : rows - max(0, dr), max(0, -dc) : columns - max(0, dc)]
        ib = index[max(0, dr) :, max(0, dc) : columns + min(0, dc) or None][
            : a.shape[0], : a.shape[1]
        ]
        both = a & b
        if dr and dc:  # no corner cutting: both side neighbours free
            side1 = free[max(0, dr) :, max(0, -dc) : columns - max(0, dc)][
                : a.shape[0], : a.shape[1]
            ]
            side2 = free[
                max(0, -dr) : rows - max(0, dr), max(0, dc) : columns + min(0, dc) or None
            ][: a.shape[0], : a.shape[1]]
            both &= side1 & side2
        sources.append(ia[both])
        targets.append(ib[both])
        lengths.append(np.full(both.sum(), np.hypot(dr, dc)))
    s, t, w = np.concatenate(sources), np.concatenate(targets), np.concatenate(lengths)
    size = rows * columns
    return coo_matrix((np.r_[w, w], (np.r_[s, t], np.r_[t, s])), shape=(size, size)).tocsr()


# ------------------------------------------------------------- the planner
P_GAIN, D_GAIN = 10.0, -1.0


class WaypointController:
    """Shortest-path waypoints on the maze grid plus a PD law on the point mass: the
    suite's behavior (with noise) and, noise-free, its expert reference and RM-RL's
    role-model labeler (:mod:`offrl.envs.labelers`)."""

    def __init__(self, maze):
        self.maze = maze
        self.free = np.asarray(maze.maze_map) != 1
        self._next: dict[tuple, tuple] = {}

    def _distances(self, goal: tuple) -> dict[tuple, int]:
        distances = {goal: 0}
        queue = collections.deque([goal])
        rows, cols = self.free.shape
        while queue:
            cell = queue.popleft()
            for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                n = (cell[0] + dr, cell[1] + dc)
                if 0 <= n[0] < rows and 0 <= n[1] < cols and self.free[n] and n not in distances:
                    distances[n] = distances[cell] + 1
                    queue.append(n)
        return distances

    def next_cell(self, cell: tuple, goal: tuple) -> tuple:
        key = (cell, goal)
        if key not in self._next:
            distances = self._distances(goal)
            best = cell
            for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                n = (cell[0] + dr, cell[1] + dc)
                if n in distances and distances[n] < distances.get(best, np.inf):
                    best = n
            self._next[key] = best
        return self._next[key]

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        position, velocity, goal = observation[:2], observation[2:4], observation[4:6]
        cell = tuple(int(x) for x in self.maze.cell_xy_to_rowcol(position))
        goal_cell = tuple(int(x) for x in self.maze.cell_xy_to_rowcol(goal))
        if cell == goal_cell:
            waypoint = goal
        else:
            waypoint = self.maze.cell_rowcol_to_xy(np.array(self.next_cell(cell, goal_cell)))
        action = P_GAIN * (waypoint - position) + D_GAIN * velocity
        return np.clip(action, -1.0, 1.0).astype(np.float32)
