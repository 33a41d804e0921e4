"""One vector-env interface for self-play over gymnasium envs and board games.

Self-play steps N environments in lockstep and searches all N roots in one
batch, so it needs every env to always have a live episode: both kinds reset a
finished episode inside the same ``step`` call (``next_obs`` is the first
observation of the new episode) and hand back the last observation of the old
one in ``final_obs``, which value bootstrapping on truncation needs.

- gymnasium ids (Discrete actions, Box observations): N copies stepped through
  gymnasium's synchronous vector env in SAME_STEP autoreset mode; one player,
  every action legal.
- board games (any id or alias in :mod:`muzero.envs.registry`, e.g.
  ``tictactoe``, ``muzero/TicTacToe-v0``, ``connect4``): the vectorised rules
  applied to an (N, ...) array of states directly; two players alternating,
  legal masks from the rules.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import gymnasium
import numpy as np

from muzero.envs import registry
from muzero.envs.base import BoardGame
from muzero.envs.gym_namespaces import missing_env_hint
from muzero.envs.players import sample_from_mask
from muzero.envs.wrappers import build_wrappers


@dataclass(frozen=True)
class VectorStep:
    """The result of stepping N environments once."""

    next_obs: np.ndarray
    """(N, *obs_shape) observation to act on next; a new episode's first one where an episode ended."""
    reward: np.ndarray
    """(N,) float32 reward received by the player who acted."""
    terminated: np.ndarray
    """(N,) bool: the episode reached a terminal state."""
    truncated: np.ndarray
    """(N,) bool: the episode was cut by a step limit (and did not terminate)."""
    final_obs: np.ndarray
    """(N, *obs_shape) last observation of the ended episode where one ended; ``next_obs`` elsewhere."""
    final_ownership: np.ndarray | None = None
    """(N, P) float32 for games with territory (Go's ``ownership``): who owns each point at the
    end of a game that ended by its rules (+1 the first player); NaN rows elsewhere (no game
    ended, a resignation, a truncation). None for envs without it."""


def make_board_game(env_id: str) -> BoardGame:
    """The vectorised board game registered as ``env_id``; ValueError listing the known ids if none is."""
    return registry.get_game(env_id).make()


class VectorEnv(abc.ABC):
    """N environments stepped in lockstep with same-step autoreset."""

    env_id: str
    num_envs: int
    num_actions: int
    observation_shape: tuple[int, ...]
    observation_dtype: np.dtype
    num_players: int
    """1 for gymnasium envs, 2 for board games."""
    game: BoardGame | None
    """The board game's rules (for simulator search), or None for gymnasium envs."""

    @property
    def states(self) -> np.ndarray | None:
        """(N, *state_shape) current board states, or None for gymnasium envs."""
        return None

    @abc.abstractmethod
    def reset(self) -> np.ndarray:
        """Start a new episode in every env; returns (N, *observation_shape) observations."""

    @abc.abstractmethod
    def step(self, actions: np.ndarray) -> VectorStep:
        """Apply one action per env; finished episodes restart in the same call."""

    @abc.abstractmethod
    def legal_mask(self) -> np.ndarray:
        """(N, num_actions) bool legal actions in the current states."""

    @abc.abstractmethod
    def to_play(self) -> np.ndarray:
        """(N,) int8 player to move in each env."""

    def close(self) -> None:
        """Release the environments' resources."""

    def _check_actions(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        if not np.issubdtype(actions.dtype, np.integer):
            raise TypeError(f"actions must have an integer dtype, got {actions.dtype}")
        bad = (actions < 0) | (actions >= self.num_actions)
        if bad.any():
            envs = np.flatnonzero(bad)
            raise ValueError(
                f"actions must be in [0, {self.num_actions}); envs {envs.tolist()} got {actions[envs].tolist()}"
            )
        return actions


class GymVectorEnv(VectorEnv):
    """N copies of a gymnasium env through gymnasium's synchronous vector API.

    The first ``reset()`` seeds env i with ``seed + i``; later resets continue
    each env's random stream, so a run is reproducible from one seed.
    """

    num_players = 1
    game = None

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        seed: int,
        max_episode_steps: int = 0,
        wrappers: tuple[str, ...] | list[str] = (),
    ):
        kwargs = {"max_episode_steps": max_episode_steps} if max_episode_steps > 0 else {}
        # Each env is wrapped in order (env.wrappers), inside the vector env and its autoreset.
        envs = gymnasium.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
            wrappers=build_wrappers(wrappers),
            **kwargs,
        )
        action_space, observation_space = envs.single_action_space, envs.single_observation_space
        if not isinstance(action_space, gymnasium.spaces.Discrete):
            envs.close()
            raise ValueError(f"{env_id}: the action space must be Discrete, got {action_space}")
        if not isinstance(observation_space, gymnasium.spaces.Box):
            envs.close()
            raise ValueError(f"{env_id}: the observation space must be Box, got {observation_space}")
        if action_space.start != 0:
            envs.close()
            raise ValueError(f"{env_id}: Discrete actions must start at 0, got {action_space}")
        self.env_id = env_id
        self.num_envs = num_envs
        self.num_actions = int(action_space.n)
        self.observation_shape = tuple(observation_space.shape)
        self.observation_dtype = np.dtype(observation_space.dtype)
        self.wrappers = tuple(wrappers)
        self.max_episode_steps = int(max_episode_steps or gymnasium.spec(env_id).max_episode_steps or 0)
        """The step limit episodes are truncated at, in the env's own steps (0: none)."""
        self._envs = envs
        self._seed: int | None = seed
        self._started = False

    def reset(self) -> np.ndarray:
        obs, _ = self._envs.reset(seed=self._seed)
        self._seed = None  # later resets continue the seeded streams
        self._started = True
        return obs

    def step(self, actions: np.ndarray) -> VectorStep:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = self._check_actions(actions)
        next_obs, reward, terminated, truncated, info = self._envs.step(actions)
        final_obs = next_obs.copy()
        ended = np.flatnonzero(terminated | truncated)
        for i in ended:  # gymnasium gives an object array holding the last obs of ended envs
            final_obs[i] = info["final_obs"][i]
        return VectorStep(
            next_obs=next_obs,
            reward=reward.astype(np.float32),
            terminated=terminated.astype(bool),
            truncated=truncated & ~terminated,  # gymnasium may set both; terminal wins
            final_obs=final_obs,
        )

    def legal_mask(self) -> np.ndarray:
        return np.ones((self.num_envs, self.num_actions), dtype=bool)

    def to_play(self) -> np.ndarray:
        return np.zeros(self.num_envs, dtype=np.int8)

    def close(self) -> None:
        self._envs.close()


