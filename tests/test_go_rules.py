"""Go's rules on hand-set positions, and agreement with OpenSpiel and GNU Go on random games."""

import numpy as np
import pytest

from muzero.envs import get_game
from muzero.envs.go import GoRules, kernels, parse_vertex, vertex_name
from muzero.envs.go.kernels import BLACK_RESIGNED, ENDED_AT_MOVE_CAP, ENDED_BY_PASSES, PLAYING
from muzero.envs.go.rules import _groups
from muzero.transport.gtp_client import find_gnugo
from tests.benchmark_modules import load_benchmark


def bench():
    return load_benchmark("go_rules")


def position(rules: GoRules, diagram: str, to_play: int = 0) -> np.ndarray:
    """A (1, L) state from rows of X (Black), O (White) and . (empty), top row first."""
    rows = [line.split() for line in diagram.strip().splitlines()]
    assert len(rows) == rules.size and all(len(row) == rules.size for row in rows)
    codes = {".": 0, "X": 1, "O": 2}
    board = np.array([[codes[cell] for cell in row] for row in reversed(rows)])
    return rules.from_board(board, to_play)


def play(rules: GoRules, state: np.ndarray, *vertices: str):
    reward = terminal = None
    for vertex in vertices:
        state, reward, terminal = rules.step(state, np.array([parse_vertex(vertex, rules.size)]))
    return state, reward, terminal


def board_of(rules: GoRules, state: np.ndarray) -> np.ndarray:
    return rules.boards(state)[0]


def stones(rules: GoRules, state: np.ndarray) -> tuple[int, int]:
    board = board_of(rules, state)
    return int((board == 1).sum()), int((board == 2).sum())


def legal(rules: GoRules, state: np.ndarray, vertex: str) -> bool:
    return bool(rules.legal_mask(state)[0, parse_vertex(vertex, rules.size)])


def same_hash_as_fresh(rules: GoRules, state: np.ndarray) -> bool:
    """The incremental Zobrist hash equals the hash of the same board set up from scratch."""
    fresh = rules.from_board(board_of(rules, state), int(rules.to_play(state)[0]))
    return state[0, rules.fields["HASH"]] == fresh[0, rules.fields["HASH"]]


# --- captures ------------------------------------------------------------------------------


def test_single_stone_capture_in_the_middle():
    rules = GoRules(5)
    state = position(
        rules,
        """
        . . . . .
        . . X . .
        . X O . .
        . . X . .
        . . . . .
        """,
    )
    after, reward, terminal = play(rules, state, "D3")
    assert board_of(rules, after)[2, 2] == 0
    assert stones(rules, after) == (4, 0)
    assert rules.prisoners(after)[0].tolist() == [1, 0]
    assert reward[0] == 0 and not terminal[0]
    assert same_hash_as_fresh(rules, after)


def test_group_capture_and_two_groups_with_one_move():
    rules = GoRules(5)
    state = position(
        rules,
        """
        . X X . .
        X O O X .
        . X . X .
        X O O X .
        . X X . .
        """,
    )
    after, _, _ = play(rules, state, "C3")  # fills the last liberty of both two-stone groups
    assert stones(rules, after) == (11, 0)
    assert rules.prisoners(after)[0].tolist() == [4, 0]
    assert same_hash_as_fresh(rules, after)
    # the captured points are liberties again: White may play there
    assert legal(rules, after, "B2") and legal(rules, after, "C4")


def test_edge_and_corner_captures():
    rules = GoRules(5)
    corner = position(
        rules,
        """
        . . . . .
        . . . . .
        . . . . .
        X . . . .
        O . . . .
        """,
    )
    after, _, _ = play(rules, corner, "B1")
    assert board_of(rules, after)[0, 0] == 0 and rules.prisoners(after)[0, 0] == 1
    edge = position(
        rules,
        """
        . . . . .
        . . . . .
        . . . . .
        . X X . .
        X O O . .
        """,
    )
    after, _, _ = play(rules, edge, "D1")
    assert (board_of(rules, after)[0, 1:3] == 0).all() and rules.prisoners(after)[0, 0] == 2
    assert same_hash_as_fresh(rules, after)


def test_capture_makes_a_move_with_no_liberty_legal():
    rules = GoRules(5)
    surrounded = position(
        rules,
        """
        . X O . .
        X O . . .
        O . . . .
        . . . . .
        . . . . .
        """,
        to_play=1,
    )
    # White at A5: no empty neighbour, but both Black stones next to it are in atari there.
    assert legal(rules, surrounded, "A5")
    after, _, _ = play(rules, surrounded, "A5")
    assert stones(rules, after) == (0, 4) and rules.prisoners(after)[0].tolist() == [0, 2]


