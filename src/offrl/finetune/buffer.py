"""The replay of offline-to-online fine-tuning: offline data beside online buffers.

Every seed has its own online ring buffer; the offline data (already in the
networks' units: standardized observations, actions in [-1, 1], scaled
rewards) is shared. A batch of ``B`` rows for one seed is drawn in one of two
ways:

- ``offline_ratio = r`` (RLPD's symmetric sampling at ``r = 0.5``; Cal-QL's
  ``mixing_ratio``): ``round(r * B)`` rows uniformly from the offline data and
  the rest uniformly from that seed's online buffer. While the online buffer is
  still empty the whole batch comes from the offline data.
- ``offline_ratio = None`` (CORL's IQL, AWAC and CQL fine-tuning): the offline
  data is *in* the replay buffer, so rows are drawn uniformly from the union
  and the offline share is ``N_off / (N_off + N_on)``.

With ``label_fields`` (``("label_actions",)`` when the loop labels observations with a
role model, :mod:`offrl.envs.labelers`) the offline rows and every online row carry
those fields too, and batches hold them.

Every batch carries two fields besides the transitions: ``offline`` (1 for a
row from the offline data, 0 for an online row; H2O tells real from simulated
data by it) and ``mc_returns`` (the discounted return-to-go of the row within
its episode, Cal-QL's lower bound). An online row's return-to-go is known only
when its episode ends; until then it is ``UNKNOWN_RETURN``, far below any
value, so a lower bound built from it is inactive.
"""

from __future__ import annotations

import numpy as np

from offrl.data.returns import returns_to_go

#: The return-to-go of an online step whose episode has not ended yet.
UNKNOWN_RETURN = -1e9

FIELDS = (
    "observations",
    "actions",
    "rewards",
    "next_observations",
    "terminations",
    "truncations",
    "mc_returns",
)


class MixedReplay:
    """Offline rows plus one online ring buffer per seed, all in NumPy."""

    def __init__(
        self,
        offline: dict[str, np.ndarray] | None,
        num_seeds: int,
        capacity: int,
        observation_dim: int,
        action_dim: int,
        offline_ratio: float | None,
        label_fields: tuple[str, ...] = (),
    ):
        if offline_ratio is not None and not 0.0 <= offline_ratio <= 1.0:
            raise ValueError(f"offline_ratio must be in [0, 1] or None, got {offline_ratio}")
        if offline is None and offline_ratio not in (None, 0.0):
            raise ValueError("offline_ratio > 0 needs offline data")
        self.offline = offline
        self.offline_size = 0 if offline is None else int(offline["rewards"].shape[0])
        self.offline_ratio = offline_ratio
        self.num_seeds, self.capacity = num_seeds, capacity
        self.fields = FIELDS + tuple(label_fields)
        shapes = {
            "observations": (observation_dim,),
            "actions": (action_dim,),
            "next_observations": (observation_dim,),
            "label_actions": (action_dim,),
        }
        self.online = {
            name: np.zeros((num_seeds, capacity, *shapes.get(name, ())), np.float32)
            for name in self.fields
        }
        self.size = np.zeros(num_seeds, np.int64)
        self.position = np.zeros(num_seeds, np.int64)
        # Where the current episode of each seed started in its ring (for the returns).
        self.episode_rows: list[list[int]] = [[] for _ in range(num_seeds)]

    # ------------------------------------------------------------------ adding
    def add(self, seed: int, **transition) -> None:
        """Append one online transition of ``seed`` (``mc_returns`` filled at episode end)."""
        position = int(self.position[seed])
        for name in self.fields:
            value = UNKNOWN_RETURN if name == "mc_returns" else transition[name]
            self.online[name][seed, position] = value
        self.episode_rows[seed].append(position)
        self.position[seed] = (position + 1) % self.capacity
        self.size[seed] = min(self.size[seed] + 1, self.capacity)

    def end_episode(self, seed: int, discount: float) -> None:
        """Write the return-to-go of the episode just finished by ``seed``."""
        rows = np.asarray(self.episode_rows[seed], np.int64)
        if rows.size:
            values = returns_to_go(
                self.online["rewards"][seed, rows],
                self.online["terminations"][seed, rows],
                [0],
                [rows.size],
                discount,
            )
            self.online["mc_returns"][seed, rows] = values
        self.episode_rows[seed] = []

    # ---------------------------------------------------------------- sampling
    def offline_count(self, seed: int, batch_size: int) -> int:
        """Rows of a ``batch_size`` batch of ``seed`` that come from the offline data."""
        online = int(self.size[seed])
        if self.offline_size == 0:
            return 0
        if online == 0:
            return batch_size
        if self.offline_ratio is None:
            return -1  # uniform over the union: drawn per row
        return int(round(self.offline_ratio * batch_size))

    def sample(self, rng: np.random.Generator, batch_size: int, count: int = 1) -> dict:
        """``count`` batches per seed: every field ``[S, count, B, ...]``."""
        out = {name: [] for name in (*self.fields, "offline")}
        for seed in range(self.num_seeds):
            online_size = int(self.size[seed])
            if online_size == 0 and self.offline_size == 0:
                raise ValueError("cannot sample: no offline data and no online transitions yet")
            n_off = self.offline_count(seed, batch_size)
            if n_off < 0:  # union
                total = self.offline_size + online_size
                index = rng.integers(0, total, size=(count, batch_size))
                from_offline = index < self.offline_size
            else:
                # The first n_off columns are offline rows: draw only the indices used.
                from_offline = np.zeros((count, batch_size), bool)
                from_offline[:, :n_off] = True
                index = np.empty((count, batch_size), np.int64)
                index[:, :n_off] = rng.integers(0, max(self.offline_size, 1), (count, n_off))
                index[:, n_off:] = self.offline_size + rng.integers(
                    0, max(online_size, 1), (count, batch_size - n_off)
                )
            # Gather each row once, from the source it was drawn from.
            from_online = ~from_offline
            off_rows = index[from_offline]
            on_rows = index[from_online] - self.offline_size
            for name in self.fields:
                online = self.online[name][seed]
                rows = np.empty((count, batch_size, *online.shape[1:]), np.float32)
                if off_rows.size:
                    rows[from_offline] = self.offline[name][off_rows]
                if on_rows.size:
                    rows[from_online] = online[on_rows]
                out[name].append(rows)
            out["offline"].append(from_offline.astype(np.float32))
        return {name: np.stack(values) for name, values in out.items()}

    # ------------------------------------------------------------- save/load
    def state_dict(self) -> dict[str, np.ndarray]:
        state = {f"online_{k}": v.copy() for k, v in self.online.items()}
        state["size"] = self.size.copy()
        state["position"] = self.position.copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for name in self.fields:
            self.online[name][...] = state[f"online_{name}"]
        self.size[...] = state["size"]
        self.position[...] = state["position"]
        self.episode_rows = [[] for _ in range(self.num_seeds)]
