"""Baseline players for board games, and batched matches between two players.

A player maps a batch of states to one action per state: ``act(states, rng)``.
All of them work on many games at once, so a match of hundreds of games runs
as a handful of batched calls per move.

- :class:`RandomPlayer`: uniform over legal moves.
- :class:`MinimaxPlayer`: perfect tic-tac-toe, from a table of every reachable
  position solved once by backward induction.
- :class:`UCTPlayer`: plain UCT (Kocsis & Szepesvari, 2006) with random
  rollouts and no network, batched over games with the tree held in arrays.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from muzero.envs.base import BoardGame
from muzero.envs.tictactoe import NUM_CELLS, TicTacToe, check_states


class Player(Protocol):
    def act(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n,) int64 actions, one legal move for each of the n states."""


def sample_from_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n,) int64: for each row of an (n, A) bool mask, a uniformly random True column."""
    empty = ~mask.any(axis=1)
    if empty.any():
        raise ValueError(f"no move to choose from in rows {np.flatnonzero(empty).tolist()} (finished games?)")
    scores = rng.random(mask.shape)
    scores[~mask] = -1.0  # below any uniform draw, so only True columns can win the argmax
    return scores.argmax(axis=1).astype(np.int64)


class RandomPlayer:
    """Plays a uniformly random legal move."""

    def __init__(self, game: BoardGame):
        self.game = game

    def act(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return sample_from_mask(self.game.legal_mask(states), rng)


# --- minimax ---------------------------------------------------------------------------

_CELL_WEIGHTS = 3 ** np.arange(NUM_CELLS, dtype=np.int64)
_NUM_CODES = 3**NUM_CELLS


def _board_codes(states: np.ndarray) -> np.ndarray:
    """(n,) int64 base-3 code of each board: a unique index into the solved tables."""
    return states.astype(np.int64) @ _CELL_WEIGHTS


@dataclass(frozen=True)
class _SolvedTicTacToe:
    """Game-theoretic values and optimal moves of every reachable position, indexed by board code."""

    reachable: np.ndarray  # (3**9,) bool
    value: np.ndarray  # (3**9,) int8, for the player to move; 0 at terminal positions
    optimal: np.ndarray  # (3**9, 9) bool; all False at terminal positions


@functools.lru_cache(maxsize=1)
def _solve_tictactoe() -> _SolvedTicTacToe:
    """Enumerate reachable positions layer by layer (a layer = a stone count), then
    back values up from the last layer: Q(s, a) = reward - value(child), negamax."""
    game = TicTacToe()
    layers = [game.initial_states(1)]
    while True:
        layer = layers[-1]
        parents, actions = np.nonzero(game.legal_mask(layer))
        if parents.size == 0:
            break
        children, _, _ = game.step(layer[parents], actions)
        _, first = np.unique(_board_codes(children), return_index=True)
        layers.append(children[first])

    reachable = np.zeros(_NUM_CODES, dtype=bool)
    value = np.zeros(_NUM_CODES, dtype=np.int8)
    optimal = np.zeros((_NUM_CODES, NUM_CELLS), dtype=bool)
    for layer in reversed(layers):  # children (one more stone) are always solved first
        legal = game.legal_mask(layer)
        q = np.full(legal.shape, -2, dtype=np.int8)  # -2: below any real value, marks illegal moves
        parents, actions = np.nonzero(legal)
        if parents.size:
            children, reward, _ = game.step(layer[parents], actions)
            q[parents, actions] = reward.astype(np.int8) - value[_board_codes(children)]
        best = np.where(legal.any(axis=1), q.max(axis=1), 0).astype(np.int8)
        codes = _board_codes(layer)
        reachable[codes] = True
        value[codes] = best
        optimal[codes] = legal & (q == best[:, None])
    for table in (reachable, value, optimal):
        table.setflags(write=False)
    return _SolvedTicTacToe(reachable, value, optimal)


class MinimaxPlayer:
    """Perfect tic-tac-toe: a uniformly random choice among all value-optimal moves.

    Values follow the search convention (see ``muzero/search/types.py``): the
    return still to come for the player to move, so +1 for a forced win, -1 for
    a forced loss, 0 for a draw, and 0 at finished positions (the winning move's
    reward was already paid).
    """

    def __init__(self, game: TicTacToe | None = None):
        game = TicTacToe() if game is None else game
        if not isinstance(game, TicTacToe):
            raise TypeError(f"MinimaxPlayer solves tic-tac-toe only, got {type(game).__name__}")
        self.game = game
        self._solved = _solve_tictactoe()

    def _codes(self, states: np.ndarray) -> np.ndarray:
        codes = _board_codes(check_states(states))
        unreachable = ~self._solved.reachable[codes]
        if unreachable.any():
            raise ValueError(f"states {np.flatnonzero(unreachable).tolist()} cannot arise in play")
        return codes

    def values(self, states: np.ndarray) -> np.ndarray:
        """(n,) float32 game-theoretic value for the player to move."""
        return self._solved.value[self._codes(states)].astype(np.float32)

    def optimal_moves(self, states: np.ndarray) -> np.ndarray:
        """(n, 9) bool: every move that achieves the position's value."""
        return self._solved.optimal[self._codes(states)]

    def act(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return sample_from_mask(self.optimal_moves(states), rng)


# --- UCT -------------------------------------------------------------------------------


class UCTPlayer:
    """Plain UCT with uniformly random rollouts: a network-free baseline.

    Each node stores the return from the point of view of the player who moved
    into it, so a parent picks the child best for its own mover by
    UCB1 = mean return + exploration * sqrt(ln N(parent) / N(child)); unvisited
    legal moves are expanded first. The move played is the most visited root
    child (ties broken at random).
    """

    def __init__(self, game: BoardGame, num_simulations: int = 100, exploration: float = math.sqrt(2),
                 max_rollout_moves: int = 1000):
        if num_simulations < 1:
            raise ValueError(f"num_simulations must be >= 1, got {num_simulations}")
        if exploration < 0:
            raise ValueError(f"exploration must be >= 0, got {exploration}")
        if max_rollout_moves < 1:
            raise ValueError(f"max_rollout_moves must be >= 1, got {max_rollout_moves}")
        self.game = game
        self.num_simulations = num_simulations
        self.exploration = exploration
        self.max_rollout_moves = max_rollout_moves

    def act(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        visits = self.root_visits(states, rng)
        return sample_from_mask(visits == visits.max(axis=1, keepdims=True), rng)

    def root_visits(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, A) int64 visit counts of the root children after the search."""
        tree = _Tree(self.game, states, self.num_simulations + 1)
        for _ in range(self.num_simulations):
            self._simulate(tree, rng)
        children = tree.children[:, 0]  # (n, A)
        return np.where(children >= 0, np.take_along_axis(tree.visits, np.maximum(children, 0), axis=1), 0)

    def _simulate(self, tree: "_Tree", rng: np.random.Generator) -> None:
        n = tree.num_games
        node = np.zeros(n, dtype=np.int64)
        path = []  # one (n,) array per depth below the root: the node entered, -1 if none

        # Selection: descend through fully expanded nodes by UCB1.
        descending = np.arange(n)
        while descending.size:
            at = node[descending]
            unexpanded = tree.legal[descending, at] & (tree.children[descending, at] < 0)
            stop = tree.terminal[descending, at] | unexpanded.any(axis=1)
            descending = descending[~stop]
            if not descending.size:
                break
            at = node[descending]
            children = tree.children[descending, at]  # (k, A), every legal one expanded
            legal = tree.legal[descending, at]
            safe = np.maximum(children, 0)
            child_visits = np.take_along_axis(tree.visits[descending], safe, axis=1).astype(np.float64)
            child_visits = np.maximum(child_visits, 1.0)  # illegal slots only; masked below
            mean = np.take_along_axis(tree.value_sum[descending], safe, axis=1) / child_visits
            log_parent = np.log(tree.visits[descending, at].astype(np.float64))[:, None]
            ucb = np.where(legal, mean + self.exploration * np.sqrt(log_parent / child_visits), -np.inf)
            node[descending] = children[np.arange(descending.size), ucb.argmax(axis=1)]
            step_nodes = np.full(n, -1, dtype=np.int64)
            step_nodes[descending] = node[descending]
            path.append(step_nodes)

        # Expansion: one new child, chosen at random among untried moves, where the leaf is not terminal.
        games = np.arange(n)
        expand = games[~tree.terminal[games, node]]
        if expand.size:
            leaf = node[expand]
            actions = sample_from_mask(tree.legal[expand, leaf] & (tree.children[expand, leaf] < 0), rng)
            new = tree.add_children(expand, leaf, actions)
            node[expand] = new
            step_nodes = np.full(n, -1, dtype=np.int64)
            step_nodes[expand] = new
            path.append(step_nodes)

        # Simulation: a random playout; the return is kept from player 0's point of view.
        return_player0 = np.zeros(n, dtype=np.float64)
        live = games[~tree.terminal[games, node]]
        if live.size:
            return_player0[live] = random_playout_return(
                self.game, tree.states[live, node[live]], rng, self.max_rollout_moves,
                perspective=np.zeros(live.size, dtype=np.int8))
        for step_nodes in path:  # rewards paid on the way down count too
            moved = np.flatnonzero(step_nodes >= 0)
            entered = step_nodes[moved]
            sign = np.where(tree.mover[moved, entered] == 0, 1.0, -1.0)
            return_player0[moved] += sign * tree.reward[moved, entered]

        # Backup: every node on the path scores the return for the player who moved into it.
        tree.visits[:, 0] += 1
        for step_nodes in path:
            moved = np.flatnonzero(step_nodes >= 0)
            entered = step_nodes[moved]
            sign = np.where(tree.mover[moved, entered] == 0, 1.0, -1.0)
            tree.visits[moved, entered] += 1
            tree.value_sum[moved, entered] += sign * return_player0[moved]


def random_playout_return(game: BoardGame, states: np.ndarray, rng: np.random.Generator, max_moves: int,
                          perspective: np.ndarray) -> np.ndarray:
    """(n,) float64 sum of rewards of one uniformly random playout from each state,
    from the point of view of player ``perspective[i]`` (n,)."""
    perspective = np.asarray(perspective)
    total = np.zeros(states.shape[0], dtype=np.float64)
    current = states.copy()
    for _ in range(max_moves):
        legal = game.legal_mask(current)
        live = np.flatnonzero(legal.any(axis=1))
        if not live.size:
            break
        mover = game.to_play(current[live])
        next_states, reward, _ = game.step(current[live], sample_from_mask(legal[live], rng))
        current[live] = next_states
        total[live] += np.where(mover == perspective[live], 1.0, -1.0) * reward
    return total


class _Tree:
    """A batch of n search trees in preallocated (n, max_nodes, ...) arrays; node 0 is the root."""

    def __init__(self, game: BoardGame, root_states: np.ndarray, max_nodes: int):
        n = root_states.shape[0]
        legal = game.legal_mask(root_states)
        if not legal.any(axis=1).all():
            raise ValueError(f"states {np.flatnonzero(~legal.any(axis=1)).tolist()} have no legal move (finished games?)")
        self.game = game
        self.num_games = n
        self.states = np.zeros((n, max_nodes, *root_states.shape[1:]), dtype=root_states.dtype)
        self.legal = np.zeros((n, max_nodes, game.num_actions), dtype=bool)
        self.children = np.full((n, max_nodes, game.num_actions), -1, dtype=np.int64)
        self.visits = np.zeros((n, max_nodes), dtype=np.int64)
        self.value_sum = np.zeros((n, max_nodes), dtype=np.float64)  # for the player who moved in
        self.mover = np.full((n, max_nodes), -1, dtype=np.int8)  # who moved into the node
        self.reward = np.zeros((n, max_nodes), dtype=np.float64)  # paid to the mover on entering
        self.terminal = np.zeros((n, max_nodes), dtype=bool)
        self.num_nodes = np.ones(n, dtype=np.int64)
        self.states[:, 0] = root_states
        self.legal[:, 0] = legal

    def add_children(self, games: np.ndarray, parents: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Play ``actions`` from the ``parents`` of ``games``; returns the new node indices."""
        parent_states = self.states[games, parents]
        child_states, reward, terminal = self.game.step(parent_states, actions)
        new = self.num_nodes[games]
        self.num_nodes[games] += 1
        self.states[games, new] = child_states
        self.legal[games, new] = self.game.legal_mask(child_states)
        self.mover[games, new] = self.game.to_play(parent_states)
        self.reward[games, new] = reward
        self.terminal[games, new] = terminal
        self.children[games, parents, actions] = new
        return new


# --- matches ---------------------------------------------------------------------------


def play_match(game: BoardGame, player_a: Player, player_b: Player, num_games: int,
               rng: np.random.Generator, a_first: bool | None = None) -> dict[str, int]:
    """Play ``num_games`` games at once; returns {"wins", "draws", "losses"} for player_a.

    ``a_first`` True/False makes player_a move first/second in every game; None
    alternates (player_a moves first in the even-numbered games). Each move, every
    player's ``act`` is called once on the games where it is to move.
    """
    if num_games < 1:
        raise ValueError(f"num_games must be >= 1, got {num_games}")
    states = game.initial_states(num_games)
    if a_first is None:
        a_player = (np.arange(num_games) % 2).astype(np.int8)
    else:
        a_player = np.full(num_games, 0 if a_first else 1, dtype=np.int8)
    a_result = np.zeros(num_games, dtype=np.int8)  # +1 player_a won, -1 lost, 0 draw
    live = np.ones(num_games, dtype=bool)
    while live.any():
        a_to_move = live & (game.to_play(states) == a_player)
        b_to_move = live & ~a_to_move
        actions = np.zeros(num_games, dtype=np.int64)
        if a_to_move.any():
            actions[a_to_move] = player_a.act(states[a_to_move], rng)
        if b_to_move.any():
            actions[b_to_move] = player_b.act(states[b_to_move], rng)
        games = np.flatnonzero(live)
        next_states, reward, terminal = game.step(states[games], actions[games])
        states[games] = next_states
        # The reward goes to the mover: flip its sign when player_b moved.
        a_reward = np.where(a_to_move[games], 1, -1) * np.sign(reward)
        ended = games[terminal]
        a_result[ended] = a_reward[terminal]
        live[ended] = False
    return {
        "wins": int((a_result == 1).sum()),
        "draws": int((a_result == 0).sum()),
        "losses": int((a_result == -1).sum()),
    }