# --- suicide, ko, superko ---------------------------------------------------------------------

SUICIDE = """
. X . . .
X . . . .
. . . . .
. . . . .
. . . . .
"""

GROUP_SUICIDE = """
O X . . .
. X . . .
X X . . .
. . . . .
. . . . .
"""


def test_suicide_is_illegal_by_default_and_named():
    rules = GoRules(5)
    state = position(rules, SUICIDE, to_play=1)
    assert not legal(rules, state, "A5")
    with pytest.raises(ValueError, match=r"suicide.*A5"):
        play(rules, state, "A5")
    group = position(rules, GROUP_SUICIDE, to_play=1)
    assert not legal(rules, group, "A4")  # joins A5 in its last liberty: both would die


def test_suicide_allowed_removes_the_group_and_gives_prisoners():
    rules = GoRules(5, suicide=True)
    group = position(rules, GROUP_SUICIDE, to_play=1)
    assert legal(rules, group, "A4")
    after, _, _ = play(rules, group, "A4")
    assert stones(rules, after) == (4, 0)
    assert rules.prisoners(after)[0].tolist() == [2, 0]  # Black takes White's two stones
    assert same_hash_as_fresh(rules, after)
    # A single stone's suicide recreates the board: positional superko still forbids it...
    single = position(rules, SUICIDE, to_play=1)
    assert not legal(rules, single, "A5")
    # ...and under simple ko alone it is a legal (if pointless) move.
    simple = GoRules(5, suicide=True, superko="simple")
    single = position(simple, SUICIDE, to_play=1)
    assert legal(simple, single, "A5")
    after, _, _ = play(simple, single, "A5")
    assert stones(simple, after) == (2, 0)


KO = """
. . . . .
. X O . .
X O . O .
. X O . .
. . . . .
"""


@pytest.mark.parametrize("superko", ["positional", "simple"])
def test_ko_forbids_the_immediate_retake_only(superko):
    rules = GoRules(5, superko=superko)
    state = position(rules, KO)
    after, _, _ = play(rules, state, "C3")  # Black takes B3
    assert board_of(rules, after)[2, 1] == 0
    assert after[0, rules.fields["KO"]] == parse_vertex("B3", 5)
    assert not legal(rules, after, "B3")
    with pytest.raises(ValueError, match="B3"):
        play(rules, after, "B3")
    # a move elsewhere by each player lifts it: the board is a new one
    elsewhere, _, _ = play(rules, after, "E1", "A1")
    assert legal(rules, elsewhere, "B3")
    retaken, _, _ = play(rules, elsewhere, "B3")
    assert board_of(rules, retaken)[2, 2] == 0


# Found by random play (5x5, seed search): after these moves, E5 would recreate an earlier
# board. Simple ko allows it; positional superko does not.
SUPERKO_MOVES = "D4 A1 D5 E2 A5 B1 C5 B3 E3 E5 pass D3 D2 B5 D1 E4 E3".split()


def test_positional_superko_forbids_a_repetition_simple_ko_allows():
    positional, simple = GoRules(5), GoRules(5, superko="simple")
    boards = []
    state = positional.initial_states(1)
    for vertex in SUPERKO_MOVES:
        boards.append(board_of(positional, state).copy())
        state, _, _ = play(positional, state, vertex)
    boards.append(board_of(positional, state).copy())
    assert not legal(positional, state, "E5")
    with pytest.raises(ValueError, match="repeat an earlier position"):
        play(positional, state, "E5")
    again = simple.initial_states(1)
    again, _, _ = play(simple, again, *SUPERKO_MOVES)
    assert again[0, simple.fields["KO"]] != parse_vertex("E5", 5)  # not a simple ko
    assert legal(simple, again, "E5")
    repeated, _, _ = play(simple, again, "E5")
    assert any(np.array_equal(board_of(simple, repeated), earlier) for earlier in boards[:-1])


# --- the end of a game, and scoring -------------------------------------------------------------


def test_two_passes_end_the_game_and_pay_the_mover():
    rules = GoRules(5, komi=0.5)
    state = position(
        rules,
        """
        . X O . .
        . X O . .
        . X O . .
        . X O . .
        . X O . .
        """,
    )
    # Black 10 (stones + A column), White 15 (stones + D, E columns) + 0.5: White wins.
    after, reward, terminal = play(rules, state, "pass")
    assert reward[0] == 0 and not terminal[0]
    after, reward, terminal = play(rules, after, "pass")
    assert terminal[0] and rules.status(after)[0] == ENDED_BY_PASSES
    assert reward[0] == 1.0  # White passed last and won
    assert rules.winner(after)[0] == 1 and rules.score_text(after[0]) == "W+5.5"
    assert not rules.legal_mask(after).any()
    with pytest.raises(ValueError, match="already finished"):
        play(rules, after, "A1")
    # a pass in between resets the count: pass, move, pass does not end it
    state, _, terminal = play(rules, state, "pass", "A1", "pass")
    assert not terminal[0]