class BoardGameVectorEnv(VectorEnv):
    """N games of a vectorised board game held as one (N, ...) state array.

    The rules are deterministic and every game starts from the same position,
    unless ``random_opening_moves`` = N > 0: then each game starts after k uniformly
    random legal moves, k uniform in 0..N, drawn from ``seed`` (``env.random_opening_moves``).
    ``max_episode_steps`` > 0 truncates a game after that many moves, the opening's included.
    """

    num_players = 2
    game: BoardGame  # always a game here (the base class allows None for gymnasium envs)

    def __init__(
        self,
        env_id: str,
        game: BoardGame,
        num_envs: int,
        seed: int,
        max_episode_steps: int = 0,
        random_opening_moves: int = 0,
    ):
        self.env_id = env_id
        self.game = game
        self.num_envs = num_envs
        self.num_actions = game.num_actions
        self.observation_shape = tuple(game.observation_shape)
        self.observation_dtype = np.dtype(np.float32)
        self.seed = seed
        self.max_episode_steps = max_episode_steps
        self.random_opening_moves = random_opening_moves
        self._rng = np.random.default_rng(seed)
        self._episode_steps = np.zeros(num_envs, dtype=np.int64)
        self._states = self._new_games(np.arange(num_envs))

    def _new_games(self, games: np.ndarray) -> np.ndarray:
        """Start positions for ``games`` (indices): the initial position, or after a random
        opening; sets their move counters."""
        states = self.game.initial_states(len(games))
        moves = np.zeros(len(games), dtype=np.int64)
        if self.random_opening_moves:
            wanted = self._rng.integers(0, self.random_opening_moves + 1, size=len(games))
            for ply in range(self.random_opening_moves):
                playing = np.flatnonzero(wanted > ply)
                if playing.size == 0:
                    break
                actions = sample_from_mask(self.game.legal_mask(states[playing]), self._rng)
                after, _, ended = self.game.step(states[playing], actions)
                moves[playing] += 1
                if ended.any():  # an opening that ends the game starts again from the initial position
                    after[ended] = self.game.initial_states(int(ended.sum()))
                    moves[playing[ended]] = 0
                    wanted[playing[ended]] = 0
                states[playing] = after
        self._episode_steps[games] = moves
        return states

    @property
    def states(self) -> np.ndarray:
        return self._states

    def reset(self) -> np.ndarray:
        self._states = self._new_games(np.arange(self.num_envs))
        return self.game.observe(self._states)

    def step(self, actions: np.ndarray, resign: np.ndarray | None = None) -> VectorStep:
        """``resign`` (N,) bool: in those games the player to move resigns instead of playing
        its action: the game ends, -1 to the resigner (its step's reward), and starts again."""
        actions = self._check_actions(actions)
        if resign is not None:
            resign = np.asarray(resign, dtype=bool)
            if resign.shape != (self.num_envs,):
                raise ValueError(f"resign: expected shape ({self.num_envs},), got {resign.shape}")
        if resign is not None and resign.any():
            playing = ~resign
            next_states = self._states.copy()
            reward = np.full(self.num_envs, -1.0, dtype=np.float32)
            terminated = resign.copy()
            if playing.any():
                moved, moved_reward, moved_done = self.game.step(self._states[playing], actions[playing])
                next_states[playing] = moved
                reward[playing] = moved_reward
                terminated[playing] = moved_done
        else:
            next_states, reward, terminated = self.game.step(self._states, actions)
        self._episode_steps += 1
        truncated = ~terminated & (self.max_episode_steps > 0) & (self._episode_steps >= self.max_episode_steps)
        final_obs = self.game.observe(next_states)
        final_ownership = self._final_ownership(next_states, terminated & (resign is None or ~resign))
        ended = terminated | truncated
        if ended.any():
            next_states[ended] = self._new_games(np.flatnonzero(ended))
            next_obs = self.game.observe(next_states)
        else:
            next_obs = final_obs.copy()
        self._states = next_states
        return VectorStep(
            next_obs=next_obs,
            reward=reward.astype(np.float32, copy=False),
            terminated=terminated,
            truncated=truncated,
            final_obs=final_obs,
            final_ownership=final_ownership,
        )

    def _final_ownership(self, states: np.ndarray, ended_by_rules: np.ndarray) -> np.ndarray | None:
        ownership = getattr(self.game, "ownership", None)
        if ownership is None:
            return None
        points = self.observation_shape[-2] * self.observation_shape[-1]
        out = np.full((self.num_envs, points), np.nan, dtype=np.float32)
        if ended_by_rules.any():
            out[ended_by_rules] = ownership(states[ended_by_rules])
        return out

    def legal_mask(self) -> np.ndarray:
        return self.game.legal_mask(self._states)

    def to_play(self) -> np.ndarray:
        return self.game.to_play(self._states)


