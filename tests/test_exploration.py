"""εz-greedy self-play exploration: options of one random legal action repeated for Zeta-distributed steps."""

import numpy as np
import pytest

from muzero import config as config_module
from muzero.acting.exploration import RepeatedRandomActions
from muzero.acting.selfplay import SelfPlay
from muzero.nn.networks import build_network

SEARCHED = 7  # a sentinel for "the search's choice"


def test_off_plays_the_search():
    explore = RepeatedRandomActions(64, 0.0, 2.0, 100, np.random.default_rng(0))
    legal = np.ones((64, 8), dtype=bool)
    for _ in range(20):
        assert (explore.choose(np.full(64, SEARCHED), legal) == SEARCHED).all()
    assert explore.exploring_steps == 0


def test_options_are_uniform_over_legal_actions_and_zeta_long():
    n = 40_000
    explore = RepeatedRandomActions(n, 1.0, 2.0, 50, np.random.default_rng(1))
    legal = np.zeros((n, 8), dtype=bool)
    legal[:, [0, 2, 5]] = True  # the sentinel (7) is illegal: never an option's action
    chosen = explore.choose(np.full(n, SEARCHED), legal)
    assert set(np.unique(chosen)) == {0, 2, 5}
    assert np.allclose(np.bincount(chosen, minlength=8)[[0, 2, 5]] / n, 1 / 3, atol=0.01)
    durations = explore.left + 1
    assert durations.max() <= 50
    # Zeta(2): P(n = 1) = 1 / zeta(2) = 6 / pi^2, P(n = 2) = that / 4.
    assert np.mean(durations == 1) == pytest.approx(6 / np.pi**2, abs=0.01)
    assert np.mean(durations == 2) == pytest.approx(6 / np.pi**2 / 4, abs=0.01)


def test_an_option_repeats_its_action_for_its_duration_then_hands_back():
    explore = RepeatedRandomActions(500, 1.0, 1.5, 30, np.random.default_rng(2))
    legal = np.ones((500, 8), dtype=bool)
    legal[:, SEARCHED] = False
    first = explore.choose(np.full(500, SEARCHED), legal)
    duration = explore.left + 1
    explore.epsilon = 0.0  # no new options: what follows is the first option alone
    played = [first] + [explore.choose(np.full(500, SEARCHED), legal) for _ in range(31)]
    played = np.stack(played, axis=1)  # (env, step)
    for env in range(500):
        d = duration[env]
        assert (played[env, :d] == first[env]).all()
        assert (played[env, d:] == SEARCHED).all()
    assert explore.exploring_steps == duration.sum()


def test_an_option_stops_where_its_action_is_illegal_or_the_episode_ends():
    explore = RepeatedRandomActions(2, 1.0, 1.01, 100, np.random.default_rng(3))
    legal = np.zeros((2, 8), dtype=bool)
    legal[:, 3] = True
    legal[:, SEARCHED] = True
    explore.action[:] = 3
    explore.left[:] = 50
    explore.epsilon = 0.0
    assert (explore.choose(np.full(2, SEARCHED), legal) == 3).all()
    legal[0, 3] = False  # env 0: the move is taken (a board game)
    explore.end_episodes(np.array([False, True]))  # env 1: a new episode
    assert (explore.choose(np.full(2, SEARCHED), legal) == SEARCHED).all()
    assert (explore.left == 0).all()


def test_selfplay_explores_with_the_switch_and_not_without():
    for epsilon, expected in ((0.0, None), (1.0, 8 * 5)):
        config = config_module.load(
            "cartpole", ["env.num_envs=8", f"search.ez_greedy_epsilon={epsilon}", "search.num_simulations=4"]
        )
        network = build_network(config.network, (4,), 2)
        selfplay = SelfPlay(config, network, seed=0)
        for _ in range(5):
            selfplay.step()
        if expected is None:
            assert selfplay.exploration is None
        else:
            assert selfplay.exploration is not None and selfplay.exploration.exploring_steps == expected


def test_bad_settings_are_refused():
    for setting in ("search.ez_greedy_epsilon=1.5", "search.ez_greedy_mu=1.0", "search.ez_greedy_max_repeat=0"):
        with pytest.raises(config_module.ConfigError, match=setting.split("=")[0]):
            config_module.load("cartpole", [setting])
