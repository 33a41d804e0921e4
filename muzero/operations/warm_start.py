"""Warm start for Go: imitate an existing engine's games before self-play (``[warm_start]``).

1. **Generate** ``warm_start.games`` games of GNU Go playing itself, ``processes`` at a
   time, into ``RUN/warm_start/game-NNNNN.sgf``. Each opens with a few random moves
   (marked in the SGF) so games differ; GNU Go then plays both sides with
   ``--capture-all-dead``, so when both pass the board holds only living stones and the
   Tromp-Taylor count is the game's result. Games already in the folder are kept, so a
   restarted run generates only what is missing.
2. **Read** those games and any ``*.sgf`` under ``warm_start.sgf_dir``, replay each
   through our rules (a move they refuse drops the game, with the reason logged), and
   cut them into segments: the policy target of an engine move is that move, a random
   move has none (a zero row, as for a fast search), and the value targets are the
   game's result; where our count of the final position agrees with that result, its
   ownership is the ownership target.
3. **Pre-train** for ``warm_start.train_steps`` learner steps on them; self-play follows,
   and the games stay in replay until evicted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from muzero.config import ExperimentConfig
from muzero.envs.go import GoRules, parse_vertex, vertex_name
from muzero.envs.go.openings import random_opening
from muzero.envs.go.sgf import GoRecord, record_from_sgf, record_to_sgf
from muzero.envs.vector import make_board_game
from muzero.learning.batch import batch_from_sample
from muzero.learning.learner import Learner
from muzero.learning.segment import Segment, SegmentBuilder
from muzero.operations.progress import Progress
from muzero.storage.replay.memory import MemoryReplay
from muzero.transport.gtp_client import GtpClient, gnugo_command


@dataclass(frozen=True)
class WarmStartReport:
    games: int
    """Games imitated."""
    positions: int
    """Positions stored (moves of those games)."""
    rejected: int
    """Games dropped (unreadable, illegal under our rules, no result)."""
    generate_s: float
    train_s: float
    final_loss: float | None


def go_rules_of(config: ExperimentConfig) -> GoRules:
    game = make_board_game(config.env.id)
    if not isinstance(game, GoRules):
        raise ValueError(f"warm_start needs a Go board (env.id go5 ... go19), got env.id {config.env.id!r}")
    return game


# --- 1. generating games ------------------------------------------------------------------


def play_gnugo_game(engine: GtpClient, rules: GoRules, random_moves: int, rng: np.random.Generator) -> GoRecord:
    """One game of GNU Go against itself after ``random_moves`` random opening moves."""
    size = rules.size
    engine.command("clear_board")
    opening = random_opening(rules, random_moves, rng)
    state = rules.initial_states(1)
    moves: list[int] = []
    resigned: int | None = None
    while not rules.is_terminal(state)[0]:
        color = "black" if int(rules.to_play(state)[0]) == 0 else "white"
        if len(moves) < len(opening):
            action = opening[len(moves)]
            engine.command(f"play {color} {vertex_name(action, size)}")
        else:
            vertex = engine.command(f"genmove {color}")
            if vertex.lower() == "resign":
                resigned = int(rules.to_play(state)[0])
                break
            action = parse_vertex(vertex, size)
            if not rules.legal_mask(state)[0, action]:
                raise ValueError(f"GNU Go played {vertex} at move {len(moves) + 1}, illegal under Tromp-Taylor")
        state, _, _ = rules.step(state, np.array([action]))
        moves.append(action)
    if resigned is not None:
        result = "W+R" if resigned == 0 else "B+R"
    else:
        result = rules.score_text(state[0]) if rules.is_terminal(state)[0] else ""
    return GoRecord(
        size=size,
        komi=rules.komi,
        moves=tuple(moves),
        result=result,
        random_moves=frozenset(range(min(len(opening), len(moves)))),
        black="GNU Go",
        white="GNU Go",
    )


def generate_games(
    config: ExperimentConfig, folder: Path, progress: Progress, seed: int, stop: threading.Event | None = None
) -> list[Path]:
    """Make ``folder`` hold ``warm_start.games`` generated games; the paths of all of them."""
    warm = config.warm_start
    rules = go_rules_of(config)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"game-{i:05d}.sgf" for i in range(warm.games)]
    todo = [i for i, path in enumerate(paths) if not path.exists()]
    if not todo:
        return paths
    progress.log(
        f"warm start: {len(todo):,} games of GNU Go level {warm.level} playing itself "
        f"({len(paths) - len(todo):,} already in {folder})"
    )
    lock = threading.Lock()
    done = [0]
    errors: list[BaseException] = []
    stop = stop or threading.Event()
    start = time.monotonic()

    def work(worker: int) -> None:
        command = gnugo_command(rules.size, warm.level, rules.komi, positional_superko=rules.superko == "positional")
        try:
            with GtpClient(command) as engine:
                for index in todo[worker :: warm.processes]:
                    if stop.is_set():
                        return
                    rng = np.random.default_rng([seed, index])
                    record = play_gnugo_game(engine, rules, int(rng.integers(0, warm.random_opening_moves + 1)), rng)
                    temporary = paths[index].with_suffix(".sgf.tmp")
                    temporary.write_bytes(record_to_sgf(record))
                    temporary.replace(paths[index])  # a game is in the folder whole or not at all
                    with lock:
                        done[0] += 1
                        if done[0] % 100 == 0 or done[0] == len(todo):
                            rate = done[0] / max(time.monotonic() - start, 1e-9)
                            progress.log(f"warm start: {done[0]:,} of {len(todo):,} games ({rate:.1f} games/s)")
        except BaseException as error:  # reported by the caller's thread
            errors.append(error)
            stop.set()

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(min(warm.processes, len(todo)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return paths


# --- 2. games into segments ---------------------------------------------------------------


def record_segments(record: GoRecord, rules: GoRules, config: ExperimentConfig) -> list[Segment]:
    """The game as replay segments (ValueError if our rules cannot replay it or it has no
    result): engine moves are policy targets, random ones are not; the result the record
    names is the value target, reached at its last move."""
    if record.size != rules.size:
        raise ValueError(f"a {record.size}x{record.size} game cannot train {config.env.id}")
    winner = record.winner
    if winner is None:
        raise ValueError(f"no result to learn from (RE[{record.result}])")
    if not record.moves:
        raise ValueError("no moves")
    num_actions = rules.num_actions
    builder = SegmentBuilder.from_config(config, 1, num_actions)
    state = rules.initial_states(1)
    segments: list[Segment] = []
    last = len(record.moves) - 1
    for index, action in enumerate(record.moves):
        if rules.is_terminal(state)[0]:
            raise ValueError(f"move {index + 1} comes after the end of the game under our rules")
        legal = rules.legal_mask(state)
        if not legal[0, action]:
            raise ValueError(f"move {index + 1} ({vertex_name(action, rules.size)}) is illegal under our rules")
        mover = int(rules.to_play(state)[0])
        observation = rules.observe(state)
        next_state, reward, terminated = rules.step(state, np.array([action]))
        if index == last:
            # The record's result decides, also where our count would not (a resignation, or
            # an external game scored with dead stones left on the board).
            terminated = np.array([True])
            reward = np.array([0.0 if winner == -1 else (1.0 if winner == mover else -1.0)])
        ownership = None
        if index == last and rules.is_terminal(next_state)[0] and int(rules.winner(next_state)[0]) == winner:
            ownership = rules.ownership(next_state)  # our count agrees with the record: a target
        policy = np.zeros((1, num_actions), dtype=np.float32)
        if index not in record.random_moves:
            policy[0, action] = 1.0
        segments += builder.add_step(
            obs=observation,
            actions=np.array([action]),
            rewards=reward.astype(np.float32),
            to_play=np.array([mover], dtype=np.int8),
            legal_masks=legal,
            policies=policy,
            root_values=np.zeros(1, dtype=np.float32),
            terminated=terminated,
            truncated=np.zeros(1, dtype=bool),
            final_bootstrap_values=np.zeros(1, dtype=np.float32),
            model_version=0,
            final_ownership=ownership,
        )
        state = next_state
        if terminated[0]:
            break
    return segments


def read_games(paths: list[Path], rules: GoRules, config: ExperimentConfig, progress: Progress) -> tuple[list, int]:
    """Segments of every readable game of ``paths``, and how many games were dropped."""
    segments: list[Segment] = []
    rejected = 0
    for path in paths:
        try:
            segments += record_segments(record_from_sgf(path.read_bytes()), rules, config)
        except (OSError, ValueError) as error:
            rejected += 1
            if rejected <= 10:
                progress.log(f"warm start: {path.name} dropped: {error}")
    return segments, rejected


# --- 3. pre-training ----------------------------------------------------------------------


def warm_start(
    config: ExperimentConfig,
    run_dir: Path,
    learner: Learner,
    replay: MemoryReplay,
    rng: np.random.Generator,
    progress: Progress,
) -> WarmStartReport:
    """Generate and read the games, store them in ``replay``, pre-train ``learner`` on them."""
    warm = config.warm_start
    rules = go_rules_of(config)
    start = time.monotonic()
    paths = generate_games(config, run_dir / "warm_start", progress, config.training.seed) if warm.games else []
    if warm.sgf_dir:
        folder = Path(warm.sgf_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"warm_start.sgf_dir: {folder} is not a folder")
        paths += sorted(folder.rglob("*.sgf"))
    segments, rejected = read_games(paths, rules, config, progress)
    generated = time.monotonic()
    for segment in segments:
        replay.insert(segment)
    positions = sum(s.length for s in segments)
    games = len(paths) - rejected
    progress.log(f"warm start: {games:,} games ({positions:,} positions) in replay; {rejected:,} dropped")
    loss = None
    if warm.train_steps and positions:
        learner.network.train()
        for step in range(warm.train_steps):
            batch = batch_from_sample(
                replay.sample(config.training.batch_size, rng),
                config.training,
                config.env.frame_stack,
                rng,
                bootstrap_observations=learner.wants_bootstrap_observations,
                rules=config.network.rules_heads,
            )
            out = learner.train(batch)
            loss = float(out["total"])
            if (step + 1) % 250 == 0 or step + 1 == warm.train_steps:
                progress.log(f"warm start: pre-training step {step + 1:,} of {warm.train_steps:,}, loss {loss:.3f}")
    return WarmStartReport(
        games=games,
        positions=positions,
        rejected=rejected,
        generate_s=generated - start,
        train_s=time.monotonic() - generated,
        final_loss=loss,
    )