def make_vector_env(
    env_id: str,
    num_envs: int,
    seed: int,
    max_episode_steps: int = 0,
    wrappers: tuple[str, ...] | list[str] = (),
    random_opening_moves: int = 0,
) -> VectorEnv:
    """N environments for self-play: a vectorised board game or N gymnasium envs.

    ``max_episode_steps`` = 0 keeps the env's own limit. ``wrappers`` (``env.wrappers``,
    see :mod:`muzero.envs.wrappers`) wrap each gymnasium env in order.
    ``random_opening_moves`` (``env.random_opening_moves``, board games only) starts games
    after up to that many random moves. Raises ValueError
    for an id that is neither a board game nor a registered gymnasium env, for a
    gymnasium env whose spaces (after the wrappers) are not Discrete actions and Box
    observations, and for a bad wrapper.
    """
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env_id must be a non-empty string, got {env_id!r}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    if (
        isinstance(max_episode_steps, bool)
        or not isinstance(max_episode_steps, (int, np.integer))
        or max_episode_steps < 0
    ):
        raise ValueError(f"max_episode_steps must be an integer >= 0, got {max_episode_steps!r}")
    if isinstance(random_opening_moves, bool) or not isinstance(random_opening_moves, (int, np.integer)):
        raise ValueError(f"random_opening_moves must be an integer >= 0, got {random_opening_moves!r}")
    if random_opening_moves < 0:
        raise ValueError(f"random_opening_moves must be an integer >= 0, got {random_opening_moves!r}")
    if registry.is_game(env_id):
        game = make_board_game(env_id)
        return BoardGameVectorEnv(env_id, game, int(num_envs), seed, int(max_episode_steps), int(random_opening_moves))
    if random_opening_moves:
        raise ValueError(f"env.random_opening_moves is for board games; {env_id!r} is a gymnasium env (set it to 0)")
    try:
        gymnasium.spec(env_id)
    except gymnasium.error.Error as error:
        raise ValueError(
            f"unknown env id {env_id!r}: not a board game ({', '.join(registry.game_ids())}) "
            f"and not a registered gymnasium env ({error}); {missing_env_hint(env_id)}"
        ) from None
    try:
        return GymVectorEnv(env_id, int(num_envs), seed, int(max_episode_steps), wrappers)
    except gymnasium.error.DependencyNotInstalled as error:  # e.g. Box2D for LunarLander
        raise ValueError(f"env id {env_id!r} needs a package that is not installed: {error}") from None
