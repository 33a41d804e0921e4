"""benchmarks/go.py's match code: a real GNU Go plays a short 5x5 game against the engine."""

import pytest
from sgfmill import sgf

from muzero.acting.analysis import NetworkGoSearcher
from muzero.cli import _load_network
from muzero.envs.go.sgf import record_from_sgf
from muzero.transport.gtp_client import find_gnugo
from muzero.transport.gtp_engine import GtpEngine
from tests.benchmark_modules import load_benchmark


def bench():
    return load_benchmark("go")


def test_wilson_interval():
    low, high = bench().wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    assert bench().wilson_interval(0, 10)[0] == 0.0 and bench().wilson_interval(10, 10)[1] == 1.0


def test_gnugo_plays_a_5x5_game_against_the_engine(go5_checkpoint, tmp_path):
    if find_gnugo() is None:
        pytest.skip("GNU Go is not installed (scripts/install_tools.sh installs it)")
    config, network, _, env = _load_network(str(go5_checkpoint))
    engine = GtpEngine(NetworkGoSearcher(network, 5), 5, 7.5, simulations=8, resign_threshold=0.0)
    summary = bench().play_match(engine, games=2, size=5, komi=7.5, level=0, sgf_dir=tmp_path, opening_moves=2)
    assert summary["games"] == 2 and summary["wins"] + summary["losses"] == 2
    assert 0 <= summary["wilson95"][0] <= summary["win_rate"] <= summary["wilson95"][1] <= 1
    assert sum(summary["ended_by"].values()) == 2
    files = sorted(tmp_path.glob("*.sgf"))
    assert len(files) == 2
    game = sgf.Sgf_game.from_bytes(files[0].read_bytes())
    root = game.get_root()
    assert game.get_size() == 5 and root.get("KM") == 7.5 and root.get("RE")
    assert {root.get("PB"), root.get("PW")} == {"muzero", "GNU Go level 0"}
    assert len(game.get_main_sequence()) > 2  # moves were recorded
    # Both games of the pair open with the same two random moves, marked as such.
    records = [record_from_sgf(f.read_bytes()) for f in files]
    assert records[0].moves[:2] == records[1].moves[:2]
    assert all(r.random_moves == frozenset({0, 1}) for r in records)
    assert bench().opening(5, 7.5, 2, 0, 0) == records[0].moves[:2]
    assert bench().opening(5, 7.5, 2, 0, 1) != records[0].moves[:2]


def test_games_in_parallel_give_the_same_kind_of_record(go5_checkpoint, tmp_path):
    if find_gnugo() is None:
        pytest.skip("GNU Go is not installed (scripts/install_tools.sh installs it)")
    summary = bench().play_match_parallel(
        str(go5_checkpoint), simulations=4, games=4, size=5, komi=7.5, level=0, sgf_dir=tmp_path, workers=2
    )
    assert summary["games"] == 4 and summary["wins"] + summary["losses"] == 4
    assert summary["wins_as_black"] + summary["wins_as_white"] == summary["wins"]
    files = sorted(tmp_path.glob("*.sgf"))
    assert [f.name for f in files] == [f"game_{i:04d}.sgf" for i in range(4)]
    colors = [sgf.Sgf_game.from_bytes(f.read_bytes()).get_player_name("b") for f in files]
    assert colors == ["muzero", "GNU Go level 0", "muzero", "GNU Go level 0"]  # colours alternate
