"""Segments: slices of one environment's consecutive play, the unit of replay.

A segment holds T steps of one episode. Its first ``length`` steps are *owned*:
training examples start only there. The steps after them are *context* copied
from the play that follows (and owned by the next segment), so that unrolling
K steps and n-step value targets never need data from outside the segment.

Frame layout: ``observations`` has ``frame_stack - 1 + T`` frames; the frame the
agent saw before step t is ``observations[t + frame_stack - 1]`` and the stacked
observation of step t is ``observations[t : t + frame_stack]``, oldest first. At
an episode's first step the missing earlier frames repeat the first frame (the
same rule :class:`FrameStacker` applies while acting).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from muzero.learning import targets

if TYPE_CHECKING:
    from muzero.config import ExperimentConfig


def new_segment_id() -> str:
    return uuid.uuid4().hex


# --- frame stacking -------------------------------------------------------------------


def stacked_observation_shape(observation_shape: tuple[int, ...], frame_stack: int) -> tuple[int, ...]:
    """Shape of ``frame_stack`` frames stacked on the first axis: (fs * C, ...) or (fs * D,)."""
    if len(observation_shape) < 1:
        raise ValueError(f"observation_shape must have at least one axis, got {observation_shape}")
    if frame_stack < 1:
        raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
    return (frame_stack * observation_shape[0], *observation_shape[1:])


def stack_frames(frames: np.ndarray) -> np.ndarray:
    """(B, frame_stack, *obs_shape) frames, oldest first -> (B, frame_stack * obs_shape[0], ...)."""
    if frames.ndim < 3:
        raise ValueError(f"frames: expected shape (B, frame_stack, *obs_shape), got {frames.shape}")
    batch, frame_stack, *obs_shape = frames.shape
    return frames.reshape(batch, *stacked_observation_shape(tuple(obs_shape), frame_stack))


class FrameStacker:
    """The last ``frame_stack`` frames of N environments, stacked for the network.

    Actors use this while playing; it applies the same rule as segments (an
    episode's first frame fills the missing history), so what the network sees
    while acting is what it is trained on.
    """

    def __init__(self, num_envs: int, observation_shape: tuple[int, ...], frame_stack: int, dtype=np.float32):
        stacked_observation_shape(observation_shape, frame_stack)  # validates
        self.num_envs = num_envs
        self.observation_shape = tuple(observation_shape)
        self.frame_stack = frame_stack
        self._frames = np.zeros((num_envs, frame_stack, *observation_shape), dtype=dtype)

    @property
    def frames(self) -> np.ndarray:
        """(N, frame_stack, *obs_shape) the current history, oldest first (a read-only view)."""
        view = self._frames.view()
        view.flags.writeable = False
        return view

    def push(self, observations: np.ndarray, episode_start: np.ndarray) -> np.ndarray:
        """Append one frame per env and return the stacked observations (N, *stacked_shape).

        ``episode_start`` (N,) bool marks envs whose ``observations`` begin a new
        episode: their history is refilled with that frame.
        """
        expected = (self.num_envs, *self.observation_shape)
        if observations.shape != expected:
            raise ValueError(f"observations: expected shape {expected}, got {observations.shape}")
        episode_start = np.asarray(episode_start, dtype=bool)
        if episode_start.shape != (self.num_envs,):
            raise ValueError(f"episode_start: expected shape ({self.num_envs},), got {episode_start.shape}")
        if self.frame_stack > 1:
            self._frames[:, :-1] = self._frames[:, 1:].copy()
            self._frames[episode_start] = observations[episode_start][:, None]
        self._frames[:, -1] = observations
        return stack_frames(self._frames.copy())


# --- the segment ----------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """T consecutive steps of one environment; the first ``length`` are owned.

    Arrays are not copied; treat them as read-only once the segment is built
    (replay stores hold references). Use ``dataclasses.replace`` to refresh
    targets (reanalyze).
    """

    observations: np.ndarray  # (frame_stack - 1 + T, *obs_shape)
    actions: np.ndarray  # (T,) int64
    rewards: np.ndarray  # (T,) float32, after action t, for the player who acted
    to_play: np.ndarray  # (T,) int8, player to move before step t
    legal_masks: np.ndarray  # (T, A) bool
    policies: np.ndarray  # (T, A) float32, search policy targets; a row of zeros: none (a fast search)
    root_values: np.ndarray  # (T,) float32, search values for to_play[t]
    length: int  # owned steps, 1 <= length <= T
    terminated: bool  # the episode terminated right after step T - 1
    bootstrap_value: float  # value of the state after step T - 1 (0 if terminated)
    bootstrap_to_play: int  # player to move in that state
    priorities: np.ndarray  # (length,) float32
    model_version: int  # oldest learner version that produced any of its steps
    segment_id: str = field(default_factory=new_segment_id)
    final_ownership: np.ndarray | None = None
    """(P,) float32 in [-1, 1]: who owns each point of the board when the episode ended
    (+1 the first player), for games with territory (Go); None where unknown (the episode
    does not end in this segment, ended by resignation, or the game has no territory).
    Windows cut from a segment keep it: it belongs to the episode."""

    @property
    def num_steps(self) -> int:
        """T: owned plus context steps."""
        return int(self.actions.shape[0])

    @property
    def num_transitions(self) -> int:
        """Owned steps: what the segment adds to a replay store's size."""
        return int(self.length)

    @property
    def frame_stack(self) -> int:
        return int(self.observations.shape[0] - self.actions.shape[0] + 1)

    def stacked_observation(self, position: int) -> np.ndarray:
        """The network input of step ``position``: (frame_stack * obs_shape[0], ...)."""
        if not 0 <= position < self.num_steps:
            raise ValueError(f"position {position} outside the segment's {self.num_steps} steps")
        return stack_frames(self.observations[None, position : position + self.frame_stack])[0]

    def window(self, start: int, steps: int) -> Segment:
        """Steps [start, start + steps) as a segment of their own (cut at T), owning
        the owned steps among them, with the frame history they need.

        Cut before T, its end bootstraps from the stored root value there, the
        rule of :class:`SegmentBuilder`, so with ``steps >= K + n + 1`` the
        targets of its position 0 equal those of ``start`` here. A replay store
        hands out windows so that a training example needs only their frames."""
        if not 0 <= start < self.length:
            raise ValueError(f"start {start} is not an owned position (length {self.length})")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        end = min(start + steps, self.num_steps)
        owned = min(self.length - start, end - start)
        at_end = end == self.num_steps
        return Segment(
            observations=self.observations[start : self.frame_stack - 1 + end],
            actions=self.actions[start:end],
            rewards=self.rewards[start:end],
            to_play=self.to_play[start:end],
            legal_masks=self.legal_masks[start:end],
            policies=self.policies[start:end],
            root_values=self.root_values[start:end],
            length=int(owned),
            terminated=bool(self.terminated) if at_end else False,
            bootstrap_value=float(self.bootstrap_value) if at_end else float(self.root_values[end]),
            bootstrap_to_play=int(self.bootstrap_to_play) if at_end else int(self.to_play[end]),
            priorities=self.priorities[start : start + owned],
            model_version=self.model_version,
            segment_id=self.segment_id,
            final_ownership=self.final_ownership,
        )

    def validate(self, num_actions: int, obs_shape: tuple[int, ...], frame_stack: int) -> None:
        """Raise ValueError naming the first field with a wrong type, shape, dtype or value."""
        if not isinstance(self.actions, np.ndarray) or self.actions.ndim != 1:
            raise ValueError(f"segment.actions: expected a 1-D int64 array, got {_describe(self.actions)}")
        steps = self.actions.shape[0]
        if steps < 1:
            raise ValueError("segment.actions: a segment needs at least one step")
        obs_shape = tuple(obs_shape)
        _check_array("observations", self.observations, (frame_stack - 1 + steps, *obs_shape), None)
        if not (np.issubdtype(self.observations.dtype, np.number) or self.observations.dtype == np.bool_):
            raise ValueError(f"segment.observations: expected a numeric dtype, got {self.observations.dtype}")
        _check_array("actions", self.actions, (steps,), np.int64)
        _check_array("rewards", self.rewards, (steps,), np.float32)
        _check_array("to_play", self.to_play, (steps,), np.int8)
        _check_array("legal_masks", self.legal_masks, (steps, num_actions), np.bool_)
        _check_array("policies", self.policies, (steps, num_actions), np.float32)
        _check_array("root_values", self.root_values, (steps,), np.float32)
        if self.actions.min() < 0 or self.actions.max() >= num_actions:
            raise ValueError(
                f"segment.actions: values must be in [0, {num_actions}), got range "
                f"[{self.actions.min()}, {self.actions.max()}]"
            )
        sums = self.policies.sum(axis=1)
        if (self.policies < 0).any() or not (np.isclose(sums, 1.0, atol=1e-3) | (sums == 0)).all():
            raise ValueError(
                "segment.policies: each row must be a probability vector (>= 0, sums to 1), "
                "or all zeros for a step with no policy target"
            )
        if isinstance(self.length, bool) or not isinstance(self.length, (int, np.integer)):
            raise ValueError(f"segment.length: expected an int, got {type(self.length).__name__}")
        if not 1 <= self.length <= steps:
            raise ValueError(f"segment.length: must be in [1, {steps}] (the segment's steps), got {self.length}")
        _check_array("priorities", self.priorities, (int(self.length),), np.float32)
        if (self.priorities < 0).any():
            raise ValueError("segment.priorities: must be >= 0")
        if not isinstance(self.terminated, (bool, np.bool_)):
            raise ValueError(f"segment.terminated: expected a bool, got {type(self.terminated).__name__}")
        if not np.isfinite(self.bootstrap_value):
            raise ValueError(f"segment.bootstrap_value: must be finite, got {self.bootstrap_value}")
        if self.terminated and self.bootstrap_value != 0:
            raise ValueError(f"segment.bootstrap_value: must be 0 for a terminated episode, got {self.bootstrap_value}")
        if (
            isinstance(self.model_version, bool)
            or not isinstance(self.model_version, (int, np.integer))
            or self.model_version < 0
        ):
            raise ValueError(f"segment.model_version: expected an int >= 0, got {self.model_version!r}")
        if self.final_ownership is not None:
            points = obs_shape[-2] * obs_shape[-1] if len(obs_shape) >= 2 else -1
            _check_array("final_ownership", self.final_ownership, (points,), np.float32)
            if (np.abs(self.final_ownership) > 1).any():
                raise ValueError("segment.final_ownership: values must be in [-1, 1]")
        if not isinstance(self.segment_id, str) or not self.segment_id:
            raise ValueError(f"segment.segment_id: expected a non-empty string, got {self.segment_id!r}")


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"shape {value.shape} {value.dtype}"
    return type(value).__name__


def _check_array(name: str, array, shape: tuple[int, ...], dtype) -> None:
    if not isinstance(array, np.ndarray):
        raise ValueError(f"segment.{name}: expected a numpy array, got {type(array).__name__}")
    if array.shape != shape:
        raise ValueError(f"segment.{name}: expected shape {shape}, got {array.shape}")
    if dtype is not None and array.dtype != dtype:
        raise ValueError(f"segment.{name}: expected dtype {np.dtype(dtype)}, got {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ValueError(f"segment.{name}: contains NaN or inf")


@dataclass(frozen=True)
class SampleKeys:
    """Names of B owned transitions, (segment id, owned position), e.g. for priority updates."""

    segment_ids: np.ndarray  # (B,) str
    positions: np.ndarray  # (B,) int64

    def __len__(self) -> int:
        return int(self.positions.shape[0])


# --- cutting self-play into segments --------------------------------------------------


class SegmentBuilder:
    """Cuts the play of N lockstep environments into overlapping segments.

    Per env, steps accumulate in a preallocated buffer (one vectorised write per
    step for all envs). A segment is emitted when

    - the episode ends (terminated or truncated): the segment owns every step
      left, with no context needed; or
    - ``segment_length + context_steps + 1`` steps are buffered: the segment
      owns ``segment_length`` steps, carries ``context_steps`` of context, and
      its bootstrap value is the search value of the step after its last (so
      the field is exact, not a guess). The next segment starts at the first
      context step, so the context equals the next segment's first steps.

    ``context_steps`` should be K + n (unroll steps + td steps): the last owned
    position's furthest target then reads ``root_values[T - 1]``.

    Initial priorities are |root_value - n-step value target| per owned step
    when ``td_steps`` and ``discount`` are given (use :meth:`from_config`), else
    1.0 for every step.
    """

    def __init__(
        self,
        num_envs: int,
        segment_length: int,
        context_steps: int,
        frame_stack: int,
        num_actions: int,
        *,
        td_steps: int | None = None,
        discount: float = 1.0,
    ):
        for name, value, low in (
            ("num_envs", num_envs, 1),
            ("segment_length", segment_length, 1),
            ("context_steps", context_steps, 0),
            ("frame_stack", frame_stack, 1),
            ("num_actions", num_actions, 1),
        ):
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if td_steps is not None and td_steps < 1:
            raise ValueError(f"td_steps must be >= 1, got {td_steps}")
        self.num_envs = num_envs
        self.segment_length = segment_length
        self.context_steps = context_steps
        self.frame_stack = frame_stack
        self.num_actions = num_actions
        self.td_steps = td_steps
        self.discount = discount
        self._max_steps = segment_length + context_steps + 1
        self._count = np.zeros(num_envs, dtype=np.int64)
        self._rows = np.arange(num_envs)
        self._episode_start = np.ones(num_envs, dtype=bool)
        self._obs: np.ndarray | None = None  # allocated at the first step, when the frame shape is known

    @classmethod
    def from_config(cls, config: ExperimentConfig, num_envs: int, num_actions: int) -> SegmentBuilder:
        """A builder for an :class:`~muzero.config.ExperimentConfig`: context K + n, n-step priorities."""
        training = config.training
        return cls(
            num_envs,
            config.replay.segment_length,
            training.unroll_steps + training.td_steps,
            config.env.frame_stack,
            num_actions,
            td_steps=training.td_steps,
            discount=training.discount,
        )

    @property
    def _frames(self) -> np.ndarray:
        """The observation buffer; it exists once the first step has been recorded."""
        if self._obs is None:
            raise RuntimeError("SegmentBuilder: no step recorded yet (the observation buffer is not allocated)")
        return self._obs

    def _allocate(self, observations: np.ndarray) -> None:
        n, steps, actions = self.num_envs, self._max_steps, self.num_actions
        self._obs = np.zeros((n, self.frame_stack - 1 + steps, *observations.shape[1:]), dtype=observations.dtype)
        self._actions = np.zeros((n, steps), dtype=np.int64)
        self._rewards = np.zeros((n, steps), dtype=np.float32)
        self._to_play = np.zeros((n, steps), dtype=np.int8)
        self._legal = np.zeros((n, steps, actions), dtype=bool)
        self._policies = np.zeros((n, steps, actions), dtype=np.float32)
        self._root_values = np.zeros((n, steps), dtype=np.float32)
        self._versions = np.zeros((n, steps), dtype=np.int64)

    def add_step(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        to_play: np.ndarray,
        legal_masks: np.ndarray,
        policies: np.ndarray,
        root_values: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_bootstrap_values: np.ndarray,
        model_version: int,
        final_to_play: np.ndarray | None = None,
        final_ownership: np.ndarray | None = None,
    ) -> list[Segment]:
        """Record one step of every env; return the segments this step completed.

        ``obs`` (N, *obs_shape) is the frame each env acted on. ``final_bootstrap_values``
        (N,) is the value of the observation after a truncated step (ignored
        elsewhere), for the player to move there: ``final_to_play`` (N,), which
        defaults to the mover (right for single-player envs). ``final_ownership`` (N, P), where
        the env reports it (:class:`~muzero.envs.vector.VectorStep`), goes with the segments of
        terminated episodes whose row is finite.
        """
        n, a = self.num_envs, self.num_actions
        obs = np.asarray(obs)
        if obs.ndim < 2 or obs.shape[0] != n:
            raise ValueError(f"obs: expected shape ({n}, *obs_shape), got {obs.shape}")
        if self._obs is None:
            self._allocate(obs)
        elif obs.shape[1:] != self._obs.shape[2:]:
            raise ValueError(f"obs: expected shape {(n, *self._obs.shape[2:])}, got {obs.shape}")
        for name, value, shape in (
            ("actions", actions, (n,)),
            ("rewards", rewards, (n,)),
            ("to_play", to_play, (n,)),
            ("legal_masks", legal_masks, (n, a)),
            ("policies", policies, (n, a)),
            ("root_values", root_values, (n,)),
            ("terminated", terminated, (n,)),
            ("truncated", truncated, (n,)),
            ("final_bootstrap_values", final_bootstrap_values, (n,)),
        ):
            if np.shape(value) != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {np.shape(value)}")
        if final_to_play is not None and np.shape(final_to_play) != (n,):
            raise ValueError(f"final_to_play: expected shape ({n},), got {np.shape(final_to_play)}")

        rows, step = self._rows, self._count
        history = self.frame_stack - 1
        frames = self._frames
        if history and self._episode_start.any():
            frames[self._episode_start, :history] = obs[self._episode_start][:, None]
        frames[rows, history + step] = obs
        self._actions[rows, step] = actions
        self._rewards[rows, step] = rewards
        self._to_play[rows, step] = to_play
        self._legal[rows, step] = legal_masks
        self._policies[rows, step] = policies
        self._root_values[rows, step] = root_values
        self._versions[rows, step] = model_version
        self._count += 1
        self._episode_start[:] = False

        terminated = np.asarray(terminated, dtype=bool)
        ended = terminated | np.asarray(truncated, dtype=bool)
        full = ~ended & (self._count == self._max_steps)
        segments: list[Segment] = []
        if not (ended.any() or full.any()):
            return segments
        for i in np.flatnonzero(ended).tolist():
            steps = int(self._count[i])
            if terminated[i]:
                segment = self._emit(i, steps, steps, True, 0.0, int(self._to_play[i, steps - 1]))
                if final_ownership is not None and np.isfinite(final_ownership[i]).all():
                    segment = replace(segment, final_ownership=np.asarray(final_ownership[i], np.float32).copy())
                segments.append(segment)
            else:
                player = self._to_play[i, steps - 1] if final_to_play is None else final_to_play[i]
                segments.append(self._emit(i, steps, steps, False, float(final_bootstrap_values[i]), int(player)))
            self._count[i] = 0
            self._episode_start[i] = True
        for i in np.flatnonzero(full).tolist():
            last = self._max_steps - 1
            segments.append(
                self._emit(
                    i, last, self.segment_length, False, float(self._root_values[i, last]), int(self._to_play[i, last])
                )
            )
            self._drop_owned(i, self.segment_length)
        return segments

    def flush(self) -> list[Segment]:
        """Segments for what is pending, e.g. at shutdown.

        Each env with at least two buffered steps yields a segment owning all
        but its last buffered step, bootstrapped from that step's root value.
        The last step stays buffered (it has no bootstrap yet), so play can go
        on after a flush without losing or repeating a step.
        """
        segments = []
        for i in np.flatnonzero(self._count >= 2).tolist():
            last = int(self._count[i]) - 1
            segments.append(
                self._emit(i, last, last, False, float(self._root_values[i, last]), int(self._to_play[i, last]))
            )
            self._drop_owned(i, last)
        return segments

    @property
    def pending_steps(self) -> np.ndarray:
        """(N,) steps buffered per env and not yet owned by an emitted segment."""
        return self._count.copy()

    def _emit(
        self, env: int, steps: int, length: int, terminated: bool, bootstrap_value: float, bootstrap_to_play: int
    ) -> Segment:
        segment = Segment(
            observations=self._frames[env, : self.frame_stack - 1 + steps].copy(),
            actions=self._actions[env, :steps].copy(),
            rewards=self._rewards[env, :steps].copy(),
            to_play=self._to_play[env, :steps].copy(),
            legal_masks=self._legal[env, :steps].copy(),
            policies=self._policies[env, :steps].copy(),
            root_values=self._root_values[env, :steps].copy(),
            length=length,
            terminated=terminated,
            bootstrap_value=bootstrap_value,
            bootstrap_to_play=bootstrap_to_play,
            priorities=np.ones(length, dtype=np.float32),
            model_version=int(self._versions[env, :steps].min()),
        )
        if self.td_steps is None:
            return segment
        value_targets = targets.segment_value_targets(segment, self.td_steps, self.discount)
        priorities = np.abs(segment.root_values[:length] - value_targets).astype(np.float32)
        return replace(segment, priorities=priorities)

    def _drop_owned(self, env: int, owned: int) -> None:
        """Shift env's buffer so that it starts at step ``owned`` (with its frame history)."""
        steps = int(self._count[env])
        keep = steps - owned
        frames = self._frames
        frames[env, : self.frame_stack - 1 + keep] = frames[env, owned : self.frame_stack - 1 + steps].copy()
        for buffer in (
            self._actions,
            self._rewards,
            self._to_play,
            self._legal,
            self._policies,
            self._root_values,
            self._versions,
        ):
            buffer[env, :keep] = buffer[env, owned:steps].copy()
        self._count[env] = keep