def test_the_move_cap_ends_the_game():
    rules = GoRules(5, move_cap=3)
    state, reward, terminal = play(rules, rules.initial_states(1), "C3", "D4")
    assert not terminal[0]
    state, reward, terminal = play(rules, state, "B2")
    assert terminal[0] and rules.status(state)[0] == ENDED_AT_MOVE_CAP
    assert reward[0] == -1.0  # Black moved last and lost: 2 stones against 1, no territory, komi 7.5


def test_tromp_taylor_area_with_dame_and_seki_like_shared_liberties():
    rules = GoRules(5, komi=7.5)
    # Black owns the left, White the right; C is shared: empty C points touch both.
    state = position(
        rules,
        """
        . X . O .
        . X . O .
        . X . O .
        . X . O .
        . X . O .
        """,
    )
    assert rules.area_difference(state)[0] == 0  # 10 against 10, column C counts for neither
    assert rules.black_margin(state)[0] == -7.5
    # B5 touches both colours (a shared liberty, as in seki): it counts for nobody.
    dame = position(
        rules,
        """
        X . O O .
        X X O . O
        . X O O O
        X X O . .
        . X O . .
        """,
    )
    # Black: 7 stones + A3 + A1 = 9; White: 9 stones + E5 + D4 + D2 E2 D1 E1 = 15.
    assert rules.area_difference(dame)[0] == 9 - 15
    assert rules.score_text(dame[0]) == "W+13.5"
    draw_rules = GoRules(5, komi=0)
    even = position(
        draw_rules,
        """
        . X . O .
        . X . O .
        . X . O .
        . X . O .
        . X . O .
        """,
    )
    after, reward, terminal = play(draw_rules, even, "pass", "pass")
    assert (
        terminal[0] and reward[0] == 0 and draw_rules.winner(after)[0] == -1 and draw_rules.score_text(after[0]) == "0"
    )


def test_resignation():
    rules = GoRules(9)
    state = rules.initial_states(2)
    resigned = rules.resign(state, np.array([True, False]))
    assert rules.status(resigned).tolist() == [BLACK_RESIGNED, PLAYING]
    assert rules.winner(resigned).tolist() == [1, -1]
    assert rules.score_text(resigned[0]) == "W+R"
    assert not rules.legal_mask(resigned)[0].any() and rules.legal_mask(resigned)[1].all()
    with pytest.raises(ValueError, match="already over"):
        rules.resign(resigned, np.array([True, False]))


# --- the batch, the network's view, bad input ------------------------------------------------


def test_a_batch_equals_its_games_played_one_by_one():
    """The parallel kernels (batches of PARALLEL_FROM or more) agree with the serial ones."""
    rules = GoRules(9)
    n = kernels.PARALLEL_FROM + 37
    rng = np.random.default_rng(5)
    batch = rules.initial_states(n)
    singles = [rules.initial_states(1) for _ in range(n)]
    for _ in range(60):
        masks = rules.legal_mask(batch)
        for i in range(0, n, 29):
            assert np.array_equal(rules.legal_mask(singles[i])[0], masks[i])
        actions = (rng.random(masks.shape) * masks).argmax(axis=1)
        batch, rewards, terminal = rules.step(batch, actions)
        for i in range(0, n, 29):
            singles[i], reward, done = rules.step(singles[i], actions[i : i + 1])
            assert np.array_equal(singles[i], batch[i : i + 1]) and reward[0] == rewards[i] and done[0] == terminal[i]
        if terminal.any():
            break


def test_observation_planes():
    rules = GoRules(5, komi=7.5)
    state, _, _ = play(rules, rules.initial_states(1), "C3", "D4")
    planes = rules.observe(state)
    assert planes.shape == (1, *rules.observation_shape)
    # Black to move: its stones first, White's second
    assert planes[0, 0, 2, 2] == 1 and planes[0, 1, 3, 3] == 1 and planes[0, 0].sum() == 1
    assert planes[0, 2, 3, 3] == 1 and planes[0, 3, 2, 2] == 1  # last move, the one before
    assert (planes[0, 8] == 1).all()  # the board's extent
    assert (planes[0, 9] == 0).all() and np.allclose(planes[0, 10], -7.5 / 15)  # Black: komi against
    white_view = rules.observe(play(rules, state, "B2")[0])
    assert (white_view[0, 9] == 1).all() and np.allclose(white_view[0, 10], 7.5 / 15)
    assert white_view[0, 0, 3, 3] == 1  # White's own stone comes first for White
    passed = rules.observe(play(rules, state, "pass")[0])
    assert (passed[0, 11] == 1).all() and passed[0, 2].sum() == 0


