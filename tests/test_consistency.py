"""EfficientZero's consistency loss (training.consistency_loss_weight): its targets, what it
moves, and the state it adds to checkpoints and to batches on the wire."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from muzero.config import NetworkConfig, TrainingConfig
from muzero.learning.augment import augment_d4, transform_planes
from muzero.learning.batch import make_batch, next_observation_targets
from muzero.learning.consistency import ConsistencyHead
from muzero.learning.loss import consistency_loss
from muzero.learning.segment import SegmentBuilder
from muzero.learning.trainer import Trainer
from muzero.nn.networks import build_network
from muzero.wire import codec

NUM_ACTIONS = 3
UNROLL, TD = 3, 2


def play(observation_shape, steps=40, episode=10, frame_stack=1, seed=0, num_actions=NUM_ACTIONS):
    """Segments of two envs whose observation at step t is t (every entry), so an example's
    next observations are known by number; episodes of ``episode`` steps."""
    rng = np.random.default_rng(seed)
    builder = SegmentBuilder(2, 8, UNROLL + TD, frame_stack, num_actions, td_steps=TD, discount=0.9)
    segments = []
    for step in range(steps):
        t = step % episode
        ended = np.full(2, t == episode - 1)
        observations = np.full((2, *observation_shape), float(t), dtype=np.float32)
        observations[1] += 100.0  # the second env's frames differ from the first's
        segments += builder.add_step(
            observations,
            rng.integers(0, num_actions, 2),
            np.ones(2),
            np.zeros(2, dtype=np.int8),
            np.ones((2, num_actions), dtype=bool),
            rng.dirichlet(np.ones(num_actions), size=2).astype(np.float32),
            rng.normal(size=2),
            ended,
            np.zeros(2, dtype=bool),
            np.zeros(2),
            model_version=0,
        )
    return segments


def test_next_observations_are_the_frames_of_the_unrolled_positions_inside_the_segment():
    segments = play((4,))
    segment = segments[0]
    positions = np.arange(segment.num_steps)
    following, mask = next_observation_targets([segment] * len(positions), positions, UNROLL)
    assert following.shape == (len(positions), UNROLL, 4) and mask.shape == (len(positions), UNROLL)
    for b, start in enumerate(positions):
        for k in range(1, UNROLL + 1):
            inside = start + k < segment.num_steps
            assert mask[b, k - 1] == inside
            expected = segment.stacked_observation(start + k) if inside else np.zeros(4)
            np.testing.assert_array_equal(following[b, k - 1], expected)
    assert not mask[-1].any()  # the last step's next observation is not stored


def test_frame_stacks_of_next_observations_match_the_segment():
    segments = play((2,), frame_stack=3)
    segment = segments[1]
    following, mask = next_observation_targets([segment], np.array([0]), UNROLL)
    assert mask[0].all()
    for k in range(1, UNROLL + 1):
        np.testing.assert_array_equal(following[0, k - 1], segment.stacked_observation(k))


def test_d4_moves_next_observations_with_the_board():
    segments = play((1, 3, 3), num_actions=10)  # nine points and a pass
    rng = np.random.default_rng(0)
    batch = make_batch(segments[:8], np.zeros(8, dtype=np.int64), UNROLL, TD, 0.9, 1, rng, next_observations=True)
    # Mark two points so each symmetry shows as itself.
    marked = batch.next_observations.copy()
    marked[:, :, 0, 0, 0], marked[:, :, 0, 0, 1] = -1.0, -2.0
    observations = batch.observations.copy()
    observations[:, 0, 0, 0], observations[:, 0, 0, 1] = -1.0, -2.0
    batch = replace(batch, next_observations=marked, observations=observations)
    augmented = augment_d4(batch, np.random.default_rng(3))
    for b in range(batch.size):
        # The transform each example got is the one that maps its observation.
        transform = next(
            t for t in range(8) if np.array_equal(transform_planes(observations[b], t), augmented.observations[b])
        )
        np.testing.assert_array_equal(augmented.next_observations[b], transform_planes(marked[b], transform))


def config(weight, **overrides):
    return TrainingConfig(
        batch_size=16,
        unroll_steps=UNROLL,
        td_steps=TD,
        learning_rate=3e-3,
        consistency_loss_weight=weight,
        consistency_projection_size=32,
        **overrides,
    )


def network(seed=0):
    torch.manual_seed(seed)
    net = NetworkConfig(hidden_size=32, num_layers=1, head_hidden_size=16, value_support=5, reward_support=3)
    return build_network(net, (4,), NUM_ACTIONS)


def fixed_batch():
    segments = play((4,), steps=60)
    rng = np.random.default_rng(1)
    positions = np.zeros(16, dtype=np.int64)
    chosen = [segments[i % len(segments)] for i in range(16)]
    batch = make_batch(chosen, positions, UNROLL, TD, 0.9, 1, rng, next_observations=True)
    # Normalise the frames' scale (0..109) so the MLP trains quickly.
    return replace(batch, observations=batch.observations / 100.0, next_observations=batch.next_observations / 100.0)


def unroll(net, batch):
    hidden = net.initial_inference(batch.observations).hidden
    unrolled = []
    for k in range(batch.actions.shape[1]):
        hidden = net.recurrent_inference(hidden, batch.actions[:, k]).hidden
        unrolled.append(hidden)
    return unrolled


def test_the_consistency_loss_moves_the_dynamics_output_toward_the_next_representation():
    """Steps on the loss alone, through the dynamics only, raise the similarity it measures;
    the observation side gets no gradient."""
    batch = fixed_batch().to_torch()
    net = network()
    torch.manual_seed(5)
    head = ConsistencyHead((32,), 32).train()
    for parameter in head.parameters():
        parameter.requires_grad_(False)  # the same projection before and after
    dynamics = list(net.dynamics_body.parameters())
    optimizer = torch.optim.Adam(dynamics, lr=1e-2)
    similarities = []
    for _ in range(40):
        loss, similarity = consistency_loss(net, head, unroll(net, batch), batch)
        similarities.append(similarity)
        optimizer.zero_grad()
        loss.mean().backward()
        assert all(p.grad is None or not p.grad.any() for p in net.value_out.parameters())  # not on this path
        optimizer.step()
    assert similarities[-1] > similarities[0] + 0.15, similarities

    # The observation side is a target: the representation's gradient comes only from the
    # online side (the unroll's start), none when that start is detached.
    net.zero_grad()
    hidden = net.initial_inference(batch.observations).hidden.detach()
    unrolled = [net.recurrent_inference(hidden, batch.actions[:, 0]).hidden]
    single = replace(
        batch,
        next_observations=batch.next_observations[:, :1],
        next_observation_mask=batch.next_observation_mask[:, :1],
        actions=batch.actions[:, :1],
    )
    loss, _ = consistency_loss(net, head, unrolled, single)
    loss.mean().backward()
    assert all(p.grad is None for p in net.representation.parameters())
    assert any(p.grad is not None and p.grad.any() for p in dynamics)


def test_training_with_the_consistency_loss_raises_its_similarity():
    batch = fixed_batch()
    trainer = Trainer(network(), config(2.0), observation_shape=(4,))
    parts = [trainer.train_step(batch) for _ in range(60)]
    assert parts[-1]["consistency_similarity"] > parts[0]["consistency_similarity"] + 0.2
    assert parts[-1]["consistency"] < parts[0]["consistency"]
    plain = Trainer(network(), config(0.0), observation_shape=(4,)).train_step(batch)
    assert "consistency" not in plain and plain["total"] != pytest.approx(parts[0]["total"])


def test_trainer_state_carries_the_consistency_head():
    batch = fixed_batch()
    trainer = Trainer(network(), config(2.0), observation_shape=(4,))
    for _ in range(3):
        trainer.train_step(batch)
    state = trainer.state_dict()
    assert any(key.startswith("consistency.") for key in state["tensors"])
    restored = Trainer(network(seed=1), config(2.0), observation_shape=(4,))
    restored.load_state_dict(state)
    for name, value in trainer.consistency.state_dict().items():
        torch.testing.assert_close(restored.consistency.state_dict()[name], value)
    without = Trainer(network(), config(0.0), observation_shape=(4,))
    with pytest.raises(ValueError, match="consistency head"):
        without.load_state_dict(state)
    with pytest.raises(ValueError, match="observation shape"):
        Trainer(network(), config(2.0))


def test_a_batch_without_next_observations_is_refused_by_name():
    segments = play((4,))
    batch = make_batch(segments[:4], np.zeros(4, dtype=np.int64), UNROLL, TD, 0.9, 1, np.random.default_rng(0))
    trainer = Trainer(network(), config(2.0), observation_shape=(4,))
    with pytest.raises(ValueError, match="next_observations"):
        trainer.train_step(batch)


def test_next_observations_cross_the_wire():
    segments = play((4,))
    rng = np.random.default_rng(0)
    positions = np.array([0, 3, segments[0].num_steps - 1, 1])
    batch = make_batch(segments[:4], positions, UNROLL, TD, 0.9, 1, rng, next_observations=True)
    batch = replace(batch, model_versions=np.zeros(4, dtype=np.int64))
    decoded = codec.training_batch_from_proto(codec.training_batch_to_proto(batch))
    np.testing.assert_array_equal(decoded.next_observations, batch.next_observations)
    np.testing.assert_array_equal(decoded.next_observation_mask, batch.next_observation_mask)
    message = codec.training_batch_to_proto(batch)
    message.next_observation_mask.shape[:] = [4, UNROLL + 1]
    with pytest.raises(codec.WireError, match="next_observation_mask"):
        codec.training_batch_from_proto(message)
