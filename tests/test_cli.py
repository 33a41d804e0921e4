"""The `muzero` command end to end, as a user runs it (real subprocesses)."""

import csv
import os
import re
import signal
import subprocess
import sys

import pytest

from muzero.storage.checkpoint import CheckpointManager, load_checkpoint

TINY_CARTPOLE = [
    "--set",
    "training.max_env_steps=640",
    "--set",
    "replay.min_size=200",
    "--set",
    "training.eval_interval=320",
    "--set",
    "training.eval_episodes=3",
    "--set",
    "training.checkpoint_interval=10",
    "--set",
    "training.train_ratio=2.0",
    "--set",
    "search.num_simulations=4",
    "--set",
    "env.num_envs=4",
]


def muzero(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "muzero.cli", *args], capture_output=True, text=True, timeout=300, **kwargs
    )


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "cartpole"
    result = muzero("train", "cartpole", "--run-dir", str(run_dir), *TINY_CARTPOLE)
    assert result.returncode == 0, result.stderr
    return run_dir, result


def test_train_writes_checkpoint_curve_and_plot(cartpole_run):
    run_dir, result = cartpole_run
    latest = CheckpointManager(run_dir).latest()
    assert latest is not None
    checkpoint = load_checkpoint(latest)
    assert checkpoint.step > 0 and checkpoint.config.name == "cartpole"
    rows = list(csv.DictReader((run_dir / "curve.csv").open()))
    assert [int(row["env_steps"]) for row in rows] == [320, 640]
    assert all(float(row["eval_mean_return"]) > 0 for row in rows)
    assert (run_dir / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "env steps=" in result.stderr  # the progress display


def test_train_writes_tensorboard_scalars_of_its_curve(cartpole_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = cartpole_run
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()  # tensorboard's own reader
    tags = set(events.Tags()["scalars"])
    assert {"eval/mean_return", "eval/stderr", "loss/total", "loss/value", "selfplay/env_steps_per_s"} <= tags
    rows = list(csv.DictReader((run_dir / "curve.csv").open()))
    evaluations = events.Scalars("eval/mean_return")
    assert [e.step for e in evaluations] == [int(row["env_steps"]) for row in rows]
    assert [e.value for e in evaluations] == pytest.approx([float(row["eval_mean_return"]) for row in rows])
    stderr = [e.value for e in events.Scalars("eval/stderr")]
    assert stderr == pytest.approx([float(row["eval_std_return"]) / 3**0.5 for row in rows])  # 3 episodes
    assert all(e.step <= 640 and e.value > 0 for e in events.Scalars("loss/total"))


def test_eval_reads_the_latest_checkpoint(cartpole_run):
    run_dir, _ = cartpole_run
    result = muzero("eval", str(run_dir / "checkpoints" / "latest"), "--episodes", "2")
    assert result.returncode == 0, result.stderr
    assert "mean return" in result.stdout and "over 2 episodes" in result.stdout


def test_eval_rejects_a_corrupted_checkpoint(cartpole_run, tmp_path):
    run_dir, _ = cartpole_run
    latest = CheckpointManager(run_dir).latest()
    copy = tmp_path / latest.name
    data = bytearray(latest.read_bytes())
    data[-5] ^= 0xFF
    copy.write_bytes(bytes(data))
    (tmp_path / latest.with_suffix(".json").name).write_bytes(latest.with_suffix(".json").read_bytes())
    result = muzero("eval", str(copy), "--episodes", "1")
    assert result.returncode != 0
    assert "sha256" in result.stderr


def test_bad_config_fails_at_start_with_the_key():
    result = muzero("train", "cartpole", "--set", "search.num_simulations=-5")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "muzero: config error: search.num_simulations: must be >= 1"


def test_ctrl_c_leaves_a_usable_checkpoint(tmp_path):
    run_dir = tmp_path / "interrupted"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "muzero.cli",
            "train",
            "cartpole",
            "--run-dir",
            str(run_dir),
            "--set",
            "replay.min_size=100",
            "--set",
            "training.train_ratio=2.0",
            "--set",
            "env.num_envs=4",
            "--set",
            "search.num_simulations=4",
            "--set",
            "training.eval_interval=0",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # A suite started in the background (`make test &`) inherits SIGINT ignored, and Python
        # keeps an ignored SIGINT ignored: give the child the terminal's default, as a user has.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # Wait (by condition, not by time) until the learner has trained: progress reports it.
        for line in process.stderr:
            if "learner steps=" in line and "learner steps=0 " not in line:
                break
        process.send_signal(signal.SIGINT)
        rest = process.stderr.read()
        assert process.wait(timeout=120) == 130, rest
    finally:
        process.kill()
    checkpoint = load_checkpoint(CheckpointManager(run_dir).latest())
    assert checkpoint.step > 0
    assert (run_dir / "curve.png").exists()


@pytest.fixture(scope="module")
def tictactoe_checkpoint(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "tictactoe"
    result = muzero(
        "train",
        "tictactoe",
        "--run-dir",
        str(run_dir),
        "--set",
        "training.max_env_steps=256",
        "--set",
        "replay.min_size=100",
        "--set",
        "training.eval_interval=0",
        "--set",
        "training.checkpoint_interval=5",
        "--set",
        "training.train_ratio=1.0",
        "--set",
        "search.num_simulations=4",
        "--set",
        "env.num_envs=8",
    )
    assert result.returncode == 0, result.stderr
    return CheckpointManager(run_dir).latest()


def test_eval_board_game_reports_win_draw_loss(tictactoe_checkpoint):
    result = muzero("eval", str(tictactoe_checkpoint), "--episodes", "4", "--opponents", "minimax,random")
    assert result.returncode == 0, result.stderr
    assert "vs minimax:" in result.stdout and "vs random:" in result.stdout and "vs uct:" not in result.stdout


def test_eval_defaults_to_the_games_opponents_and_names_them_on_a_typo(tictactoe_checkpoint):
    result = muzero("eval", str(tictactoe_checkpoint), "--episodes", "2")
    assert result.returncode == 0, result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["vs minimax", "vs uct", "vs random"]
    result = muzero("eval", str(tictactoe_checkpoint), "--episodes", "2", "--opponents", "random,gnugo")
    assert result.returncode != 0
    assert "unknown opponent 'gnugo' for tictactoe (its opponents: minimax, random, uct)" in result.stderr


def test_play_in_the_terminal(tictactoe_checkpoint):
    # The human plays first and tries cells in order; bad input is refused, not fatal.
    moves = "\n".join(["x", "9", "pass"] + [str(cell) for cell in range(9)] * 3) + "\n"
    result = muzero("play", str(tictactoe_checkpoint), input=moves)
    assert result.returncode == 0, result.stderr
    assert "your move (0, 1, 2, 3, 4, 5, 6, 7, 8): " in result.stdout  # the legal moves, by name
    assert "not a move: tictactoe has no move named 'x' (moves: 0, 1, 2, 3, 4, 5, 6, 7, 8)" in result.stdout
    assert "not a move: tictactoe has no move named '9'" in result.stdout
    assert "not a move: tictactoe has no pass" in result.stdout
    assert "muzero plays" in result.stdout
    assert any(end in result.stdout for end in ("You win!", "muzero wins.", "Draw."))


def test_play_quits_on_q(tictactoe_checkpoint):
    result = muzero("play", str(tictactoe_checkpoint), input="q\n")
    assert result.returncode == 0, result.stderr
    assert "muzero plays" not in result.stdout


TICTACTOE_BOARD = re.compile("\n---\\+---\\+---\n".join([r" (\S) \| (\S) \| (\S)"] * 3))


def test_play_board_labels_are_the_cells_played(tictactoe_checkpoint):
    """Each move changes the one cell the board showed under the name typed (or printed by muzero)."""
    typed = ["4"] + [str(cell) for cell in range(9)] * 2
    result = muzero("play", str(tictactoe_checkpoint), input="\n".join(typed) + "\n")
    assert result.returncode == 0, result.stderr
    boards = [match.groups() for match in TICTACTOE_BOARD.finditer(result.stdout)]
    assert boards[0] == tuple("012345678")
    assert boards[1][4] == "X"  # the human typed 4 first: the cell labelled 4 got the X
    muzero_moves = iter(re.findall(r"muzero plays (\S+)", result.stdout))
    pending = iter(typed)
    for before, after in zip(boards, boards[1:]):
        changed = [cell for cell in range(9) if before[cell] != after[cell]]
        assert len(changed) == 1, (before, after)
        cell = changed[0]
        assert before[cell] == str(cell)  # it showed its name before
        if after[cell] == "X":  # the human's: the first typed name still shown on the board
            name = next(name for name in pending if name in before)
        else:
            name = next(muzero_moves)
        assert name == str(cell)


@pytest.fixture(scope="module")
def connect4_checkpoint(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "connect4"
    result = muzero(
        "train",
        "connect4",
        "--run-dir",
        str(run_dir),
        "--set",
        "training.max_env_steps=128",
        "--set",
        "replay.min_size=64",
        "--set",
        "training.eval_interval=0",
        "--set",
        "training.checkpoint_interval=2",
        "--set",
        "training.train_ratio=1.0",
        "--set",
        "training.batch_size=16",
        "--set",
        "search.num_simulations=2",
        "--set",
        "env.num_envs=4",
        "--set",
        "network.channels=4",
        "--set",
        "network.num_blocks=1",
    )
    assert result.returncode == 0, result.stderr
    return CheckpointManager(run_dir).latest()


def test_connect4_evaluates_against_uct_and_random_and_plays_by_column_letters(connect4_checkpoint):
    result = muzero("eval", str(connect4_checkpoint), "--episodes", "2")
    assert result.returncode == 0, result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["vs uct", "vs random"]
    result = muzero("play", str(connect4_checkpoint), input="h\nd\nq\n")
    assert result.returncode == 0, result.stderr
    assert "your move (a, b, c, d, e, f, g): not a move: connect4 has no move named 'h'" in result.stdout
    boards = result.stdout.split(" a b c d e f g\n")
    assert len(boards) >= 3  # the empty board, after the human's d, after muzero's reply
    assert boards[1].splitlines()[-1].endswith(" . . . X . . .")  # d: the fourth column, at the bottom
