import numpy as np
import torch

from muzero import config as config_module
from muzero.acting.selfplay import SelfPlay
from muzero.envs.games.tictactoe import TicTacToe
from muzero.envs.players import RandomPlayer, play_match
from muzero.learning.segment import stacked_observation_shape
from muzero.nn.networks import build_network
from muzero.search.mcts import make_search
from muzero.search.step_fns import RolloutEvaluator, SimulatorModel


def make_selfplay(preset, *overrides):
    config = config_module.load(preset, list(overrides))
    torch.manual_seed(0)
    from muzero.envs.vector import make_vector_env

    env = make_vector_env(config.env.id, 1, 0)
    network = build_network(
        config.network, stacked_observation_shape(env.observation_shape, config.env.frame_stack), env.num_actions
    )
    return SelfPlay(config, network, seed=0)


def test_selfplay_segments_cover_every_step_once():
    selfplay = make_selfplay(
        "cartpole",
        "env.num_envs=4",
        "search.num_simulations=4",
        "replay.segment_length=5",
        "training.td_steps=2",
        "training.unroll_steps=1",
    )
    selfplay.model_version = 7
    segments, returns = [], []
    for _ in range(150):
        new, stats = selfplay.step()
        segments += new
        returns += stats.returns
    # a segment owns up to segment_length steps, or up to segment_length + K + n + 1 at an episode end
    context = selfplay.config.training.unroll_steps + selfplay.config.training.td_steps
    assert all(s.length <= 5 or (s.terminated and s.length <= 5 + context + 1) for s in segments)
    assert any(s.length == 5 and not s.terminated for s in segments)
    segments += selfplay.flush()
    owned = sum(s.length for s in segments)
    # flush keeps each env's last step pending, so play can go on.
    assert owned == selfplay.env_steps - selfplay.env.num_envs
    assert all(s.model_version == 7 for s in segments)
    assert returns and all(r >= 1 for r in returns)
    # the search policy is a distribution over the 2 actions
    for s in segments:
        assert np.allclose(s.policies.sum(axis=1), 1.0, atol=1e-5)


def test_selfplay_with_frame_stack_feeds_stacked_observations():
    selfplay = make_selfplay("cartpole", "env.num_envs=2", "search.num_simulations=2", "env.frame_stack=3")
    assert selfplay.stacked.shape == (2, 12)
    first = selfplay.observations.copy()
    selfplay.step()
    # oldest frames repeat the episode's first frame; the newest is the current observation
    assert np.array_equal(selfplay.stacked[:, :4], first)
    assert np.array_equal(selfplay.stacked[:, 8:], selfplay.observations)


def test_selfplay_two_player_segments_alternate_to_play():
    selfplay = make_selfplay("tictactoe", "env.num_envs=4", "search.num_simulations=4")
    segments = []
    while not segments:
        segments, _ = selfplay.step()
    for segment in segments:
        assert np.array_equal(segment.to_play, np.arange(len(segment.to_play)) % 2)


class AlphaZeroPlayer:
    """Search with tic-tac-toe's true rules and random-rollout values: no network."""

    def __init__(self, game, num_simulations, rng):
        search_config = config_module.load(
            "tictactoe", [f"search.num_simulations={num_simulations}", "search.model='simulator'"]
        ).search
        self.model = SimulatorModel(game, RolloutEvaluator(game, rng, num_rollouts=2))
        self.search = make_search(search_config, game.num_actions, batch_size=100, discount=1.0)

    def act(self, states, rng):
        result = self.search.run(self.model.initial(states), self.model, rng, temperature=0.0, add_noise=False)
        return result.action


def test_alphazero_style_search_never_loses_to_random():
    game, rng = TicTacToe(), np.random.default_rng(0)
    player = AlphaZeroPlayer(game, num_simulations=100, rng=rng)
    first = play_match(game, player, RandomPlayer(game), 50, rng, a_first=True)
    second = play_match(game, player, RandomPlayer(game), 50, rng, a_first=False)
    assert first["losses"] + second["losses"] == 0, (first, second)
    assert first["wins"] + second["wins"] >= 80


def _late_moves_greedy_fraction(sample_moves: int) -> float:
    """Share of moves after the first of an episode that took a most-visited action."""
    selfplay = make_selfplay(
        "tictactoe-learned", "env.num_envs=16", "search.num_simulations=8", f"search.sample_moves={sample_moves}"
    )
    recorded = []
    run = selfplay.search.run

    def recording_run(*args, **kwargs):
        result = run(*args, **kwargs)
        recorded.append(result)
        return result

    selfplay.search.run = recording_run
    greedy, late = 0, 0
    original_step = selfplay.env.step

    def recording_step(actions):
        nonlocal greedy, late
        result = recorded[-1]
        counts = np.where(selfplay.env.legal_mask(), result.visit_counts, -1)
        is_best = counts[np.arange(len(actions)), actions] == counts.max(axis=1)
        mask = selfplay.episode_length >= 1
        greedy += int(is_best[mask].sum())
        late += int(mask.sum())
        return original_step(actions)

    selfplay.env.step = recording_step
    for _ in range(30):
        selfplay.step()
    return greedy / late


def test_sample_moves_plays_the_most_visited_action_after_the_opening():
    assert _late_moves_greedy_fraction(sample_moves=1) == 1.0
    assert _late_moves_greedy_fraction(sample_moves=0) < 0.95  # temperature 1 samples every move


def test_reanalyze_gives_the_search_of_the_new_network():
    """Fresh targets are the search policy and value of each stored step, with the given network."""
    from muzero.acting.reanalyze import Reanalyzer

    selfplay = make_selfplay(
        "cartpole", "env.num_envs=4", "search.num_simulations=8", "replay.segment_length=6", "search.algorithm=muzero"
    )
    segments = []
    while len(segments) < 3:
        segments += selfplay.step()[0]
    reanalyzer = Reanalyzer(selfplay.config, selfplay.network, num_actions=2, num_players=1, batch_size=7)
    fresh = reanalyzer.run(segments)
    assert [f.segment_id for f in fresh] == [s.segment_id for s in segments]
    for segment, targets in zip(segments, fresh):
        assert targets.policies.shape == segment.policies.shape
        np.testing.assert_allclose(targets.policies.sum(axis=1), 1.0, rtol=1e-5)
        assert np.isfinite(targets.root_values).all()
    # Same network, same search: the fresh root values track the stored ones (noise aside).
    stored = np.concatenate([s.root_values for s in segments])
    again = np.concatenate([f.root_values for f in fresh])
    assert np.corrcoef(stored, again)[0, 1] > 0.5
    assert reanalyzer.simulations == 8 * len(stored)
