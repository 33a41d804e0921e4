"""How far a search can trust a learned model: its errors along real games, by unroll depth.

A search inside the learned model walks K' imagined steps from a real root, and
K' grows with the simulations. Training grounds the model only up to the
unroll depth K, and only along actions that were played. This measures, for a
board game, what the search meets deeper:

- for every depth 1..D (D = 2K by default) from every position of real games,
  the error of the predicted reward and value against the true ones (the
  game's rewards and, where an oracle knows it, the game-theoretic value; past
  the game's end the state is absorbing: reward 0, value 0), inside the game
  and past its end apart;
- how often the model's policy at an imagined live state prefers an illegal move;
- how often it misses a terminal state (some action from the imagined final
  position is predicted to pay a reward of magnitude above 0.5);
- with an oracle (tic-tac-toe's minimax), how often the search's move and the
  prior's move are optimal, at several simulation counts.

The games are played by uniformly random moves for both sides: roots the search
could face against any opponent, not only its own self-play's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import torch

from muzero.config import ExperimentConfig
from muzero.envs.base import BoardGame
from muzero.envs.players import sample_from_mask
from muzero.nn.networks import MuZeroNetwork

MISSED_TERMINAL_REWARD = 0.5
"""A terminal state is missed when some action from it is predicted to pay more than this."""


class Oracle(Protocol):
    def values(self, states: np.ndarray) -> np.ndarray:
        """(n,) game-theoretic value for the player to move (0 at finished positions)."""

    def optimal_moves(self, states: np.ndarray) -> np.ndarray:
        """(n, A) bool: the moves that keep the position's value."""


@dataclass(frozen=True)
class DepthErrors:
    depth: int
    reward_mae: float
    """Mean |predicted - true reward| of the step into depth ``depth``, inside the game."""
    value_mae: float
    """Mean |predicted - true value| at depth ``depth`` inside the game (NaN without an oracle)."""
    reward_mae_past_end: float
    value_mae_past_end: float
    illegal_preferred: float
    """Share of imagined live states at this depth whose policy's top move is illegal."""
    positions: int
    positions_past_end: int


@dataclass(frozen=True)
class ModelQuality:
    depths: list[DepthErrors]
    root_illegal_preferred: float
    terminal_missed: float
    terminals: int
    prior_optimal: float
    """Share of live positions where the prior's top legal move is optimal (NaN without an oracle)."""
    search_optimal: dict[int, float]
    """Simulations -> share of live positions where the search's move is optimal."""
    positions: int

    def to_json(self) -> dict:
        """A JSON-able dict; NaN (nothing measured) becomes None."""
        out = asdict(self)
        out["search_optimal"] = {str(k): v for k, v in self.search_optimal.items()}
        return _no_nan(out)


def _no_nan(value):
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


@dataclass(frozen=True)
class Games:
    """Random games, flattened: ``states[i]`` is position ``step[i]`` of game ``game[i]``."""

    states: np.ndarray  # (N, *state_shape) every position, terminal ones included
    game: np.ndarray  # (N,) int64
    step: np.ndarray  # (N,) int64
    actions: np.ndarray  # (N,) int64 the move played from the position (-1 at the end)
    rewards: np.ndarray  # (N,) float32 the mover's reward for that move
    length: np.ndarray  # (games,) int64 moves of each game


def random_games(game: BoardGame, count: int, rng: np.random.Generator) -> Games:
    """``count`` games of uniformly random legal moves, played to the end."""
    states = game.initial_states(count)
    running = np.ones(count, dtype=bool)
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    step = 0
    length = np.zeros(count, dtype=np.int64)
    while True:
        alive = np.flatnonzero(running)
        ended = np.flatnonzero(~running & (length == step))
        if ended.size:  # the final positions, no move from them
            rows.append(
                (states[ended], ended, np.full(ended.size, step), np.full(ended.size, -1), np.zeros(ended.size))
            )
        if not alive.size:
            break
        actions = sample_from_mask(game.legal_mask(states[alive]), rng)
        next_states, rewards, terminal = game.step(states[alive], actions)
        rows.append((states[alive], alive, np.full(alive.size, step), actions, rewards))
        states = states.copy()
        states[alive] = next_states
        step += 1
        length[alive] = step
        running[alive[terminal]] = False
    return Games(
        states=np.concatenate([r[0] for r in rows]),
        game=np.concatenate([r[1] for r in rows]).astype(np.int64),
        step=np.concatenate([r[2] for r in rows]).astype(np.int64),
        actions=np.concatenate([r[3] for r in rows]).astype(np.int64),
        rewards=np.concatenate([r[4] for r in rows]).astype(np.float32),
        length=length,
    )


def _scalars(network: MuZeroNetwork, output) -> tuple[np.ndarray, np.ndarray]:
    value = network.value_support.logits_to_scalar(output.value_logits).float().numpy()
    reward = network.reward_support.logits_to_scalar(output.reward_logits).float().numpy()
    return value, reward


def _mean(values: list[np.ndarray]) -> float:
    joined = np.concatenate(values) if values else np.zeros(0)
    return float(joined.mean()) if joined.size else float("nan")


