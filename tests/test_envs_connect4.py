"""Rules of the vectorised Connect Four, and agreement with OpenSpiel's connect_four."""

import numpy as np
import pytest

from muzero.envs import ConnectFour, get_game, make_vector_env
from muzero.envs.games.connect4 import check_states
from muzero.envs.players import sample_from_mask

GAME = ConnectFour()
COLUMNS = "abcdefg"

# A full board with no four anywhere (rows alternate XXOOXXO / OOXXOOX), in an order of play.
DRAW_MOVES = [
    0,
    0,
    0,
    0,
    0,
    0,
    1,
    1,
    1,
    1,
    1,
    1,
    4,
    2,
    2,
    2,
    2,
    2,
    2,
    3,
    3,
    3,
    3,
    3,
    3,
    4,
    4,
    4,
    4,
    4,
    5,
    5,
    5,
    5,
    5,
    6,
    6,
    6,
    6,
    6,
    6,
    5,
]


def play(moves: str, n: int = 1):
    """Play columns named a-g in order in n identical games; returns (states, last reward, last terminal)."""
    states, reward, terminal = GAME.initial_states(n), None, None
    for name in moves:
        states, reward, terminal = GAME.step(states, np.full(n, COLUMNS.index(name)))
    return states, reward, terminal


def picture(*rows: str) -> np.ndarray:
    """A (1, 6, 7) state from six rows drawn top row first with X, O and '.'."""
    codes = {".": 0, "X": 1, "O": 2}
    board = np.array([[codes[c] for c in row.replace(" ", "")] for row in reversed(rows)], dtype=np.int8)
    return board[None]


@pytest.mark.parametrize(
    "moves, direction",
    [
        ("aabbccd", "horizontal"),  # X a1 b1 c1 d1, O on top of a-c
        ("abababa", "vertical"),  # X a1-a4
        ("abbccdcddgd", "rising diagonal"),  # X a1 b2 c3 d4
        ("gffeededdad", "falling diagonal"),  # X g1 f2 e3 d4
    ],
)
def test_four_in_a_row_wins_in_every_direction(moves, direction):
    before, reward, terminal = play(moves[:-1])
    assert not terminal[0] and GAME.outcome(before)[0] == -1 and GAME.legal_mask(before).any()
    states, reward, terminal = play(moves)
    assert reward[0] == 1.0 and terminal[0], direction
    assert GAME.outcome(states)[0] == 0 and GAME.is_terminal(states)[0]
    assert not GAME.legal_mask(states).any()
    assert GAME.render(states[0]).endswith("X wins")


def test_second_player_wins_are_credited_to_the_second_player():
    states, reward, terminal = play("gbgbabab")  # O b1-b4 while X spreads over a and g
    assert reward[0] == 1.0 and terminal[0] and GAME.outcome(states)[0] == 1


def test_lines_do_not_wrap_around_the_board_edges():
    # X a3 a4 a5 (top of column a) and b0: consecutive in a column-major numbering.
    vertical_wrap = picture(
        "X......",
        "X......",
        "X......",
        "O......",
        "O......",
        "OX.....",
    )
    # X e0 f0 g0 and a1: consecutive in a row-major numbering.
    horizontal_wrap = picture(
        ".......",
        ".......",
        ".......",
        ".......",
        "XO.....",
        "OOO.XXX",
    )
    for state in (vertical_wrap, horizontal_wrap):
        assert GAME.outcome(state)[0] == -1 and not GAME.is_terminal(state)[0]
        assert GAME.legal_mask(state)[0].sum() == 7 - (state[0, -1] != 0).sum()


def test_full_board_without_a_line_is_a_draw():
    states = GAME.initial_states(1)
    for ply, column in enumerate(DRAW_MOVES):
        assert not GAME.is_terminal(states)[0]
        assert GAME.to_play(states)[0] == ply % 2
        states, reward, terminal = GAME.step(states, np.array([column]))
        assert reward[0] == 0.0
        assert terminal[0] == (ply == len(DRAW_MOVES) - 1)
    assert (states != 0).all() and GAME.outcome(states)[0] == -1
    assert not GAME.legal_mask(states).any()
    assert GAME.render(states[0]).endswith("draw")


def test_illegal_moves_are_refused_naming_the_games():
    full_a, _, _ = play("aaaaaa", n=3)  # column a is full, nobody has won
    with pytest.raises(ValueError, match=r"games \[1\] play into full columns \[0\]"):
        GAME.step(full_a, np.array([1, 0, 2]))
    with pytest.raises(ValueError, match=r"columns in \[0, 7\); games \[0, 2\] got \[7, -1\]"):
        GAME.step(full_a, np.array([7, 1, -1]))
    won, _, _ = play("abababa", n=2)
    with pytest.raises(ValueError, match=r"games \[0, 1\] are already finished"):
        GAME.step(won, np.array([3, 4]))
    with pytest.raises(ValueError, match=r"actions must have shape \(3,\)"):
        GAME.step(full_a, np.array([1, 2]))
    unchanged = full_a.copy()
    GAME.step(full_a, np.array([1, 2, 3]))
    np.testing.assert_array_equal(full_a, unchanged)  # step never modifies its input


