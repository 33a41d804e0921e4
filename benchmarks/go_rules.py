"""Go's rules: agreement with OpenSpiel and GNU Go, and moves per second against OpenSpiel's.

    python benchmarks/go_rules.py [--games 10000] [--sizes 5,9,19] [--gnugo-games 10000]
                                  [--rounds 7] [--seconds 2] [--skip-agreement] [--skip-speed]

Agreement (muzero/envs/go against engines nobody here wrote):

- OpenSpiel's Go (``pip install open_spiel``): random games (uniform over our legal
  moves, the pass included) played move for move in both. After every move the
  boards must be equal (so the captured stones are), and before it the legal sets:
  OpenSpiel enforces simple ko and ends a game that repeats a position as a draw,
  while our default forbids the repeating move (positional superko), so every move
  OpenSpiel allows and we refuse must recreate an earlier board (checked in a clone
  of OpenSpiel's state), and nothing may be legal for us that OpenSpiel refuses.
  Also run with our ``superko="simple"``: then the legal sets must be equal until
  OpenSpiel ends a game on a repetition. Winners of finished games must agree.
- GNU Go (``apt-get install gnugo``, over GTP with ``--chinese-rules
  --capture-all-dead --positional-superko``): games played to the end, random
  moves that do not fill one's own eye until neither player has one, then GNU
  Go's ``kgs-genmove_cleanup`` for both players until two passes (it captures what
  it judges dead, so nothing is left for a life-and-death judgement). Every GNU Go
  move must be legal for us, except that GNU Go remembers 500 moves, so in longer
  games its superko misses repetitions of older positions (counted apart). A random
  move of ours that GNU Go refuses is checked by comparing boards, not hashes: it must
  recreate no board of the game so far (past 500 moves GNU Go has refused moves that
  repeat nothing; counted apart, not scored); our
  Tromp-Taylor result must equal GNU Go's ``final_score``. Where GNU Go still lists dead stones it did not capture (a ko
  neither side can win, for one) its score is a judgement rather than a count: such
  games are counted apart and not compared. Two GNU Go processes share the games.

Speed: moves per second (a legal-move mask and a step, what self-play and search
need per move) on N = 1, 256 and 4096 boards at 9x9 and 19x19, random legal
moves, finished games restarted; OpenSpiel's C++ Go through its Python API in
the same run (``legal_actions`` and ``apply_action`` per game). Each batch starts
a move cap of moves into random play, so it holds games at every stage. Rounds
(``--rounds``, ``--seconds`` each) alternate OpenSpiel and ours, so a slow spell of
a shared machine slows both; figures are medians over rounds, and each ratio the
median of the rounds' own ratios (one 10 s pair could differ by 15% run to run).

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import platform
import sys
import time
from typing import Any

import numpy as np

from muzero.envs.go import GoRules, parse_vertex, vertex_name
from muzero.envs.go.kernels import ENDED_AT_MOVE_CAP
from muzero.transport.gtp_client import GtpClient, GtpError, find_gnugo, gnugo_command

KOMI = 7.5


BATCH_SIZES = (1, 256, 4096)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def random_moves(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n,) a uniformly random legal action of each row of ``masks`` (rows must have one)."""
    scores = rng.random(masks.shape) * masks
    return scores.argmax(axis=1)


# --- OpenSpiel -----------------------------------------------------------------------------


def openspiel_game(size: int, move_cap: int) -> Any:
    import pyspiel

    return pyspiel.load_game("go", {"board_size": size, "komi": KOMI, "max_game_length": move_cap})


def openspiel_cells(state: Any, points: int) -> np.ndarray:
    """(points,) int8 0/1/2 board of an OpenSpiel Go state (its tensor: black, white, empty, to-play)."""
    tensor = np.asarray(state.observation_tensor(0), dtype=np.float32)
    return (tensor[:points] + 2 * tensor[points : 2 * points]).astype(np.int8)


