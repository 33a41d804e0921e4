"""The Go warm start: SGF records, GNU Go's games into segments, pre-training on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from muzero import config as config_module
from muzero.envs.go import GoRules
from muzero.envs.go.sgf import GoRecord, record_from_sgf, record_to_sgf
from muzero.learning.learner import Learner
from muzero.operations.progress import Progress
from muzero.operations.warm_start import generate_games, read_games, record_segments, warm_start
from muzero.storage.replay.memory import MemoryReplay
from muzero.transport.gtp_client import find_gnugo

needs_gnugo = pytest.mark.skipif(find_gnugo() is None, reason="GNU Go is not installed (scripts/install_tools.sh)")

SETTINGS = [
    "env.id=go5",
    "replay.segment_length=50",
    "training.td_steps=50",
    "training.batch_size=32",
    "replay.min_size=10",
    "warm_start.level=0",
    "warm_start.random_opening_moves=3",
    "warm_start.processes=2",
]


def quiet() -> Progress:
    return Progress("test", live=False)


def test_sgf_round_trip_keeps_moves_random_marks_and_result():
    record = GoRecord(9, 7.5, (40, 81, 0, 80, 81, 81), "W+7.5", frozenset({0, 2}), "GNU Go", "muzero", "note")
    back = record_from_sgf(record_to_sgf(record))
    assert back == record
    assert back.winner == 1
    assert GoRecord(9, 7.5, (), "0").winner == -1 and GoRecord(9, 7.5, (), "?").winner is None


def test_sgf_refuses_what_the_rules_cannot_replay():
    with pytest.raises(ValueError, match="set-up stones"):
        record_from_sgf(b"(;FF[4]GM[1]SZ[9]AB[aa][bb];W[cc])")
    with pytest.raises(ValueError, match="out of turn"):
        record_from_sgf(b"(;FF[4]GM[1]SZ[9];B[aa];B[bb])")
    with pytest.raises(ValueError, match="not an SGF game"):
        record_from_sgf(b"hello")


def test_segments_imitate_engine_moves_and_learn_the_result():
    config = config_module.load("go7", SETTINGS)
    rules = GoRules(5)
    # Black builds a wall, White resigns after its third move.
    moves = (12, 0, 7, 4, 17)
    segments = record_segments(GoRecord(5, 7.5, moves, "B+R", frozenset({1})), rules, config)
    assert len(segments) == 1
    segment = segments[0]
    assert segment.terminated and segment.length == len(moves)
    np.testing.assert_array_equal(segment.actions, moves)
    assert segment.policies[1].sum() == 0  # the random move teaches no policy
    for i in (0, 2, 3, 4):
        assert segment.policies[i, moves[i]] == 1.0
    assert segment.rewards[-1] == 1.0 and segment.to_play[-1] == 0  # Black's last move won
    assert (segment.rewards[:-1] == 0).all()
    with pytest.raises(ValueError, match="illegal under our rules"):
        record_segments(GoRecord(5, 7.5, (12, 12), "B+R"), rules, config)
    with pytest.raises(ValueError, match="no result"):
        record_segments(GoRecord(5, 7.5, (12,), ""), rules, config)
    with pytest.raises(ValueError, match="cannot train go5"):
        record_segments(GoRecord(9, 7.5, (12,), "B+R"), rules, config)


@needs_gnugo
def test_generated_games_replay_under_our_rules_and_resume(tmp_path):
    config = config_module.load("go7", [*SETTINGS, "warm_start.games=4"])
    folder = tmp_path / "warm_start"
    paths = generate_games(config, folder, quiet(), seed=0)
    assert [p.name for p in paths] == [f"game-{i:05d}.sgf" for i in range(4)]
    records = [record_from_sgf(p.read_bytes()) for p in paths]
    assert len({r.moves for r in records}) >= 3  # random openings make the games differ
    for record in records:
        assert record.winner is not None and record.black == "GNU Go"
        assert all(i < 3 for i in record.random_moves)
    segments, rejected = read_games(paths, GoRules(5), config, quiet())
    assert rejected == 0 and len(segments) == 4
    # A second call finds the games there and plays none.
    stamps = [p.stat().st_mtime_ns for p in paths]
    more = generate_games(config_module.load("go7", [*SETTINGS, "warm_start.games=5"]), folder, quiet(), seed=0)
    assert [p.stat().st_mtime_ns for p in more[:4]] == stamps and more[4].exists()


@needs_gnugo
def test_pre_training_moves_the_policy_toward_gnugos_moves(tmp_path):
    config = config_module.load(
        "go7", [*SETTINGS, "warm_start.games=6", "warm_start.train_steps=40", "training.learning_rate=3e-3"]
    )
    learner = Learner(config, (12, 5, 5), 26)
    replay = MemoryReplay(config.replay, num_actions=26, observation_shape=(12, 5, 5), frame_stack=1)

    def log_likelihood() -> float:
        segments, _ = read_games(sorted((tmp_path / "warm_start").glob("*.sgf")), GoRules(5), config, quiet())
        observations = torch.from_numpy(np.concatenate([s.observations for s in segments]))
        policies = np.concatenate([s.policies for s in segments])
        expert = policies.sum(axis=1) > 0
        learner.network.eval()
        with torch.no_grad():
            logits = learner.network.initial_inference(observations).policy_logits
        log_probs = torch.log_softmax(logits, dim=1).numpy()
        return float((log_probs * policies).sum(axis=1)[expert].mean())

    generate_games(config, tmp_path / "warm_start", quiet(), seed=0)
    before = log_likelihood()
    report = warm_start(config, tmp_path, learner, replay, np.random.default_rng(0), quiet())
    assert report.games == 6 and report.rejected == 0 and report.positions == replay.num_transitions
    assert learner.step == 40
    assert log_likelihood() > before + 0.5
