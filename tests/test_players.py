"""Baseline players (random, minimax, UCT) and batched matches."""

import functools
import time

import numpy as np
import pytest

from muzero.envs import TicTacToe
from muzero.envs.games.tictactoe import LINES, MinimaxPlayer
from muzero.envs.players import RandomPlayer, UCTPlayer, play_match, sample_from_mask

GAME = TicTacToe()


def board(x_cells=(), o_cells=()) -> np.ndarray:
    state = np.zeros((1, 9), dtype=np.int8)
    state[0, list(x_cells)] = 1
    state[0, list(o_cells)] = 2
    return state


# X 0, 1; O 3, 4; X to move. Only 2 wins: any other move lets O win at 5, or (X 5) blocks
# but after O's forced 2 no X line is left open, so at best a draw.
IMMEDIATE_WIN = board([0, 1], [3, 4])
# X 0, 1, 3; O 4, 5, 8; X to move. O threatens 2 (2-5-8); X wins at 2 (row 0) or 6 (column 0).
TWO_WINS_UNDER_THREAT = board([0, 1, 3], [4, 5, 8])
# X 0, 1, 3 threatens 2 and 6; O (4, 8) to move cannot block both and has no line of its own.
FORCED_LOSS = board([0, 1, 3], [4, 8])
# X 0, 1 threatens 2; O 4 to move must block.
MUST_BLOCK = board([0, 1], [4])


class FirstLegalPlayer:
    """Deterministic: always the lowest-numbered empty cell."""

    def __init__(self):
        self.seen_to_play = []

    def act(self, states, rng):
        self.seen_to_play.extend(GAME.to_play(states).tolist())
        return GAME.legal_mask(states).argmax(axis=1)


def test_sample_from_mask_is_uniform_over_true_columns():
    mask = np.array([[True, False, True, False]] * 4000)
    picks = sample_from_mask(mask, np.random.default_rng(0))
    assert set(picks.tolist()) == {0, 2}
    assert abs((picks == 0).mean() - 0.5) < 0.05
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        sample_from_mask(np.array([[True], [False]]), np.random.default_rng(0))


def test_random_player_plays_only_and_all_legal_moves():
    states = np.repeat(board([0, 4], [8]), 2000, axis=0)
    moves = RandomPlayer(GAME).act(states, np.random.default_rng(1))
    assert set(moves.tolist()) == {1, 2, 3, 5, 6, 7}


def test_minimax_empty_board_is_a_draw_and_every_opening_keeps_it():
    player = MinimaxPlayer(GAME)
    assert player.values(GAME.initial_states(1))[0] == 0.0
    assert player.optimal_moves(GAME.initial_states(1)).all()


@pytest.mark.parametrize(
    "state, value, optimal",
    [
        (IMMEDIATE_WIN, 1.0, [2]),
        (TWO_WINS_UNDER_THREAT, 1.0, [2, 6]),
        (FORCED_LOSS, -1.0, [2, 5, 6, 7]),  # every move loses, so every move is optimal
        (MUST_BLOCK, 0.0, [2]),
    ],
)
def test_minimax_known_positions(state, value, optimal):
    player = MinimaxPlayer(GAME)
    assert player.values(state)[0] == value
    np.testing.assert_array_equal(np.flatnonzero(player.optimal_moves(state)[0]), optimal)


def test_minimax_finished_positions_have_value_zero_and_no_moves():
    player = MinimaxPlayer(GAME)
    won = board([0, 1, 2], [3, 4])
    assert player.values(won)[0] == 0.0
    assert not player.optimal_moves(won).any()
    with pytest.raises(ValueError, match="no move"):
        player.act(won, np.random.default_rng(0))


def test_minimax_rejects_unreachable_positions():
    both_won = board([0, 1, 2], [3, 4, 5])  # X would have stopped the game before O's line
    with pytest.raises(ValueError, match=r"states \[0\] cannot arise"):
        MinimaxPlayer(GAME).values(both_won)


@functools.cache
def _negamax(cells: tuple) -> int:
    """Independent reference: plain recursion on tuples, value for the player to move."""
    for line in LINES.tolist():
        if cells[line[0]] != 0 and cells[line[0]] == cells[line[1]] == cells[line[2]]:
            return -1  # the previous mover completed a line
    if all(cells):
        return 0
    stone = 1 if cells.count(0) % 2 == 1 else 2
    return max(-_negamax(cells[:i] + (stone,) + cells[i + 1 :]) for i in range(9) if cells[i] == 0)


