"""A checkpoint against GNU Go over GTP: wins, losses, a 95% Wilson interval, every game as SGF.

    python benchmarks/go.py CHECKPOINT [--games 100] [--level 1] [--simulations 400]
                            [--komi 7.5] [--sgf-dir DIR] [--train-wall-s S] [--parallel P]
                            [--opening-moves K] [--seed S]

GNU Go runs as ``gnugo --mode gtp --chinese-rules --capture-all-dead
--positional-superko --level L`` (Debian's ``apt-get install gnugo``); our side is
the engine ``muzero gtp`` runs (muzero/transport/gtp_engine.py), driven in this
process through the same command handler. Colours alternate game by game, komi
7.5. A game ends by two passes, a resignation or the move cap (2 * N * N). Each
finished game is scored by our Tromp-Taylor count, which decides it, and by
GNU Go's ``final_score``; the two disagree only where dead stones were left on
the board (GNU Go judges them, Tromp-Taylor counts them), and the disagreements
are reported. Every game is written as SGF (sgfmill). ``--parallel P`` plays P games
at a time, each in its own process with its own engine and GNU Go. Both players are
close to deterministic, so from the empty board 100 games repeat a handful of lines
(``distinct_games`` in the summary says how many); ``--opening-moves K`` starts each
pair of games, one per colour, from its own K random moves.

Progress goes to stderr; the last line of stdout is one JSON object:
``{"board": 9, "opponent": "gnugo-1", "games": ..., "wins": ..., "losses": ...,
"win_rate": ..., "wilson95": [lo, hi], "train_wall_s": ..., "scorer_disagreements": ...}``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from muzero.envs.go import GoRules, parse_vertex, vertex_name
from muzero.envs.go.openings import random_opening
from muzero.envs.go.sgf import GoRecord, record_to_sgf
from muzero.transport.gtp_client import GtpClient, gnugo_command
from muzero.transport.gtp_engine import GtpEngine

COLORS = ("black", "white")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wilson_interval(wins: int, games: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a win rate (95% for z = 1.96)."""
    if games == 0:
        return 0.0, 1.0
    p = wins / games
    denominator = 1 + z * z / games
    center = (p + z * z / (2 * games)) / denominator
    half = z * math.sqrt(p * (1 - p) / games + z * z / (4 * games * games)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


class EngineSide:
    """Our engine, driven through its GTP command handler."""

    def __init__(self, engine: GtpEngine):
        self.engine = engine

    def command(self, text: str) -> str:
        answer, _ = self.engine.handle(text)
        if answer.startswith("?"):
            raise RuntimeError(f"muzero refused {text!r}: {answer[1:].strip()}")
        return answer[1:].strip()


@dataclass
class GameRecord:
    number: int
    our_color: str
    moves: list[tuple[str, str]]  # (color, vertex)
    result: str  # "B+3.5", "W+R", ...
    our_score: str
    gnugo_score: str
    we_won: bool
    ended_by: str
    opening: int = 0
    """How many of ``moves`` were the random opening."""


def opening(size: int, komi: float, moves: int, seed: int, pair: int) -> tuple[int, ...]:
    """``moves`` random legal moves (no pass) from the empty board, the same for both games
    of a pair (colours swapped): the players meet in varied positions, on equal terms."""
    return random_opening(GoRules(size, komi), moves, np.random.default_rng([seed, pair]))


def play_game(
    ours: Any,
    gnugo: GtpClient,
    size: int,
    komi: float,
    our_color: str,
    number: int,
    opening_moves: tuple[int, ...] = (),
) -> GameRecord:
    """One game; ``ours`` and ``gnugo`` answer GTP commands (text in, answer out). The game
    starts with ``opening_moves``, played on both boards."""
    rules = GoRules(size, komi)
    state = rules.initial_states(1)
    for side in (ours, gnugo):
        side.command(f"boardsize {size}")
        side.command("clear_board")
        side.command(f"komi {komi:g}")
    moves: list[tuple[str, str]] = []
    for action in opening_moves:
        color, vertex = COLORS[int(rules.to_play(state)[0])], vertex_name(action, size)
        for side in (ours, gnugo):
            side.command(f"play {color} {vertex}")
        state, _, _ = rules.step(state, [action])
        moves.append((color, vertex))
    ended_by = "passes"
    resigned: str | None = None
    while not rules.is_terminal(state)[0]:
        color = COLORS[int(rules.to_play(state)[0])]
        mover, other = (ours, gnugo) if color == our_color else (gnugo, ours)
        vertex = mover.command(f"genmove {color}")
        if vertex.lower() == "resign":
            resigned, ended_by = color, "resignation"
            break
        action = parse_vertex(vertex, size)
        if not rules.legal_mask(state)[0, action]:
            raise RuntimeError(f"game {number}: {color} played {vertex}, illegal under Tromp-Taylor")
        state, _, _ = rules.step(state, [action])
        other.command(f"play {color} {vertex}")
        moves.append((color, vertex))
    if ended_by != "resignation" and rules.status(state)[0] == 2:
        ended_by = "move cap"
    our_score = rules.score_text(state[0])
    gnugo_score = gnugo.command("final_score")
    if resigned is not None:
        result = "W+R" if resigned == "black" else "B+R"
    else:
        result = our_score
    we_won = result.startswith(our_color[0].upper())
    return GameRecord(number, our_color, moves, result, our_score, gnugo_score, we_won, ended_by, len(opening_moves))


def write_sgf(record: GameRecord, size: int, komi: float, path: Path, gnugo_name: str) -> None:
    names = {record.our_color: "muzero", ("white" if record.our_color == "black" else "black"): gnugo_name}
    game = GoRecord(
        size=size,
        komi=komi,
        moves=tuple(parse_vertex(vertex, size) for _, vertex in record.moves),
        random_moves=frozenset(range(record.opening)),
        result=record.result,
        black=names["black"],
        white=names["white"],
        comment=f"game {record.number}; ended by {record.ended_by}; GNU Go's count {record.gnugo_score}",
    )
    path.write_bytes(record_to_sgf(game))


def log_game(record: GameRecord, records: list[GameRecord], games: int, seconds: float) -> None:
    wins = sum(r.we_won for r in records)
    log(
        f"game {record.number + 1}/{games}: muzero {record.our_color} {'won' if record.we_won else 'lost'} "
        f"{record.result} ({record.ended_by}, {len(record.moves)} moves, GNU Go counts {record.gnugo_score}, "
        f"{seconds:.1f} s); {wins}/{len(records)} won"
    )


def summarize(records: list[GameRecord], size: int, level: int) -> dict[str, Any]:
    games = len(records)
    wins = sum(r.we_won for r in records)
    scored = [r for r in records if r.ended_by != "resignation"]
    return {
        "board": size,
        "opponent": f"gnugo-{level}",
        "games": games,
        "wins": wins,
        "losses": games - wins,
        "win_rate": round(wins / games, 4) if games else 0.0,
        "wilson95": [round(x, 4) for x in wilson_interval(wins, games)],
        "scorer_disagreements": sum(1 for r in scored if r.our_score != r.gnugo_score),
        "wins_as_black": sum(r.we_won for r in records if r.our_color == "black"),
        "wins_as_white": sum(r.we_won for r in records if r.our_color == "white"),
        "ended_by": {kind: sum(r.ended_by == kind for r in records) for kind in ("passes", "resignation", "move cap")},
        "distinct_games": len({tuple(r.moves) for r in records}),
    }


def play_match(
    engine: GtpEngine,
    games: int,
    size: int,
    komi: float,
    level: int,
    sgf_dir: Path | None = None,
    opening_moves: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """``games`` games against GNU Go at ``level``, colours alternating (ours Black first),
    each pair of games from its own random opening of ``opening_moves`` moves."""
    ours = EngineSide(engine)
    records: list[GameRecord] = []
    if sgf_dir is not None:
        sgf_dir.mkdir(parents=True, exist_ok=True)
    with GtpClient(gnugo_command(size, level=level, komi=komi, positional_superko=True)) as gnugo:
        for number in range(games):
            began = time.perf_counter()
            start = opening(size, komi, opening_moves, seed, number // 2)
            record = play_game(ours, gnugo, size, komi, COLORS[number % 2], number, start)
            records.append(record)
            if sgf_dir is not None:
                write_sgf(record, size, komi, sgf_dir / f"game_{number:04d}.sgf", f"GNU Go level {level}")
            log_game(record, records, games, time.perf_counter() - began)
    return summarize(records, size, level)


# --- games in parallel: one engine and one GNU Go per worker process ---------------------------

_worker: dict[str, Any] = {}


def _start_worker(checkpoint: str, simulations: int, komi: float, level: int, opening_moves: int, seed: int) -> None:
    engine, size = build_engine(checkpoint, simulations, komi)
    gnugo = GtpClient(gnugo_command(size, level=level, komi=komi, positional_superko=True))
    _worker.update(engine=EngineSide(engine), gnugo=gnugo, size=size, komi=komi, opening=opening_moves, seed=seed)


def _play_one(number: int) -> GameRecord:
    w = _worker
    start = opening(w["size"], w["komi"], w["opening"], w["seed"], number // 2)
    return play_game(w["engine"], w["gnugo"], w["size"], w["komi"], COLORS[number % 2], number, start)


def play_match_parallel(
    checkpoint: str,
    simulations: int,
    games: int,
    size: int,
    komi: float,
    level: int,
    sgf_dir: Path,
    workers: int,
    opening_moves: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """As :func:`play_match`, ``workers`` games at a time, each worker process with its own
    engine (one torch thread) and its own GNU Go; the games come back as plain records."""
    from concurrent.futures import ProcessPoolExecutor

    sgf_dir.mkdir(parents=True, exist_ok=True)
    records: list[GameRecord] = []
    began = time.perf_counter()
    with ProcessPoolExecutor(
        workers, initializer=_start_worker, initargs=(checkpoint, simulations, komi, level, opening_moves, seed)
    ) as pool:
        for record in pool.map(_play_one, range(games)):
            records.append(record)
            write_sgf(record, size, komi, sgf_dir / f"game_{record.number:04d}.sgf", f"GNU Go level {level}")
            log_game(record, records, games, (time.perf_counter() - began) / len(records))
    return summarize(records, size, level)


def build_engine(checkpoint: str, simulations: int, komi: float) -> tuple[GtpEngine, int]:
    import torch

    from muzero.acting.analysis import NetworkGoSearcher
    from muzero.cli import _load_network

    torch.set_num_threads(1)  # one position at a time, sharing the cores with GNU Go
    config, network, _, env = _load_network(checkpoint)
    if not isinstance(env.game, GoRules):
        raise SystemExit(f"{checkpoint} is not a Go checkpoint ({config.env.id})")
    size = env.game.size
    searcher = NetworkGoSearcher(network, size, model=config.search.model, tree_simulations=simulations)
    return GtpEngine(searcher, size, komi, simulations=simulations), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a Go checkpoint (file, run folder or checkpoints/latest)")
    parser.add_argument("--games", type=int, default=100)
    parser.add_argument("--level", type=int, default=1, help="GNU Go's level, 0-10 (default 1)")
    parser.add_argument("--simulations", type=int, default=400, help="our simulations per move")
    parser.add_argument("--komi", type=float, default=7.5)
    parser.add_argument("--sgf-dir", type=Path, help="where to write the games (default: next to the checkpoint)")
    parser.add_argument("--train-wall-s", type=float, help="the checkpoint's training time, for the record")
    parser.add_argument("--parallel", type=int, default=1, help="games played at once, one process each (default 1)")
    parser.add_argument(
        "--opening-moves",
        type=int,
        default=0,
        help="start each pair of games (colours swapped) from this many random moves, so that two "
        "deterministic players meet in varied games (default 0: the empty board)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random openings")
    args = parser.parse_args()

    from muzero.cli import _load_network

    config, _, checkpoint, env = _load_network(args.checkpoint)
    if not isinstance(env.game, GoRules):
        raise SystemExit(f"{args.checkpoint} is not a Go checkpoint ({config.env.id})")
    size = env.game.size
    sgf_dir = args.sgf_dir or Path(args.checkpoint).resolve().parent / f"games-gnugo-{args.level}"
    began = time.perf_counter()
    if args.parallel > 1:
        summary = play_match_parallel(
            args.checkpoint,
            args.simulations,
            args.games,
            size,
            args.komi,
            args.level,
            sgf_dir,
            args.parallel,
            args.opening_moves,
            args.seed,
        )
    else:
        engine, _ = build_engine(args.checkpoint, args.simulations, args.komi)
        summary = play_match(engine, args.games, size, args.komi, args.level, sgf_dir, args.opening_moves, args.seed)
    summary["opening_moves"] = args.opening_moves
    summary["train_wall_s"] = args.train_wall_s
    summary["simulations"] = args.simulations
    summary["checkpoint_step"] = checkpoint.step
    summary["sgf_dir"] = str(sgf_dir)
    summary["match_wall_s"] = round(time.perf_counter() - began, 1)
    summary["machine"] = f"{platform.machine()}, {platform.python_version()}"
    summary["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
