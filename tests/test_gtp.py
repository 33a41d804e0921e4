"""`muzero gtp`: a scripted GTP session through a real subprocess, and lz-analyze streaming."""

import subprocess
import sys
import time

import pytest

from muzero.envs.go import parse_vertex
from muzero.transport.gtp_client import GtpClient, GtpError

MUZERO = [sys.executable, "-m", "muzero.cli"]


def engine(checkpoint, *options):
    return GtpClient([*MUZERO, "gtp", str(checkpoint), "--simulations", "24", *options])


def test_a_scripted_session_with_every_command(go5_checkpoint):
    with engine(go5_checkpoint) as gtp:
        assert gtp.command("protocol_version") == "2"
        assert gtp.command("name") == "muzero"
        assert gtp.command("version")
        assert gtp.command("known_command genmove") == "true"
        assert gtp.command("known_command fly") == "false"
        commands = set(gtp.command("list_commands").split())
        required = {
            "protocol_version",
            "name",
            "version",
            "known_command",
            "list_commands",
            "quit",
            "boardsize",
            "clear_board",
            "komi",
            "play",
            "genmove",
            "undo",
            "final_score",
            "final_status_list",
            "time_settings",
            "time_left",
            "kgs-genmove_cleanup",
            "lz-analyze",
        }
        assert required <= commands
        # A board network is fully convolutional: trained on 5x5, it plays 7x7 too.
        assert gtp.command("boardsize 7") == ""
        move = gtp.command("genmove black")
        assert move.lower() == "pass" or parse_vertex(move, 7) < 49
        with pytest.raises(GtpError, match="unacceptable size"):
            gtp.command("boardsize 26")
        assert gtp.command("boardsize 5") == ""
        gtp.command("clear_board")
        gtp.command("komi 0.5")
        gtp.command("play black C3")
        with pytest.raises(GtpError, match="illegal move"):
            gtp.command("play white C3")
        with pytest.raises(GtpError, match="invalid vertex"):
            gtp.command("play white Z9")
        with pytest.raises(GtpError, match="invalid color"):
            gtp.command("play purple C4")
        with pytest.raises(GtpError, match="unknown command"):
            gtp.command("fly away")
        with pytest.raises(GtpError, match="komi takes one number"):
            gtp.command("komi lots")
        reply = gtp.command("genmove white")
        assert reply == "resign" or reply == "pass" or reply[0] in "ABCDE"
        board = gtp.command("showboard")
        assert "X" in board
        gtp.command("undo")
        gtp.command("undo")
        with pytest.raises(GtpError, match="cannot undo"):
            gtp.command("undo")
        assert gtp.command("final_score") == "W+0.5"  # an empty board: komi decides
        gtp.command("play b C3")
        assert gtp.command("final_score") == "B+24.5"  # one stone owns the whole board
        assert gtp.command("final_status_list alive") == "C3"
        assert gtp.command("final_status_list dead") == ""
        with pytest.raises(GtpError):
            gtp.command("final_status_list maybe")
        gtp.command("time_settings 30 5 1")
        gtp.command("time_left white 20 0")
        with pytest.raises(GtpError):
            gtp.command("time_left white soon 0")
        cleanup = gtp.command("kgs-genmove_cleanup white")
        assert cleanup not in ("pass", "resign")  # clean-up never passes while a move exists
        # GTP ids are echoed, and the engine survives malformed lines
        gtp._process.stdin.write("7 name\n")
        gtp._process.stdin.flush()
        assert gtp._process.stdout.readline().strip() == "=7 muzero"
        gtp._process.stdout.readline()
        assert gtp.command("protocol_version") == "2"


def test_genmove_keeps_to_its_time(go5_checkpoint):
    with GtpClient([*MUZERO, "gtp", str(go5_checkpoint), "--simulations", "100000", "--resign-threshold", "0"]) as gtp:
        gtp.command("komi 0.5")
        gtp.command("time_settings 0 2 1")  # byo-yomi: 2 seconds for every move
        gtp.command("genmove black")  # the first call pays for loading and compiling
        started = time.monotonic()
        gtp.command("genmove white")
        assert time.monotonic() - started < 2.0


def test_lz_analyze_streams_candidates_until_the_next_command(go5_checkpoint):
    command = [*MUZERO, "gtp", str(go5_checkpoint), "--simulations", "100000"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        process.stdin.write("play black C3\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "="
        process.stdout.readline()
        process.stdin.write("lz-analyze white 10\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "="
        infos = [process.stdout.readline() for _ in range(3)]
        for line in infos:
            assert line.startswith("info move "), line
            words = line.split()
            assert "visits" in words and "winrate" in words and "prior" in words and "pv" in words
            first_winrate = int(words[words.index("winrate") + 1])
            assert 0 <= first_winrate <= 10000
        visits = [int(line.split()[line.split().index("visits") + 1]) for line in infos]
        assert visits[-1] >= visits[0]  # the search goes on between lines
        process.stdin.write("name\n")  # any command ends the stream
        process.stdin.flush()
        line = process.stdout.readline()
        while line.startswith("info"):
            line = process.stdout.readline()
        assert line == "\n"  # the stream's end
        assert process.stdout.readline().strip() == "= muzero"
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def test_a_missing_checkpoint_is_named(tmp_path):
    missing = subprocess.run([*MUZERO, "gtp", str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "cannot load checkpoint" in missing.stderr and not missing.stdout
