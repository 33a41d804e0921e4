"""Self-play for Go-like games: playout cap randomisation and resignation, on real games."""

from __future__ import annotations

import numpy as np
import pytest

from muzero.acting.selfplay import EpisodeStats
from muzero.envs.vector import make_vector_env
from muzero.learning.batch import make_batch
from tests.test_selfplay import make_selfplay

SIMULATOR = ("search.model=simulator", "env.num_envs=8", "search.num_simulations=16")


def test_fast_searches_store_no_policy_target_and_run_fewer_simulations():
    selfplay = make_selfplay(
        "tictactoe", *SIMULATOR, "search.fast_simulations=4", "search.full_search_fraction=0.3", "training.td_steps=9"
    )
    segments, moves, full_moves = [], 0, 0
    for _ in range(120):
        before = selfplay.simulations
        new, _ = selfplay.step()
        segments += new
        moves += 1
        per_game = (selfplay.simulations - before) // selfplay.env.num_envs
        assert per_game in (4, 16)
        full_moves += per_game == 16
    # one draw per move: 120 draws at 0.3 have mean 36, sd 5
    assert 18 <= full_moves <= 54
    rows = np.concatenate([s.policies for s in segments])
    sums = rows.sum(axis=1)
    assert ((sums == 0) | np.isclose(sums, 1.0, atol=1e-5)).all()
    assert 0.15 < (sums > 0).mean() < 0.45
    # The targets mask exactly the steps without a policy; values train everywhere.
    segment = next(s for s in segments if (s.policies.sum(axis=1) == 0).any() and s.length >= 3)
    positions = np.arange(segment.length)
    batch = make_batch([segment] * segment.length, positions, 1, 9, 1.0, 1, np.random.default_rng(0))
    has_policy = segment.policies.sum(axis=1) > 0
    np.testing.assert_array_equal(batch.policy_mask[:, 0], has_policy[: segment.length])
    assert batch.value_mask[:, 0].all()


def test_playout_cap_randomisation_is_checked_at_start():
    with pytest.raises(ValueError, match="search.fast_simulations"):
        make_selfplay("tictactoe", *SIMULATOR, "search.fast_simulations=16")
    with pytest.raises(ValueError, match="search.fast_simulations"):
        make_selfplay("tictactoe", *SIMULATOR, "search.fast_simulations=4", "search.algorithm=gumbel")


def test_a_resigned_game_ends_as_the_resigners_loss():
    env = make_vector_env("go5", 3, 0)
    env.step(np.array([12, 12, 12]))  # Black takes the centre everywhere
    step = env.step(np.array([0, 1, 2]), resign=np.array([False, True, False]))
    np.testing.assert_array_equal(step.terminated, [False, True, False])
    assert step.reward[1] == -1.0
    assert step.next_obs[1].sum() == env.game.observe(env.game.initial_states(1))[0].sum()  # a new game
    assert step.next_obs[0][1].sum() == 1  # the other games went on (Black's stone, from White's side)
    with pytest.raises(ValueError, match="resign"):
        env.step(np.array([0, 1, 2]), resign=np.array([True]))


def test_selfplay_resigns_below_the_threshold():
    # Any root value is below 0.99: the player to move resigns at its first move.
    selfplay = make_selfplay(
        "tictactoe",
        *SIMULATOR,
        "search.resign=true",
        "search.resign_threshold=0.99",
        "search.resign_after=1",
        "search.no_resign_fraction=0",
    )
    segments, stats = selfplay.step()
    assert stats.resignations == 8 and len(segments) == 8
    for segment in segments:
        assert segment.terminated and segment.length == 1 and segment.rewards[0] == -1.0


def test_games_played_out_report_wrong_resignations():
    selfplay = make_selfplay(
        "tictactoe",
        *SIMULATOR,
        "search.resign=true",
        "search.resign_threshold=0.99",
        "search.resign_after=1",
        "search.no_resign_fraction=1",
    )
    total = EpisodeStats()
    outcomes = []
    while len(outcomes) < 16:
        segments, stats = selfplay.step()
        total.resignations += stats.resignations
        total.resign_checks += stats.resign_checks
        total.resign_wrong += stats.resign_wrong
        outcomes += [(s.rewards[-1], int(s.to_play[-1])) for s in segments]
    assert total.resignations == 0
    assert total.resign_checks == 2 * len(outcomes)  # both players "would have", every game
    # Each player would have resigned: exactly the loser was right, so a decided game has one
    # wrong resignation and a draw two.
    expected = sum(1 if reward != 0 else 2 for reward, _ in outcomes)
    assert total.resign_wrong == expected


def test_resignation_needs_the_true_rules():
    with pytest.raises(ValueError, match="search.model = 'simulator'"):
        make_selfplay("tictactoe-learned", "search.resign=true")


def test_games_ended_by_the_rules_carry_their_final_ownership():
    env = make_vector_env("go5", 2, 0)
    env.step(np.array([12, 12]))
    env.step(np.array([25, 25]))  # White passes
    step = env.step(np.array([25, 0]), resign=np.array([False, True]))  # game 0: two passes
    assert step.terminated.all()
    assert step.final_ownership is not None
    np.testing.assert_array_equal(step.final_ownership[0], np.ones(25))  # one Black stone owns the board
    assert np.isnan(step.final_ownership[1]).all()  # a resignation decides no territory


def test_selfplay_segments_know_who_owned_the_board():
    selfplay = make_selfplay(
        "go7",
        "env.id=go5",
        "env.num_envs=4",
        "search.num_simulations=4",
        "search.fast_simulations=0",
        "search.resign=false",
        "replay.segment_length=50",
        "training.td_steps=50",
    )
    segments = []
    while len(segments) < 4:
        segments += selfplay.step()[0]
    rules = selfplay.env.game
    for segment in segments:
        assert segment.terminated and segment.final_ownership is not None
        # The ownership decides the game the way the rules did: Black won iff its area beats komi.
        black_won = segment.final_ownership.sum() - rules.komi > 0
        last_mover_won = segment.rewards[-1] > 0
        assert last_mover_won == ((segment.to_play[-1] == 0) == black_won)
        segment.validate(26, (12, 5, 5), 1)
    batch = make_batch(segments, np.zeros(4, dtype=np.int64), 1, 50, 1.0, 1, np.random.default_rng(0))
    assert batch.ownership_mask.all()
    # Position 0 is Black's move: its target is the stored ownership; position 1, White's, is negated.
    np.testing.assert_array_equal(batch.target_ownership, np.stack([s.final_ownership for s in segments]))
    second = make_batch(segments, np.ones(4, dtype=np.int64), 1, 50, 1.0, 1, np.random.default_rng(0))
    np.testing.assert_array_equal(second.target_ownership, -batch.target_ownership)