def test_states_that_cannot_arise_in_play_are_refused():
    floating = GAME.initial_states(2)
    floating[1, 1, 3] = 1  # a stone above an empty cell
    with pytest.raises(ValueError, match=r"games \[1\] have stones above empty cells"):
        GAME.legal_mask(floating)
    with pytest.raises(ValueError, match=r"games \[0\] are not positions of play"):
        check_states(picture(".......", ".......", ".......", ".......", ".......", "OO....."))
    with pytest.raises(ValueError, match=r"must have shape \(n, 6, 7\)"):
        GAME.observe(np.zeros((1, 42), dtype=np.int8))


def test_observation_planes_are_from_the_movers_point_of_view():
    states, _, _ = play("dc")  # X d1, O c1; X to move
    planes = GAME.observe(states)
    assert planes.shape == (1, 3, 6, 7) and planes.dtype == np.float32
    assert planes[0, 0, 0, 3] == 1 and planes[0, 1, 0, 2] == 1 and (planes[0, 2] == 0).all()
    states, _, _ = play("dce")  # O to move: its stone is now "own"
    planes = GAME.observe(states)
    assert planes[0, 0, 0, 2] == 1 and planes[0, 1, 0, 3] == planes[0, 1, 0, 4] == 1 and (planes[0, 2] == 1).all()


def test_render_labels_are_the_move_names_players_type():
    spec = get_game("connect4")
    text = GAME.render(play("d")[0][0])
    lines = text.splitlines()
    assert lines[-2].split() == [spec.format_move(column) for column in range(7)] == list(COLUMNS)
    assert lines[-3] == " . . . X . . ." and lines[-1] == "O to play"
    assert spec.parse_move("D") == 3 and spec.parse_move(" g ") == 6
    with pytest.raises(ValueError, match=r"connect4 has no move named 'h'"):
        spec.parse_move("h")
    with pytest.raises(ValueError, match="connect4 has no pass"):
        spec.parse_move("pass")


def test_vector_env_serves_connect4_with_uct_and_random_opponents():
    env = make_vector_env("connect4", num_envs=3, seed=0)
    assert isinstance(env.game, ConnectFour)
    assert (env.num_actions, env.num_players, env.observation_shape) == (7, 2, (3, 6, 7))
    assert env.reset().shape == (3, 3, 6, 7)
    spec = get_game("connect4")
    assert set(spec.opponents) == {"uct", "random"} and spec.eval_opponent == "uct"


def test_agrees_with_openspiel_connect_four_over_random_games():
    pyspiel = pytest.importorskip("pyspiel")
    num_games = 300
    rng = np.random.default_rng(0)
    openspiel = [pyspiel.load_game("connect_four").new_initial_state() for _ in range(num_games)]
    states = GAME.initial_states(num_games)
    live = np.ones(num_games, dtype=bool)
    moves_checked = 0
    while live.any():
        games = np.flatnonzero(live)
        legal = GAME.legal_mask(states[games])
        for row, i in enumerate(games):
            assert np.flatnonzero(legal[row]).tolist() == openspiel[i].legal_actions(), f"game {i}"
        actions = sample_from_mask(legal, rng)
        mover = GAME.to_play(states[games])
        next_states, reward, terminal = GAME.step(states[games], actions)
        states[games] = next_states
        for row, i in enumerate(games):
            assert openspiel[i].current_player() == mover[row]
            openspiel[i].apply_action(int(actions[row]))
            assert openspiel[i].is_terminal() == terminal[row], f"game {i}"
            planes = np.asarray(openspiel[i].observation_tensor(0)).reshape(3, 6, 7)  # x, o, empty; row 0 at the bottom
            np.testing.assert_array_equal(next_states[row] == 1, planes[0] == 1)
            np.testing.assert_array_equal(next_states[row] == 2, planes[1] == 1)
            if terminal[row]:
                returns = openspiel[i].returns()
                winner = int(GAME.outcome(next_states[row : row + 1])[0])
                assert returns == ([1.0, -1.0] if winner == 0 else [-1.0, 1.0] if winner == 1 else [0.0, 0.0])
                assert reward[row] == (1.0 if winner >= 0 else 0.0)  # only the mover can complete a line
            moves_checked += 1
        live[games[terminal]] = False
    assert moves_checked > num_games * 7