def test_bad_input_is_refused_with_the_games_named():
    rules = GoRules(9)
    states = rules.initial_states(3)
    with pytest.raises(ValueError, match="shape"):
        rules.legal_mask(states[:, :-1])
    with pytest.raises(TypeError, match="integer dtype"):
        rules.legal_mask(states.astype(np.float64))
    broken = states.copy()
    broken[1, 0] = 1
    broken[1, rules.fields["WHITE"]] = 1  # the same point Black and White
    with pytest.raises(ValueError, match=r"games \[1\] have points both Black and White"):
        rules.step(broken, np.zeros(3, dtype=np.int64))
    off = states.copy()
    off[2, 0] = 1 << 9  # bit 9 is the spare column, not a point
    with pytest.raises(ValueError, match=r"games \[2\] have stones on bits that are not points"):
        rules.legal_mask(off)
    turn = states.copy()
    turn[0, rules.fields["TO_PLAY"]] = 2
    with pytest.raises(ValueError, match=r"player to move.*games \[0\]"):
        rules.observe(turn)
    with pytest.raises(ValueError, match=r"games \[1\] got \[82\]"):
        rules.step(states, np.array([0, 82, 3]))
    with pytest.raises(ValueError, match="occupied point"):
        after, _, _ = rules.step(states, np.array([0, 1, 2]))
        rules.step(after, np.array([5, 1, 6]))
    stoneless = states.copy()
    stoneless[0, rules.fields["ATARI"]] = 1  # Black "in atari" on a point with no stone
    with pytest.raises(ValueError, match=r"games \[0\] have atari bits where that colour has no stone"):
        rules.legal_mask(stoneless)
    for bad in (dict(size=1), dict(size=26), dict(komi=float("nan")), dict(superko="situational"), dict(move_cap=0)):
        with pytest.raises(ValueError):
            GoRules(**bad)


def test_a_big_batch_is_checked_over_every_chunk():
    # Batches of PARALLEL_FROM boards or more are checked in parallel chunks: a bad row in the
    # last chunk, behind valid ones, must still be found and named.
    rules = GoRules(9)
    n = kernels.PARALLEL_FROM + 3
    states = rules.initial_states(n)
    assert rules.legal_mask(states).all(axis=1).all()
    states[n - 2, rules.fields["MOVES"]] = rules.move_cap + 1
    with pytest.raises(ValueError, match=rf"moves played.*games \[{n - 2}\]"):
        rules.legal_mask(states)


def atari_from_scratch(rules: GoRules, state: np.ndarray) -> np.ndarray:
    """(points,) 0 / 1 Black / 2 White: the stones whose group has one liberty, counted from
    the board alone by rules._groups's walk over each group (no bitboards)."""
    found = np.zeros(rules.points, dtype=np.int8)
    for color, stones, liberties in _groups(board_of(rules, state)):
        if liberties == 1:
            for row, column in stones:
                found[row * rules.size + column] = color
    return found


def atari_in_state(rules: GoRules, state: np.ndarray) -> np.ndarray:
    """The same, read from the state's ATARI bitboards."""
    as_board = state.copy()
    words = 2 * rules.layout.words
    as_board[:, :words] = state[:, rules.fields["ATARI"] : rules.fields["ATARI"] + words]
    return board_of(rules, as_board).reshape(-1)


@pytest.mark.parametrize("size, suicide", [(5, False), (5, True), (9, False), (13, False)])
def test_the_atari_bitboards_stay_true_through_random_games(size, suicide):
    # Every move updates the atari bitboards for the groups it touches only; the legal mask
    # trusts them. After every move of random games they must equal a count from scratch.
    rules = GoRules(size, suicide=suicide)
    rng = np.random.default_rng(size + suicide)
    states = rules.initial_states(16)
    in_atari = captures = 0
    for _ in range(rules.move_cap):
        live = np.flatnonzero(rules.status(states) == PLAYING)
        if live.size == 0:
            break
        masks = rules.legal_mask(states[live])
        moves = np.array([rng.choice(np.flatnonzero(mask)) for mask in masks])
        states[live], _, _ = rules.step(states[live], moves)
        for game in live:
            expected = atari_from_scratch(rules, states[game : game + 1])
            assert (atari_in_state(rules, states[game : game + 1]) == expected).all(), game
            in_atari += int((expected > 0).sum())
    captures = int(rules.prisoners(states).sum())
    assert in_atari > 100 and captures > 10  # the games did put groups in atari and capture them


