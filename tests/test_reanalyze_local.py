"""Reanalysis in local mode: fresh targets from the newest network over the embedded store."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from muzero import config as config_module
from muzero.acting.reanalyze import LocalReanalysis, reanalysis_due
from muzero.acting.selfplay import SelfPlay
from muzero.config import ConfigError
from muzero.envs.vector import make_vector_env
from muzero.learning.segment import stacked_observation_shape
from muzero.nn.networks import build_network
from muzero.operations.local import train
from muzero.operations.progress import Progress
from muzero.storage.replay.memory import MemoryReplay

SETTINGS = ["env.num_envs=8", "search.num_simulations=6", "replay.segment_length=5", "reanalyze.segments_per_round=4"]


def filled_store(*overrides: str) -> tuple:
    config = config_module.load("tictactoe-learned", SETTINGS + list(overrides))
    torch.manual_seed(0)
    env = make_vector_env(config.env.id, 1, 0)
    network = build_network(
        config.network, stacked_observation_shape(env.observation_shape, config.env.frame_stack), env.num_actions
    )
    selfplay = SelfPlay(config, network, seed=0)
    replay = MemoryReplay(
        config.replay, num_actions=env.num_actions, observation_shape=env.observation_shape, frame_stack=1
    )
    while replay.num_segments < 12:
        for segment in selfplay.step()[0]:
            replay.insert(segment)
    return config, network, selfplay, replay


def test_reanalysis_writes_newer_targets_paced_and_keeps_the_rest():
    config, network, selfplay, replay = filled_store("reanalyze.fraction=0.5")
    played = {segment.segment_id: segment for segment in replay.segments()}
    reanalysis = LocalReanalysis(config, network, replay, num_actions=9, num_players=2)

    searched = reanalysis.run(model_version=7)
    stats = replay.stats()
    assert searched > 0 and reanalysis.written > 0
    assert stats["reanalysed_transitions_total"] >= 0.5 * stats["inserted_transitions_total"]
    assert not reanalysis_due(stats, 0.5)  # paced: nothing more until more is played
    versions = replay.targets_versions()
    fresh_ids = [segment_id for segment_id, version in versions.items() if version >= 0]
    kept_ids = [segment_id for segment_id, version in versions.items() if version < 0]
    assert fresh_ids and kept_ids  # half the store, not all of it
    assert {versions[i] for i in fresh_ids} == {7}
    for segment in replay.segments():
        before = played[segment.segment_id]
        if segment.segment_id in kept_ids:  # the targets it was played with, until replaced
            np.testing.assert_array_equal(segment.policies, before.policies)
            np.testing.assert_array_equal(segment.root_values, before.root_values)
        else:  # newer than what was stored: the version is above the one that played it
            assert versions[segment.segment_id] > before.model_version
            np.testing.assert_array_equal(segment.actions, before.actions)  # only the targets change
    changed = [
        not np.allclose(s.policies, played[s.segment_id].policies)
        for s in replay.segments()
        if s.segment_id in fresh_ids
    ]
    assert any(changed)  # a search without root noise, at least somewhere another policy
    assert reanalysis.run(model_version=7) == 0  # not due: nothing searched

    while reanalysis_due(replay.stats(), 0.5) is False:  # play on until reanalysis is wanted again
        for segment in selfplay.step()[0]:
            replay.insert(segment)
    reanalysis.run(model_version=9)
    assert 9 in set(replay.targets_versions().values())
    assert not replay.write_targets(fresh_ids[0], played[fresh_ids[0]].policies, played[fresh_ids[0]].root_values, 3)


def test_reanalysis_stops_when_every_segment_read_has_this_version():
    # With fraction 1 and a store whose segments all hold this version's targets, a round
    # writes nothing: run() must return instead of searching the same segments forever.
    config, network, _, replay = filled_store("reanalyze.fraction=1.0", "reanalyze.segments_per_round=64")
    reanalysis = LocalReanalysis(config, network, replay, num_actions=9, num_players=2)
    reanalysis.run(model_version=3)
    written = reanalysis.written
    reanalysis.run(model_version=3)
    assert reanalysis.written == written  # nothing rewritten under the same version


def test_local_reanalysis_needs_the_learned_model():
    with pytest.raises(ConfigError, match=r"reanalyze.local: reanalysis searches the learned model"):
        config_module.load("tictactoe", ["reanalyze.local=true"])


def test_a_local_run_with_reanalysis_reports_its_targets(tmp_path: Path):
    overrides = [
        "env.num_envs=4",
        "search.num_simulations=4",
        "replay.segment_length=20",
        "reanalyze.local=true",
        "reanalyze.search_batch=64",
        "training.max_env_steps=240",
        "replay.min_size=80",
        "training.batch_size=16",
        "training.train_ratio=0.25",
        "training.eval_interval=240",
        "training.eval_episodes=2",
    ]
    config = config_module.load("cartpole", overrides)
    log = io.StringIO()
    result = train(config, tmp_path / "run", Progress("reanalyse", stream=log, interval_s=3600, live=False))
    assert result.learner_steps > 0
    lines = [line for line in log.getvalue().splitlines() if "reanalysed " in line]
    assert lines, log.getvalue()
    transitions = int(lines[-1].split("reanalysed ")[1].split()[0].replace(",", ""))
    assert transitions > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert "reanalyze/stored_share" in events.Tags()["scalars"]
    assert events.Scalars("reanalyze/transitions")[-1].value == transitions
