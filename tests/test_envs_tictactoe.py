"""Rules of the vectorised tic-tac-toe and its gymnasium Env."""

import itertools

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from muzero.envs import TICTACTOE_ENV_ID, TicTacToe
from muzero.envs.games.tictactoe import LINES

GAME = TicTacToe()

# X: 0, O: 4, X: 8, O: 2, X: 6, O: 3, X: 5, O: 7, X: 1 fills the board with no line:
#  X X O / O O X / X O X
DRAW_MOVES = [0, 4, 8, 2, 6, 3, 5, 7, 1]


def board(x_cells=(), o_cells=()) -> np.ndarray:
    state = np.zeros((1, 9), dtype=np.int8)
    state[0, list(x_cells)] = 1
    state[0, list(o_cells)] = 2
    return state


def has_line(cells) -> bool:
    return any(set(line) <= set(cells) for line in LINES.tolist())


def position_before_win(line, player):
    """``player`` owns two cells of ``line`` and is to move; the third cell is empty; nobody has a line."""
    others = [c for c in range(9) if c not in line]
    opponent_count = 2 if player == 0 else 3  # X moves when counts are equal
    opponent = next(c for c in itertools.combinations(others, opponent_count) if not has_line(c))
    own = line[:2]
    return board(*((own, opponent) if player == 0 else (opponent, own)))


def test_initial_state_and_shapes():
    states = GAME.initial_states(4)
    assert states.shape == (4, 9) and states.dtype == np.int8
    assert (GAME.to_play(states) == 0).all()
    assert GAME.legal_mask(states).all()
    assert not GAME.is_terminal(states).any()
    assert (GAME.outcome(states) == -1).all()


@pytest.mark.parametrize("player", [0, 1])
def test_every_line_wins_for_both_players(player):
    lines = LINES.tolist()
    states = np.concatenate([position_before_win(line, player) for line in lines])
    assert (GAME.to_play(states) == player).all()
    assert not GAME.is_terminal(states).any()
    winning_cells = np.array([line[2] for line in lines])
    next_states, reward, terminal = GAME.step(states, winning_cells)
    assert (reward == 1.0).all() and reward.dtype == np.float32
    assert terminal.all()
    assert (GAME.outcome(next_states) == player).all()
    assert not GAME.legal_mask(next_states).any()


def test_non_winning_move_gets_no_reward():
    states = position_before_win([0, 1, 2], 0)  # X on 0, 1; X to move
    empty_non_winning = [c for c in range(9) if states[0, c] == 0 and c != 2]
    for cell in empty_non_winning:
        _, reward, terminal = GAME.step(states, np.array([cell]))
        assert reward[0] == 0.0 and not terminal[0]


def test_draw_and_alternation():
    states = GAME.initial_states(1)
    for ply, move in enumerate(DRAW_MOVES):
        assert GAME.to_play(states)[0] == ply % 2
        assert not GAME.is_terminal(states)[0]
        states, reward, terminal = GAME.step(states, np.array([move]))
        assert reward[0] == 0.0
        assert terminal[0] == (ply == 8)
    assert GAME.outcome(states)[0] == -1
    assert GAME.is_terminal(states)[0]
    assert not GAME.legal_mask(states).any()


def test_legal_mask_is_the_empty_cells():
    states = board(x_cells=[0, 5], o_cells=[4])
    expected = np.ones(9, dtype=bool)
    expected[[0, 4, 5]] = False
    np.testing.assert_array_equal(GAME.legal_mask(states)[0], expected)


def test_legal_mask_is_empty_after_a_win_with_free_cells():
    states = board(x_cells=[0, 1, 2], o_cells=[3, 4])
    assert GAME.is_terminal(states)[0]
    assert not GAME.legal_mask(states).any()


def test_occupied_cell_is_rejected_naming_the_game():
    states = np.concatenate([GAME.initial_states(1), board([4], [])])
    before = states.copy()
    with pytest.raises(ValueError, match=r"games \[1\].*occupied"):
        GAME.step(states, np.array([4, 4]))
    np.testing.assert_array_equal(states, before)