def test_set_up_positions_know_their_groups_in_atari():
    rules = GoRules(5)
    state = position(
        rules,
        """
        . X O X .
        . . . . .
        . . . . .
        O . . . .
        X . . . .
        """,
    )
    in_atari = atari_in_state(rules, state)
    assert np.flatnonzero(in_atari == 2).tolist() == [parse_vertex("C5", 5)]  # breathes at C4 only
    assert np.flatnonzero(in_atari == 1).tolist() == [parse_vertex("A1", 5)]  # breathes at B1 only
    assert rules.legal_mask(state)[0].sum() == 20 + 1  # every empty point and the pass
    state, _, _ = play(rules, state, "C4")  # takes C5
    assert stones(rules, state) == (4, 1)
    assert (atari_in_state(rules, state) == atari_from_scratch(rules, state)).all()


def test_set_up_positions_must_be_positions_of_play():
    rules = GoRules(5)
    with pytest.raises(ValueError, match="no liberty"):
        position(
            rules,
            """
            O X . . .
            X . . . .
            . . . . .
            . . . . .
            . . . . .
            """,
        )
    with pytest.raises(ValueError, match="shape"):
        rules.from_board(np.zeros((4, 4)))


def test_registered_sizes_and_move_names():
    spec = get_game("go9")
    assert spec.make().size == 9 and spec.pass_action == 81
    assert spec.format_move(parse_vertex("J9", 9)) == "J9" and spec.parse_move("j9") == 80
    assert vertex_name(8, 9) == "J1"  # GTP skips the letter I
    with pytest.raises(ValueError, match="off a 9x9 board"):
        parse_vertex("K1", 9)
    for size in (5, 7, 13, 19):
        assert get_game(f"go{size}").make().num_actions == size * size + 1


def test_render_shows_the_board_and_the_result():
    rules = GoRules(5)
    state, _, _ = play(rules, rules.initial_states(1), "C3", "pass", "pass")
    text = rules.render(state[0])
    assert "A  B  C  D  E" in text and "game over: B+17.5" in text


# --- engines nobody here wrote ------------------------------------------------------------


@pytest.mark.parametrize("size,games", [(5, 300), (9, 60), (19, 3)])
def test_agrees_with_openspiel_move_for_move(size, games):
    pytest.importorskip("pyspiel")
    report = bench().compare_with_openspiel(size, games, seed=size)
    assert report["games"] == games and report["moves"] > games * size
    assert report["first_mismatch"] is None, report
    simple = bench().compare_with_openspiel(size, max(1, games // 3), seed=100 + size, superko="simple")
    assert simple["first_mismatch"] is None, simple


def test_scores_agree_with_gnugo_on_games_played_to_the_end():
    if find_gnugo() is None:
        pytest.skip("GNU Go is not installed (scripts/install_tools.sh installs it)")
    for size, games in ((5, 12), (9, 6)):
        report = bench().compare_with_gnugo(size, games, seed=size)
        assert report["compared"] >= games - 2 and report["compared"] + report["dead_stones_left"] == games, report
        assert report["score_disagreements"] == 0 and report["illegal_gnugo_moves"] == 0, report


def test_a_move_gnugo_refuses_is_checked_against_every_earlier_board():
    # GNU Go (past 500 moves) has refused random moves of ours; the benchmark then checks
    # by the boards whether the move recreates an earlier one. Simple ko lets us play the
    # repeating E5 here; any other legal move repeats nothing.
    from muzero.transport.gtp_client import GtpError

    rules = GoRules(5, superko="simple")
    state = rules.initial_states(1)
    boards = [board_of(rules, state).tobytes()]
    for vertex in SUPERKO_MOVES:
        state, _, _ = play(rules, state, vertex)
        boards.append(board_of(rules, state).tobytes())
    refusal = GtpError("'play black E5': illegal move")
    repeating = bench()._refused_by_gnugo(rules, state, parse_vertex("E5", 5), 18, boards, refusal)
    assert repeating["gnugo_refused_ours"] and not repeating["checked_no_repetition"]
    assert "E5 at move 18" in repeating["problem"] and not repeating["beyond_gnugo_history"]
    fresh = bench()._refused_by_gnugo(rules, state, parse_vertex("A2", 5), 18, boards, refusal)
    assert fresh["checked_no_repetition"]