def compare_with_openspiel(size: int, games: int, seed: int, superko: str = "positional", batch: int = 1000) -> dict:
    """Play ``games`` random games in both engines; count every disagreement (see the module doc)."""
    rules = GoRules(size, KOMI, superko=superko)
    game = openspiel_game(size, rules.move_cap)
    points = rules.points
    rng = np.random.default_rng(seed)
    report = {
        "games": 0,
        "moves": 0,
        "legal_mismatches": 0,
        "board_mismatches": 0,
        "terminal_mismatches": 0,
        "winner_mismatches": 0,
        "superko_refusals": 0,
        "openspiel_repetition_draws": 0,
        "first_mismatch": None,
    }

    def mismatch(kind: str, detail: str) -> None:
        report[kind] += 1
        if report["first_mismatch"] is None:
            report["first_mismatch"] = f"{kind}: {detail}"

    for start in range(0, games, batch):
        n = min(batch, games - start)
        states = rules.initial_states(n)
        theirs = [game.new_initial_state() for _ in range(n)]
        seen = [{bytes(points)} for _ in range(n)]  # boards so far, as OpenSpiel shows them
        live = np.ones(n, dtype=bool)
        while live.any():
            rows = np.flatnonzero(live)
            masks = rules.legal_mask(states[rows])
            for row, mask in zip(rows, masks):
                their_mask = np.zeros(points + 1, dtype=bool)
                their_mask[theirs[row].legal_actions()] = True
                for action in np.flatnonzero(mask & ~their_mask):
                    mismatch(
                        "legal_mismatches",
                        f"{size}x{size} game {start + row}: we allow {vertex_name(int(action), size)}",
                    )
                for action in np.flatnonzero(their_mask & ~mask):
                    child = theirs[row].clone()
                    child.apply_action(int(action))
                    if superko == "positional" and openspiel_cells(child, points).tobytes() in seen[row]:
                        report["superko_refusals"] += 1
                    else:
                        mismatch(
                            "legal_mismatches",
                            f"{size}x{size} game {start + row}: OpenSpiel allows {vertex_name(int(action), size)}",
                        )
            actions = random_moves(masks, rng)
            states[rows], _, terminal = rules.step(states[rows], actions)
            cells = rules.boards(states[rows]).reshape(len(rows), points)
            report["moves"] += len(rows)
            for i, row in enumerate(rows):
                state = theirs[row]
                state.apply_action(int(actions[i]))
                board = openspiel_cells(state, points)
                if not np.array_equal(board, cells[i]):
                    mismatch("board_mismatches", f"{size}x{size} game {start + row} move {len(state.history())}")
                key = board.tobytes()
                repeated = key in seen[row] and actions[i] != points
                seen[row].add(key)
                if state.is_terminal() and not terminal[i] and repeated:
                    report["openspiel_repetition_draws"] += 1  # simple ko on our side: OpenSpiel stops here
                    live[row] = False
                    continue
                if state.is_terminal() != bool(terminal[i]):
                    mismatch("terminal_mismatches", f"{size}x{size} game {start + row} move {len(state.history())}")
                    live[row] = False
                    continue
                if terminal[i]:
                    ours = int(rules.winner(states[row : row + 1])[0])
                    returns = state.returns()
                    their_winner = 0 if returns[0] > 0 else 1 if returns[0] < 0 else -1
                    if ours != their_winner:
                        mismatch(
                            "winner_mismatches",
                            f"{size}x{size} game {start + row}: ours {ours}, OpenSpiel {their_winner}",
                        )
                    live[row] = False
        report["games"] += n
    return report


# --- GNU Go --------------------------------------------------------------------------------


def _own_eyes(cells: np.ndarray, mover: np.ndarray, size: int) -> np.ndarray:
    """(n, points) bool: empty points all of whose neighbours are the mover's stones."""
    boards = cells.reshape(-1, size, size)
    own = boards == (mover[:, None, None] + 1)
    padded = np.pad(own, ((0, 0), (1, 1), (1, 1)), constant_values=True)
    eye = padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1] & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:]
    return (eye & (boards == 0)).reshape(len(cells), -1)