def test_move_in_finished_game_is_rejected_naming_the_game():
    states = np.concatenate([GAME.initial_states(2), board([0, 1, 2], [3, 4])])
    with pytest.raises(ValueError, match=r"games \[2\] are already finished"):
        GAME.step(states, np.array([0, 1, 8]))


@pytest.mark.parametrize(
    "states, actions, error, message",
    [
        (GAME.initial_states(2), np.array([0, 9]), ValueError, r"\[0, 9\); games \[1\]"),
        (GAME.initial_states(2), np.array([0]), ValueError, r"actions must have shape \(2,\)"),
        (GAME.initial_states(1), np.array([0.0]), TypeError, "integer dtype"),
        (np.zeros((2, 3, 3), np.int8), np.array([0, 0]), ValueError, r"shape \(n, 9\)"),
        (np.zeros((1, 9), np.float32), np.array([0]), TypeError, "integer dtype"),
        (np.full((1, 9), 3, np.int8), np.array([0]), ValueError, "0, 1 or 2"),
        (board([], [0]), np.array([1]), ValueError, r"games \[0\] are not positions of play"),
    ],
)
def test_bad_input_is_rejected(states, actions, error, message):
    with pytest.raises(error, match=message):
        GAME.step(states, actions)


def test_step_does_not_modify_its_input():
    states = GAME.initial_states(3)
    GAME.step(states, np.array([0, 1, 2]))
    assert not states.any()


def test_observation_planes_are_from_the_movers_point_of_view():
    x_to_move = board(x_cells=[0], o_cells=[4])
    o_to_move = board(x_cells=[0, 8], o_cells=[4])
    obs = GAME.observe(np.concatenate([x_to_move, o_to_move]))
    assert obs.shape == (2, 3, 3, 3) and obs.dtype == np.float32
    # X to move: own plane has X's stone at (0, 0), opponent plane O's at (1, 1).
    np.testing.assert_array_equal(obs[0, 0].ravel(), np.eye(9)[0])
    np.testing.assert_array_equal(obs[0, 1].ravel(), np.eye(9)[4])
    assert (obs[0, 2] == 0.0).all()
    # O to move: the planes swap roles.
    np.testing.assert_array_equal(obs[1, 0].ravel(), np.eye(9)[4])
    np.testing.assert_array_equal(obs[1, 1].ravel(), np.eye(9)[0] + np.eye(9)[8])
    assert (obs[1, 2] == 1.0).all()


def test_render_shows_stones_numbers_and_status():
    text = GAME.render(board(x_cells=[0, 4], o_cells=[8])[0])
    assert text.splitlines()[0] == " X | 1 | 2"
    assert text.splitlines()[4] == " 6 | 7 | O"
    assert text.splitlines()[-1] == "O to play"
    assert GAME.render(board([0, 1, 2], [3, 4])[0]).endswith("X wins")
    with pytest.raises(ValueError, match=r"state must have shape \(9,\)"):
        GAME.render(GAME.initial_states(1))


def test_gym_env_passes_gymnasium_checker():
    env = gymnasium.make(TICTACTOE_ENV_ID)
    check_env(env.unwrapped)
    env.close()


def test_gym_env_plays_both_sides_and_rejects_illegal_moves():
    env = gymnasium.make(TICTACTOE_ENV_ID)
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 3, 3) and info["to_play"] == 0 and info["legal_mask"].all()
    # X: 0, O: 3, X: 1, O: 4, X: 2 wins for X.
    for move, mover in zip([0, 3, 1, 4], [0, 1, 0, 1]):
        obs, reward, terminated, truncated, info = env.step(move)
        assert reward == 0.0 and not terminated and not truncated
        assert info["to_play"] == 1 - mover
        assert not info["legal_mask"][move]
    with pytest.raises(ValueError, match="occupied"):
        env.step(0)
    obs, reward, terminated, _, info = env.step(2)
    assert reward == 1.0 and terminated and not info["legal_mask"].any()
    with pytest.raises(ValueError, match="finished"):
        env.step(5)
    with pytest.raises(ValueError, match="action must be"):
        env.step(9)
    env.close()
