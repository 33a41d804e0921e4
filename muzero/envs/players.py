"""Game-independent players for board games, and batched matches between two players.

A player maps a batch of states to one action per state: ``act(states, rng)``.
All of them work on many games at once, so a match of hundreds of games runs
as a handful of batched calls per move.

- :class:`RandomPlayer`: uniform over legal moves.
- :class:`UCTPlayer`: plain UCT (Kocsis & Szepesvari, 2006) with random
  rollouts and no network, batched over games with the tree held in arrays.

Players that know one game (tic-tac-toe's minimax) live in that game's module
under ``muzero/envs/games/``.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from muzero.envs.base import BoardGame


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


# --- UCT -------------------------------------------------------------------------------


class UCTPlayer:
    """Plain UCT with uniformly random rollouts: a network-free baseline.

    Each node stores the return from the point of view of the player who moved
    into it, so a parent picks the child best for its own mover by
    UCB1 = mean return + exploration * sqrt(ln N(parent) / N(child)); unvisited
    legal moves are expanded first. The move played is the most visited root
    child (ties broken at random).
    """

    def __init__(
        self,
        game: BoardGame,
        num_simulations: int = 100,
        exploration: float = math.sqrt(2),
        max_rollout_moves: int = 1000,
    ):
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

    def _simulate(self, tree: _Tree, rng: np.random.Generator) -> None:
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
                self.game,
                tree.states[live, node[live]],
                rng,
                self.max_rollout_moves,
                perspective=np.zeros(live.size, dtype=np.int8),
            )
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


def random_playout_return(
    game: BoardGame, states: np.ndarray, rng: np.random.Generator, max_moves: int, perspective: np.ndarray
) -> np.ndarray:
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
            raise ValueError(
                f"states {np.flatnonzero(~legal.any(axis=1)).tolist()} have no legal move (finished games?)"
            )
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


def play_match(
    game: BoardGame,
    player_a: Player,
    player_b: Player,
    num_games: int,
    rng: np.random.Generator,
    a_first: bool | None = None,
) -> dict[str, int]:
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