def random_games_to_the_end(rules: GoRules, games: int, seed: int) -> tuple[np.ndarray, list[list[int]]]:
    """Random games until the player to move has no legal move that does not fill their own
    eye (a player without one passes while the other still has moves).

    Returns the states (still being played: the clean-up phase goes on from there) and
    each game's moves."""
    rng = np.random.default_rng(seed)
    points = rules.points
    states = rules.initial_states(games)
    moves: list[list[int]] = [[] for _ in range(games)]
    live = np.ones(games, dtype=bool)
    passes = rules.fields["PASSES"]
    while live.any():
        rows = np.flatnonzero(live)
        masks = rules.legal_mask(states[rows])
        cells = rules.boards(states[rows]).reshape(len(rows), points)
        masks[:, :points] &= ~_own_eyes(cells, rules.to_play(states[rows]).astype(np.int64), rules.size)
        has_move = masks[:, :points].any(axis=1)
        masks[has_move, points] = False
        actions = random_moves(masks, rng)
        ending = ~has_move & (states[rows, passes] == 1)  # neither player has a move: stop here
        live[rows[ending]] = False
        go_on = ~ending
        rows, actions = rows[go_on], actions[go_on]
        if not len(rows):
            break
        states[rows], _, terminal = rules.step(states[rows], actions)
        for row, action in zip(rows, actions):
            moves[row].append(int(action))
        live[rows[terminal]] = False  # the move cap
    for row in np.flatnonzero(states[:, passes] == 1):  # leave no pass pending: the clean-up
        states[row : row + 1] = rules.initial_states(1)  # phase must start with both players
        for move in moves[row][:-1]:  # able to move, so replay all but that last pass
            states[row : row + 1], _, _ = rules.step(states[row : row + 1], np.array([move]))
        moves[row].pop()
    return states, moves


GNUGO_HISTORY = 500
"""Moves GNU Go 3.8 remembers (MAX_MOVE_HISTORY in its engine/board.h), so the positions its
positional superko can compare with."""
GNUGO_MOVE_CAP = 4
"""The games scored against GNU Go may last 4 * size * size moves (twice the default), so
that few stop at the cap before they are played to the end."""


def _refused_by_gnugo(
    rules: GoRules, state: np.ndarray, move: int, number: int, boards: list[bytes], error: GtpError
) -> dict:
    """GNU Go refused one of our random moves. Check it ourselves, by the boards rather than
    by hashes: the move must be legal in our rules, and must not recreate any board of the game
    so far (GNU Go's positional superko is the only rule it could break at this point). A
    refusal that passes both checks is GNU Go's mistake; one that fails is ours."""
    after, _, _ = rules.step(state, np.array([move]))
    repeats = rules.boards(after)[0].tobytes() in boards
    return {
        "problem": f"GNU Go refused our move {vertex_name(move, rules.size)} at move {number}: {error}",
        "gnugo_refused_ours": True,
        "checked_no_repetition": not repeats,
        "beyond_gnugo_history": number > GNUGO_HISTORY,
    }


def score_with_gnugo(size: int, game_moves: list[list[int]], start: int) -> list[dict]:
    """Replay each game in GNU Go, let it clean up, and compare its final_score with ours."""
    rules = GoRules(size, KOMI, move_cap=GNUGO_MOVE_CAP * size * size)
    results = []
    command = gnugo_command(size, level=0, komi=KOMI, positional_superko=True)
    engine = GtpClient(command)
    try:
        for index, moves in enumerate(game_moves):
            engine.command("clear_board")
            engine.command(f"komi {KOMI:g}")
            state = rules.initial_states(1)
            result = {"game": start + index, "cleanup_moves": 0, "problem": None}
            colors = ("black", "white")
            boards = [rules.boards(state)[0].tobytes()]  # every position so far, to check a refusal
            for number, move in enumerate(moves, 1):
                try:
                    engine.command(f"play {colors[int(state[0, rules.fields['TO_PLAY']])]} {vertex_name(move, size)}")
                except GtpError as error:
                    result.update(_refused_by_gnugo(rules, state, move, number, boards, error))
                    break
                state, _, _ = rules.step(state, np.array([move]))
                boards.append(rules.boards(state)[0].tobytes())
            while (
                result["problem"] is None and not rules.is_terminal(state)[0]
            ):  # GNU Go plays both sides until two passes
                color = colors[int(state[0, rules.fields["TO_PLAY"]])]
                vertex = engine.command(f"kgs-genmove_cleanup {color}")
                if vertex.lower() == "resign":
                    vertex = "pass"
                action = parse_vertex(vertex, size)
                if not rules.legal_mask(state)[0, action]:
                    reason = "refused by the legal mask"
                    try:
                        rules.step(state, np.array([action]))
                    except ValueError as error:
                        reason = str(error)
                    played = int(state[0, rules.fields["MOVES"]])
                    result["problem"] = f"GNU Go played {vertex} at move {played + 1}, illegal for us: {reason}"
                    # GNU Go remembers MAX_MOVE_HISTORY = 500 moves (engine/board.h): its positional
                    # superko cannot see a repetition of an older position.
                    result["beyond_gnugo_history"] = "positional superko" in reason and played >= GNUGO_HISTORY
                    break
                state, _, _ = rules.step(state, np.array([action]))
                result["cleanup_moves"] += 1
            result["capped"] = bool(rules.status(state)[0] == ENDED_AT_MOVE_CAP)
            result["ours"] = rules.score_text(state[0])
            result["gnugo"] = engine.command("final_score")
            # Stones GNU Go calls dead but could not capture (a ko nobody can win, say): its
            # score is then a judgement, not an area count, and the game is not compared.
            result["judged_dead"] = len(engine.command("final_status_list dead").split())
            results.append(result)
    finally:
        engine.close()
    return results


