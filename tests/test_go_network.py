"""The board network (fully convolutional, global pooling) and D4 augmentation, checked
against the Go rules: a symmetry of the board must commute with playing the game."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from muzero.config import NetworkConfig
from muzero.envs.go import GoRules
from muzero.learning.augment import NUM_TRANSFORMS, augment_d4, check_d4, point_targets, transform_planes
from muzero.learning.batch import Batch
from muzero.nn.networks import build_network

CONFIG = NetworkConfig(kind="board", channels=16, num_blocks=2, head_hidden_size=8, value_support=1, reward_support=1)


def random_game(rules: GoRules, moves: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """A state after up to ``moves`` random legal moves (no passes), and the moves."""
    state = rules.initial_states(1)
    played = []
    for _ in range(moves):
        legal = rules.legal_mask(state)[0]
        legal[rules.size * rules.size] = False
        if not legal.any():
            break
        action = int(rng.choice(np.flatnonzero(legal)))
        state, _, done = rules.step(state, np.array([action]))
        played.append(action)
        if done[0]:
            break
    return state, played


def test_one_network_runs_on_every_board_size():
    torch.manual_seed(0)
    small = build_network(CONFIG, (12, 7, 7), 50).eval()
    large = build_network(CONFIG, (12, 9, 9), 82).eval()
    large.load_state_dict(small.state_dict())  # no weight depends on the size
    with torch.no_grad():
        for net, size in ((small, 7), (large, 9)):
            out = net.initial_inference(torch.randn(3, 12, size, size))
            assert out.policy_logits.shape == (3, size * size + 1)
            assert out.value_logits.shape == (3, 3)
            step = net.recurrent_inference(out.hidden, torch.tensor([0, size * size, 5]))
            assert step.hidden.shape == out.hidden.shape
            assert step.reward_logits.shape == (3, 3)


def test_far_corners_see_each_other_through_global_pooling():
    # Five 3x3 convolutions reach 5 points; corner to corner on 9x9 is 8. Only pooling links them.
    torch.manual_seed(0)
    net = build_network(CONFIG, (12, 9, 9), 82).eval()
    x = torch.zeros(1, 12, 9, 9)
    y = x.clone()
    y[0, 0, 0, 0] = 1.0
    with torch.no_grad():
        far = [net.initial_inference(v).policy_logits[0, 80].item() for v in (x, y)]
    assert far[0] != far[1]


def test_board_network_refuses_actions_that_are_not_points():
    with pytest.raises(ValueError, match="one action per point"):
        build_network(CONFIG, (3, 6, 7), 7)  # connect four's columns


@pytest.mark.parametrize("transform", range(NUM_TRANSFORMS))
def test_symmetry_commutes_with_the_rules(transform):
    """Play a game, and the same game with every move moved by the symmetry: the second
    game's planes are the first's moved by it, captures and ko included."""
    rules = GoRules(7)
    rng = np.random.default_rng(transform)
    targets = point_targets(7)[transform]
    for _ in range(5):
        state, played = random_game(rules, 60, rng)
        mirrored = rules.initial_states(1)
        for action in played:
            mirrored, _, _ = rules.step(mirrored, np.array([targets[action]]))
        expected = transform_planes(rules.observe(state)[0], transform)
        np.testing.assert_array_equal(rules.observe(mirrored)[0], expected)
        legal, mirrored_legal = rules.legal_mask(state)[0], rules.legal_mask(mirrored)[0]
        np.testing.assert_array_equal(mirrored_legal[targets], legal[:49])
        assert mirrored_legal[49] == legal[49]


def make_batch(rules: GoRules, rng: np.random.Generator, size: int = 16) -> Batch:
    observations, actions, policies = [], [], []
    for _ in range(size):
        state, played = random_game(rules, int(rng.integers(5, 30)), rng)
        observations.append(rules.observe(state)[0])
        moves = [int(rng.integers(0, 49)), 49, int(rng.integers(0, 49))]  # a pass in the middle
        actions.append(moves)
        policy = rng.random((4, 50)).astype(np.float32)
        policies.append(policy / policy.sum(axis=1, keepdims=True))
    k = 3
    return Batch(
        observations=np.stack(observations),
        actions=np.array(actions, dtype=np.int64),
        target_values=rng.random((size, k + 1)).astype(np.float32),
        target_rewards=np.zeros((size, k + 1), dtype=np.float32),
        target_policies=np.stack(policies),
        value_mask=np.ones((size, k + 1), dtype=bool),
        reward_mask=np.ones((size, k + 1), dtype=bool),
        policy_mask=np.ones((size, k + 1), dtype=bool),
        weights=np.ones(size, dtype=np.float32),
    )


def test_augment_moves_planes_actions_and_policies_together():
    rules = GoRules(7)
    rng = np.random.default_rng(1)
    batch = make_batch(rules, rng, size=64)
    out = augment_d4(batch, np.random.default_rng(2))
    seen = set()
    for b in range(batch.size):
        # Find the symmetry from the planes, then every other field must follow it.
        matches = [
            t
            for t in range(NUM_TRANSFORMS)
            if np.array_equal(transform_planes(batch.observations[b], t), out.observations[b])
        ]
        assert matches, f"example {b}: the planes are not a symmetry of the original"
        t = matches[0]
        seen.add(t)
        targets = point_targets(7)[t]
        for step, action in enumerate(batch.actions[b]):
            assert out.actions[b, step] == (49 if action == 49 else targets[action])
        for step in range(4):
            np.testing.assert_allclose(out.target_policies[b, step, targets], batch.target_policies[b, step, :49])
            assert out.target_policies[b, step, 49] == batch.target_policies[b, step, 49]
    assert len(seen) >= 6  # 64 draws of 8: all but a rare one or two appear
    np.testing.assert_array_equal(out.target_values, batch.target_values)
    np.testing.assert_array_equal(batch.observations, make_batch(rules, np.random.default_rng(1), 64).observations)


def test_d4_refuses_boards_without_the_symmetry():
    with pytest.raises(ValueError, match="square board"):
        check_d4((3, 6, 7), 7)
    with pytest.raises(ValueError, match="one action per point"):
        check_d4((12, 7, 7), 7)


def test_ownership_sums_to_the_area_count():
    rules = GoRules(7)
    rng = np.random.default_rng(3)
    for _ in range(50):
        state, _ = random_game(rules, int(rng.integers(1, 90)), rng)
        ownership = rules.ownership(state)
        assert set(np.unique(ownership)) <= {-1.0, 0.0, 1.0}
        assert ownership.sum() == rules.area_difference(state)[0]
        boards = rules.boards(state)[0].reshape(-1)
        np.testing.assert_array_equal(ownership[0][boards == 1], 1.0)  # a stone is its colour's
        np.testing.assert_array_equal(ownership[0][boards == 2], -1.0)


def test_augment_moves_the_ownership_target_with_the_board():
    rules = GoRules(7)
    rng = np.random.default_rng(4)
    batch = make_batch(rules, rng, size=32)
    ownership = rng.integers(-1, 2, (32, 49)).astype(np.float32)
    batch = replace(batch, target_ownership=ownership, ownership_mask=np.ones(32, dtype=bool))
    out = augment_d4(batch, np.random.default_rng(5))
    for b in range(32):
        t = next(
            t
            for t in range(NUM_TRANSFORMS)
            if np.array_equal(transform_planes(batch.observations[b], t), out.observations[b])
        )
        expected = transform_planes(ownership[b].reshape(7, 7), t).reshape(-1)
        np.testing.assert_array_equal(out.target_ownership[b], expected)


def test_ownership_and_score_heads_learn_their_targets():
    """With the switches on, a few steps on a fixed batch move both predictions toward the
    targets; the targets are those of the mover (the sign flips for White)."""
    from muzero import config as config_module
    from muzero.learning.learner import Learner

    config = config_module.load(
        "go7",
        [
            "env.id=go5",
            "network.ownership_head=true",
            "network.score_head=true",
            "training.learning_rate=3e-3",
            "training.augment=none",
        ],
    )
    torch.manual_seed(0)
    learner = Learner(config, (12, 5, 5), 26)
    rules = GoRules(5)
    rng = np.random.default_rng(6)
    states = [random_game(rules, int(rng.integers(10, 40)), rng)[0] for _ in range(32)]
    observations = np.concatenate([rules.observe(s) for s in states])
    movers = np.array([int(rules.to_play(s)[0]) for s in states])
    final = np.concatenate([rules.ownership(s) for s in states])  # stand-ins for final boards
    target = np.where(movers[:, None] == 0, final, -final).astype(np.float32)
    batch = Batch(
        observations=observations,
        actions=np.zeros((32, 1), dtype=np.int64),
        target_values=np.zeros((32, 2), dtype=np.float32),
        target_rewards=np.zeros((32, 2), dtype=np.float32),
        target_policies=np.full((32, 2, 26), 1 / 26, dtype=np.float32),
        value_mask=np.ones((32, 2), dtype=bool),
        reward_mask=np.zeros((32, 2), dtype=bool),
        policy_mask=np.ones((32, 2), dtype=bool),
        weights=np.ones(32, dtype=np.float32),
        target_ownership=target,
        ownership_mask=np.ones(32, dtype=bool),
    )
    first = learner.train(batch)
    assert "ownership" in first and "score" in first
    for _ in range(60):
        last = learner.train(batch)
    assert last["ownership"] < 0.7 * first["ownership"]
    assert last["score"] < 0.5 * first["score"]
    network = learner.network.eval()
    with torch.no_grad():
        out = network.auxiliary(network.initial_inference(torch.from_numpy(observations)).hidden)
    agree = (np.sign(out["ownership"].numpy()) == target)[target != 0].mean()
    assert agree > 0.8


def test_auxiliary_heads_need_the_board_network():
    from muzero import config as config_module
    from muzero.config import ConfigError

    with pytest.raises(ConfigError, match="network.ownership_head"):
        config_module.load("tictactoe", ["network.ownership_head=true"])


def test_only_a_board_network_plays_other_sizes():
    from muzero.acting.analysis import NetworkGoSearcher

    board = NetworkGoSearcher(build_network(CONFIG, (12, 5, 5), 26), 5)
    resnet_config = NetworkConfig(kind="resnet", channels=8, num_blocks=1, value_support=1, reward_support=1)
    resnet = NetworkGoSearcher(build_network(resnet_config, (12, 5, 5), 26), 5)
    assert board.supports_size(5) and board.supports_size(9) and board.supports_size(19)
    assert resnet.supports_size(5) and not resnet.supports_size(9)