def test_minimax_values_match_a_reference_search_on_random_positions():
    rng = np.random.default_rng(3)
    states = GAME.initial_states(300)
    player = MinimaxPlayer(GAME)
    checked = 0
    for _ in range(9):
        live = ~GAME.is_terminal(states)
        if not live.any():
            break
        values = player.values(states[live])
        optimal = player.optimal_moves(states[live])
        for state, value, best in zip(states[live], values, optimal):
            assert value == _negamax(tuple(state.tolist()))
            for move in np.flatnonzero(GAME.legal_mask(state[None])[0]):
                child, reward, _ = GAME.step(state[None], np.array([move]))
                child_value = 0 if reward[0] else -_negamax(tuple(child[0].tolist()))
                assert best[move] == (reward[0] + child_value == value)
            checked += 1
        states[live] = GAME.step(states[live], RandomPlayer(GAME).act(states[live], rng))[0]
    assert checked > 1000


def test_minimax_table_builds_fast():
    from muzero.envs.games.tictactoe import _solve_tictactoe

    _solve_tictactoe.cache_clear()
    start = time.perf_counter()
    solved = _solve_tictactoe()
    assert time.perf_counter() - start < 1.0
    assert solved.reachable.sum() == 5478  # the known count of legal tic-tac-toe positions


def test_minimax_varies_its_play():
    moves = MinimaxPlayer(GAME).act(GAME.initial_states(500), np.random.default_rng(0))
    assert len(set(moves.tolist())) == 9


def test_minimax_never_loses_to_random_and_draws_itself():
    rng = np.random.default_rng(0)
    minimax, random_player = MinimaxPlayer(GAME), RandomPlayer(GAME)
    for a_first in (True, False):
        result = play_match(GAME, minimax, random_player, 200, rng, a_first=a_first)
        assert result["losses"] == 0 and result["wins"] > 100
    assert play_match(GAME, minimax, minimax, 100, rng) == {"wins": 0, "draws": 100, "losses": 0}


def test_play_match_counts_from_player_a_and_alternates_first_move():
    # Lowest-empty-cell play: X 0, O 1, X 2, O 3, X 4, O 5, X 6 -- X wins on the 2-4-6 diagonal.
    a, b = FirstLegalPlayer(), FirstLegalPlayer()
    rng = np.random.default_rng(0)
    assert play_match(GAME, a, b, 10, rng, a_first=True) == {"wins": 10, "draws": 0, "losses": 0}
    assert play_match(GAME, a, b, 10, rng, a_first=False) == {"wins": 0, "draws": 0, "losses": 10}
    a, b = FirstLegalPlayer(), FirstLegalPlayer()
    assert play_match(GAME, a, b, 10, rng) == {"wins": 5, "draws": 0, "losses": 5}
    # Alternating: each player moves first in half the games, so it sees both sides to move.
    assert set(a.seen_to_play) == {0, 1} and set(b.seen_to_play) == {0, 1}


def test_play_match_calls_each_player_only_on_its_turn():
    a, b = FirstLegalPlayer(), FirstLegalPlayer()
    play_match(GAME, a, b, 4, np.random.default_rng(0), a_first=True)
    assert set(a.seen_to_play) == {0} and set(b.seen_to_play) == {1}


def test_uct_takes_the_win_and_blocks_the_loss():
    rng = np.random.default_rng(0)
    player = UCTPlayer(GAME, num_simulations=200)
    states = np.concatenate([IMMEDIATE_WIN, MUST_BLOCK, TWO_WINS_UNDER_THREAT])
    for _ in range(3):
        moves = player.act(states, rng)
        assert moves[0] == 2 and moves[1] == 2 and moves[2] in (2, 6)


def test_uct_visit_counts_sum_to_the_simulations():
    visits = UCTPlayer(GAME, num_simulations=30).root_visits(GAME.initial_states(2), np.random.default_rng(0))
    np.testing.assert_array_equal(visits.sum(axis=1), [30, 30])
    assert (visits >= 1).all()  # every root move is tried before any is repeated


def test_uct_beats_random():
    rng = np.random.default_rng(0)
    result = play_match(GAME, UCTPlayer(GAME, num_simulations=50), RandomPlayer(GAME), 50, rng)
    assert result["wins"] + result["draws"] >= 40
    assert result["wins"] >= 30


def test_uct_rejects_bad_parameters():
    with pytest.raises(ValueError, match="num_simulations"):
        UCTPlayer(GAME, num_simulations=0)
    with pytest.raises(ValueError, match="exploration"):
        UCTPlayer(GAME, exploration=-1.0)


def test_uct_with_n_playouts_is_an_opponent_of_every_game():
    from muzero.envs.registry import get_game

    for game_id in ("tictactoe", "go5"):
        player = get_game(game_id).opponent("uct:37")
        assert isinstance(player, UCTPlayer) and player.num_simulations == 37
    for bad in ("uct:0", "uct:many", "uct:"):
        with pytest.raises(ValueError, match="uct:N needs N >= 1"):
            get_game("tictactoe").opponent(bad)