def compare_with_gnugo(size: int, games: int, seed: int, workers: int = 2) -> dict:
    rules = GoRules(size, KOMI, move_cap=GNUGO_MOVE_CAP * size * size)
    _, game_moves = random_games_to_the_end(rules, games, seed)
    chunks = [list(range(i, games, workers)) for i in range(workers)]
    results: list[dict] = []
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:  # the work is in the GNU Go processes
        futures = [pool.submit(score_with_gnugo, size, [game_moves[i] for i in chunk], 0) for chunk in chunks]
        for chunk, future in zip(chunks, futures):
            for result in future.result():
                result["game"] = chunk[result["game"]]
                results.append(result)
    compared = [r for r in results if r["problem"] is None and not r["capped"] and not r["judged_dead"]]
    disagreements = [r for r in compared if r["ours"] != r["gnugo"]]
    problems = [r for r in results if r["problem"] is not None]
    return {
        "games": games,
        "compared": len(compared),
        "capped": sum(1 for r in results if r["capped"]),
        "dead_stones_left": sum(1 for r in results if r["judged_dead"] and not r["capped"]),
        "score_disagreements": len(disagreements),
        "illegal_gnugo_moves": sum(1 for r in problems if not r.get("gnugo_refused_ours")),
        "illegal_repeating_beyond_gnugo_history": sum(
            1 for r in problems if r.get("beyond_gnugo_history") and not r.get("gnugo_refused_ours")
        ),
        "gnugo_refused_our_moves": sum(1 for r in problems if r.get("gnugo_refused_ours")),
        "gnugo_refused_our_moves_repeating_nothing": sum(
            1 for r in problems if r.get("gnugo_refused_ours") and r["checked_no_repetition"]
        ),
        "cleanup_moves": int(sum(r["cleanup_moves"] for r in results)),
        "random_moves": int(sum(len(m) for m in game_moves)),
        "examples": [*(disagreements[:3]), *(problems[:3])],
    }


# --- speed ---------------------------------------------------------------------------------


def our_moves_per_s(
    rules: GoRules, states: np.ndarray, seconds: float, rng: np.random.Generator
) -> tuple[float, np.ndarray]:
    """(moves per second of legal_mask + step over the batch ``states`` in random play, the
    states reached); finished games restart, the choice of moves is not timed."""
    n = states.shape[0]
    timed = 0.0
    moves = 0
    wall = time.perf_counter()
    while time.perf_counter() - wall < seconds:
        began = time.perf_counter()
        masks = rules.legal_mask(states)
        chosen = time.perf_counter()
        actions = random_moves(masks, rng)
        stepped = time.perf_counter()
        states, _, terminal = rules.step(states, actions)
        timed += (chosen - began) + (time.perf_counter() - stepped)
        moves += n
        if terminal.any():
            states[terminal] = rules.initial_states(int(terminal.sum()))
    return moves / timed, states