@torch.inference_mode()
def model_quality(
    config: ExperimentConfig,
    game: BoardGame,
    network: MuZeroNetwork,
    games: int = 200,
    depth: int | None = None,
    oracle: Oracle | None = None,
    simulations: tuple[int, ...] = (),
    seed: int = 0,
) -> ModelQuality:
    """The learned model of ``network`` measured along ``games`` random games of ``game``
    (see the module's docstring); ``depth`` defaults to twice ``training.unroll_steps``."""
    depth = depth or 2 * config.training.unroll_steps
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    rng = np.random.default_rng(seed)
    played = random_games(game, games, rng)
    network.eval()
    index = {(int(g), int(s)): i for i, (g, s) in enumerate(zip(played.game, played.step))}
    live = np.flatnonzero(played.actions >= 0)  # the starts: positions with a move to come
    true_values = oracle.values(played.states) if oracle is not None else None

    observations = torch.as_tensor(game.observe(played.states[live]))
    root = network.initial_inference(observations)
    legal_roots = game.legal_mask(played.states[live])
    root_top = root.policy_logits.argmax(dim=1).numpy()
    root_illegal = float((~legal_roots[np.arange(live.size), root_top]).mean())

    hidden = root.hidden
    reward_in: dict[int, list] = {k: [] for k in range(1, depth + 1)}
    value_in: dict[int, list] = {k: [] for k in range(1, depth + 1)}
    reward_out: dict[int, list] = {k: [] for k in range(1, depth + 1)}
    value_out: dict[int, list] = {k: [] for k in range(1, depth + 1)}
    illegal: dict[int, list] = {k: [] for k in range(1, depth + 1)}
    terminal_missed: list[np.ndarray] = []
    start_game, start_step = played.game[live], played.step[live]
    ends = played.length[start_game]
    for k in range(1, depth + 1):
        at = start_step + k - 1  # the move into depth k is played from position t + k - 1
        inside = at < ends
        rows = [index[(int(g), int(s))] if ok else -1 for g, s, ok in zip(start_game, at, inside)]
        rows_array = np.array(rows, dtype=np.int64)
        actions = np.where(inside, played.actions[rows_array], rng.integers(0, game.num_actions, live.size))
        true_reward = np.where(inside, played.rewards[rows_array], 0.0)
        output = network.recurrent_inference(hidden, torch.as_tensor(actions, dtype=torch.int64))
        hidden = output.hidden
        value, reward = _scalars(network, output)
        reward_error = np.abs(reward - true_reward)
        reward_in[k].append(reward_error[inside])
        reward_out[k].append(reward_error[~inside])
        reached_inside = start_step + k <= ends  # depth k is a real position (the final one included)
        value_out[k].append(np.abs(value[~reached_inside]))
        if true_values is not None:
            reached = np.array(
                [index[(int(g), int(s))] if ok else -1 for g, s, ok in zip(start_game, start_step + k, reached_inside)]
            )
            value_in[k].append(np.abs(value - true_values[reached])[reached_inside])
        alive_there = start_step + k < ends
        if alive_there.any():
            positions = np.array(
                [index[(int(g), int(s))] for g, s in zip(start_game[alive_there], start_step[alive_there] + k)]
            )
            legal = game.legal_mask(played.states[positions])
            top = output.policy_logits[torch.as_tensor(alive_there)].argmax(dim=1).numpy()
            illegal[k].append(~legal[np.arange(positions.size), top])
        at_end = start_step + k == ends
        if at_end.any():
            terminal_missed.append(_misses_terminal(network, hidden[torch.as_tensor(at_end)], game.num_actions))

    depths = [
        DepthErrors(
            depth=k,
            reward_mae=_mean(reward_in[k]),
            value_mae=_mean(value_in[k]),
            reward_mae_past_end=_mean(reward_out[k]),
            value_mae_past_end=_mean(value_out[k]),
            illegal_preferred=_mean([x.astype(np.float64) for x in illegal[k]]),
            positions=int(sum(x.size for x in reward_in[k])),
            positions_past_end=int(sum(x.size for x in reward_out[k])),
        )
        for k in range(1, depth + 1)
    ]
    prior_optimal = float("nan")
    search_optimal: dict[int, float] = {}
    if oracle is not None:
        states = played.states[live]
        optimal = oracle.optimal_moves(states)
        logits = root.policy_logits.numpy().copy()
        logits[~legal_roots] = -np.inf
        prior_optimal = float(optimal[np.arange(live.size), logits.argmax(axis=1)].mean())
        for count in simulations:
            from muzero.acting.evaluation import SearchPlayer  # it builds the search

            player = SearchPlayer(config, game, network, batch_size=live.size, num_simulations=count)
            moves = player.act(states, np.random.default_rng(seed))
            search_optimal[count] = float(optimal[np.arange(live.size), moves].mean())
    misses = np.concatenate(terminal_missed) if terminal_missed else np.zeros(0, dtype=bool)
    return ModelQuality(
        depths=depths,
        root_illegal_preferred=root_illegal,
        terminal_missed=float(misses.mean()) if misses.size else float("nan"),
        terminals=int(misses.size),
        prior_optimal=prior_optimal,
        search_optimal=search_optimal,
        positions=int(live.size),
    )


def _misses_terminal(network: MuZeroNetwork, hidden: torch.Tensor, num_actions: int) -> np.ndarray:
    """(n,) bool: imagined final positions from which some action is predicted to pay a
    reward above :data:`MISSED_TERMINAL_REWARD` in magnitude."""
    n = hidden.shape[0]
    repeated = hidden.repeat_interleave(num_actions, dim=0)
    actions = torch.arange(num_actions).repeat(n)
    _, reward = _scalars(network, network.recurrent_inference(repeated, actions))
    return np.abs(reward.reshape(n, num_actions)).max(axis=1) > MISSED_TERMINAL_REWARD
