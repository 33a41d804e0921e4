"""The trainer on the real network: it learns a fixed batch, warms up, clips, and restores its state."""

import json
import math

import numpy as np
import pytest
import torch

from muzero.config import NetworkConfig, TrainingConfig
from muzero.learning.batch import make_batch
from muzero.learning.segment import SegmentBuilder
from muzero.learning.trainer import Trainer, learning_rate_at
from muzero.nn.networks import build_network

NUM_ACTIONS = 2
OBS_SHAPE = (4,)
UNROLL, TD = 3, 2


def small_network(seed=0):
    torch.manual_seed(seed)
    config = NetworkConfig(hidden_size=32, num_layers=1, head_hidden_size=16, value_support=5, reward_support=3)
    return build_network(config, OBS_SHAPE, NUM_ACTIONS)


def fixed_batch(batch_size=16, seed=0):
    """Segments from random play (reward 1 per step, episodes of 12 steps), then one batch of them."""
    rng = np.random.default_rng(seed)
    builder = SegmentBuilder(2, 8, UNROLL + TD, 1, NUM_ACTIONS, td_steps=TD, discount=0.9)
    segments = []
    for step in range(36):
        ended = np.full(2, (step + 1) % 12 == 0)
        policies = rng.dirichlet(np.ones(NUM_ACTIONS), size=2).astype(np.float32)
        segments += builder.add_step(
            rng.normal(size=(2, *OBS_SHAPE)).astype(np.float32),
            rng.integers(0, NUM_ACTIONS, 2),
            np.ones(2),
            np.zeros(2, dtype=np.int8),
            np.ones((2, NUM_ACTIONS), dtype=bool),
            policies,
            rng.normal(size=2),
            ended,
            np.zeros(2, dtype=bool),
            np.zeros(2),
            model_version=0,
        )
    picks = rng.integers(0, len(segments), batch_size)
    chosen = [segments[i] for i in picks]
    positions = np.array([rng.integers(0, s.length) for s in chosen])
    return make_batch(chosen, positions, UNROLL, TD, 0.9, 1, rng)


def config(**overrides):
    values = dict(
        batch_size=16, unroll_steps=UNROLL, td_steps=TD, learning_rate=3e-3, weight_decay=1e-4, max_grad_norm=5.0
    )
    values.update(overrides)
    return TrainingConfig(**values)


def test_a_few_hundred_steps_fit_a_fixed_batch():
    trainer = Trainer(small_network(), config())
    batch = fixed_batch()
    first = trainer.train_step(batch)
    for _ in range(199):
        last = trainer.train_step(batch)
    assert last["total"] < 0.5 * first["total"]
    assert last["value"] < first["value"] and last["reward"] < first["reward"]
    assert trainer.step == 200
    assert last["priorities"].shape == (16,) and np.isfinite(last["priorities"]).all()


def test_learning_rate_warms_up_linearly():
    warm = config(lr_warmup_steps=4, learning_rate=1.0)
    assert [learning_rate_at(step, warm) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    trainer = Trainer(small_network(), warm)
    batch = fixed_batch(4)
    assert [trainer.train_step(batch)["learning_rate"] for _ in range(2)] == [0.25, 0.5]


def test_learning_rate_decays_along_a_half_cosine_after_the_warm_up():
    decaying = config(lr_warmup_steps=2, learning_rate=1.0, lr_decay_steps=4, lr_final_fraction=0.2)
    rates = [learning_rate_at(step, decaying) for step in range(9)]
    # warm-up 0.5, 1; then 0.2 + 0.8 * (1 + cos(pi * k / 4)) / 2 for k = 0..4; then the floor
    expected = [0.5, 1.0] + [0.2 + 0.4 * (1 + math.cos(math.pi * k / 4)) for k in range(5)] + [0.2, 0.2]
    assert rates == pytest.approx(expected)
    assert all(a > b for a, b in zip(rates[2:6], rates[3:7]))  # strictly falling while it decays
    trainer = Trainer(small_network(), decaying)
    batch = fixed_batch(4)
    applied = [trainer.train_step(batch)["learning_rate"] for _ in range(8)]
    assert applied == pytest.approx(expected[:8])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(expected[7])
    with pytest.raises(ValueError, match="training.lr_final_fraction"):
        config(lr_decay_steps=4, lr_final_fraction=1.5).validate()


def test_gradients_are_clipped_to_max_grad_norm():
    trainer = Trainer(small_network(), config(max_grad_norm=1e-3))
    result = trainer.train_step(fixed_batch(4))
    clipped = torch.sqrt(sum((p.grad**2).sum() for p in trainer.network.parameters() if p.grad is not None))
    assert result["grad_norm"] > 1e-3  # reported before clipping
    assert clipped.item() == pytest.approx(1e-3, rel=1e-3)


def test_weight_decay_skips_biases_and_norms():
    trainer = Trainer(small_network(), config())
    decayed, not_decayed = trainer.optimizer.param_groups
    assert decayed["weight_decay"] == 1e-4 and not_decayed["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decayed["params"]) and all(p.ndim < 2 for p in not_decayed["params"])


def test_state_dict_round_trip_resumes_identically():
    batch = fixed_batch(8)
    original = Trainer(small_network(), config(lr_warmup_steps=10))
    for _ in range(3):
        original.train_step(batch)
    state = original.state_dict()
    json.dumps(state["meta"])  # JSON-able, no pickle needed
    assert all(isinstance(t, torch.Tensor) for t in state["tensors"].values())

    restored = Trainer(small_network(seed=1), config(lr_warmup_steps=10))
    restored.network.load_state_dict(original.network.state_dict())
    restored.load_state_dict(state)
    assert restored.step == 3
    a, b = original.train_step(batch), restored.train_step(batch)
    assert a["learning_rate"] == b["learning_rate"] == pytest.approx(3e-3 * 4 / 10)
    for p, q in zip(original.network.parameters(), restored.network.parameters()):
        torch.testing.assert_close(p, q)
    with pytest.raises(ValueError, match="trainer state"):
        restored.load_state_dict({"tensors": {}})


def test_the_optimizer_state_of_another_network_layout_is_refused_by_name():
    batch = fixed_batch(8)
    original = Trainer(small_network(), config())
    original.train_step(batch)
    torch.manual_seed(0)
    wider = build_network(
        NetworkConfig(hidden_size=48, num_layers=1, head_hidden_size=16, value_support=5, reward_support=3),
        OBS_SHAPE,
        NUM_ACTIONS,
    )
    with pytest.raises(ValueError, match=r"exp_avg.* of parameter 0 has shape \(32, 4\).*another network layout"):
        Trainer(wider, config()).load_state_dict(original.state_dict())