def games_under_way(rules: GoRules, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` games of random play after a move cap of batch moves (finished ones restarted),
    so the batch holds games at every stage as it will while timed (and the kernels are compiled)."""
    states = rules.initial_states(n)
    for _ in range(rules.move_cap):
        states, _, terminal = rules.step(states, random_moves(rules.legal_mask(states), rng))
        if terminal.any():
            states[terminal] = rules.initial_states(int(terminal.sum()))
    return states


def openspiel_moves_per_s(size: int, seconds: float, seed: int = 0) -> float:
    """Moves per second of OpenSpiel's legal_actions + apply_action, random play, one game at a time."""
    game = openspiel_game(size, 2 * size * size)
    rng = np.random.default_rng(seed)
    state = game.new_initial_state()
    timed = 0.0
    moves = 0
    wall = time.perf_counter()
    while time.perf_counter() - wall < seconds:
        began = time.perf_counter()
        legal = state.legal_actions()
        chosen = time.perf_counter()
        action = legal[int(rng.integers(len(legal)))]
        applied = time.perf_counter()
        state.apply_action(action)
        timed += (chosen - began) + (time.perf_counter() - applied)
        moves += 1
        if state.is_terminal():
            state = game.new_initial_state()
    return moves / timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", type=int, default=10000, help="OpenSpiel comparison games per size and rule")
    parser.add_argument("--simple-ko-games", type=int, default=1000, help="games with our superko='simple'")
    parser.add_argument("--gnugo-games", type=int, default=10000, help="GNU Go scoring games per size")
    parser.add_argument("--sizes", default="5,9,19", help="board sizes of the agreement runs")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per speed measurement and round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of speed measurements (OpenSpiel, then ours)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-agreement", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    sizes = [int(text) for text in args.sizes.split(",") if text]
    summary: dict[str, Any] = {}
    began = time.perf_counter()

    if not args.skip_speed:
        # Rounds alternate OpenSpiel and ours, so a slow spell of this shared machine hits both;
        # the figures are medians over rounds, the ratio the median of each round's own ratio.
        ours: dict[str, dict[str, float]] = {}
        theirs: dict[str, float] = {}
        ratios: dict[str, dict[str, float]] = {}
        for size in (9, 19):
            rules = GoRules(size, KOMI)
            rng = np.random.default_rng(args.seed + size)
            batches = {n: games_under_way(rules, n, rng) for n in BATCH_SIZES}
            rounds: dict[str, list[float]] = {"openspiel": [], **{str(n): [] for n in BATCH_SIZES}}
            for round_ in range(args.rounds):
                rounds["openspiel"].append(openspiel_moves_per_s(size, args.seconds, seed=round_))
                for n in BATCH_SIZES:
                    rate, batches[n] = our_moves_per_s(rules, batches[n], args.seconds, rng)
                    rounds[str(n)].append(rate)
                log(
                    f"{size}x{size} round {round_ + 1}/{args.rounds}: openspiel {rounds['openspiel'][-1]:,.0f}, "
                    + ", ".join(f"N={n} {rounds[str(n)][-1]:,.0f}" for n in BATCH_SIZES)
                    + " moves/s"
                )
            theirs[str(size)] = round(float(np.median(rounds["openspiel"])), 1)
            ours[str(size)] = {str(n): round(float(np.median(rounds[str(n)])), 1) for n in BATCH_SIZES}
            ratios[str(size)] = {
                str(n): round(float(np.median(np.array(rounds[str(n)]) / np.array(rounds["openspiel"]))), 2)
                for n in BATCH_SIZES
            }
            for n in BATCH_SIZES:
                log(
                    f"ours {size}x{size} N={n}: {ours[str(size)][str(n)]:,.0f} moves/s "
                    f"({ratios[str(size)][str(n)]:.2f}x OpenSpiel's {theirs[str(size)]:,.0f}, median of rounds)"
                )
        summary["moves_per_s"] = ours
        summary["openspiel_moves_per_s"] = theirs
        summary["ratio_to_openspiel"] = ratios
        summary["ratio_9_4096"] = ratios["9"]["4096"]

    if not args.skip_agreement:
        agreement: dict[str, Any] = {}
        for size in sizes:
            entry: dict[str, Any] = {}
            for superko, games in (("positional", args.games), ("simple", args.simple_ko_games)):
                if games <= 0:
                    continue
                t = time.perf_counter()
                report = compare_with_openspiel(size, games, args.seed + size, superko)
                log(
                    f"openspiel {size}x{size} superko={superko}: {json.dumps(report)} ({time.perf_counter() - t:.0f} s)"
                )
                entry[f"openspiel_{superko}"] = report
            if args.gnugo_games > 0:
                if find_gnugo() is None:
                    log("GNU Go is not installed (apt-get install gnugo): the scoring comparison is skipped")
                else:
                    t = time.perf_counter()
                    report = compare_with_gnugo(size, args.gnugo_games, args.seed + 100 + size)
                    log(f"gnugo {size}x{size}: {json.dumps(report)} ({time.perf_counter() - t:.0f} s)")
                    entry["gnugo"] = report
            agreement[str(size)] = entry
        summary["agreement"] = agreement

    summary["machine"] = (
        f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores, {platform.python_version()}"
    )
    summary["date"] = time.strftime("%Y-%m-%d")
    summary["bench_wall_s"] = round(time.perf_counter() - began, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
