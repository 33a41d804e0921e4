"""The unrolled MuZero loss: gradient scaling, step scaling, masks, weights, priorities."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from muzero.learning.batch import TorchBatch
from muzero.learning.loss import cross_entropy, muzero_loss, scale_gradient
from muzero.nn.networks import InferenceOutput as Output
from muzero.nn.support import Support

NUM_ACTIONS = 3


class ConstantNetwork:
    """Predicts all-zero logits (uniform distributions) whatever it is fed."""

    value_support = Support(10)
    reward_support = Support(5)

    def __init__(self, batch_size):
        self.hidden = torch.zeros(batch_size, 4, requires_grad=True)

    def _output(self, hidden):
        b = hidden.shape[0]
        return Output(hidden, torch.zeros(b, 21) + 0 * hidden.sum(), torch.zeros(b, 11), torch.zeros(b, NUM_ACTIONS))

    def initial_inference(self, observations):
        return self._output(self.hidden)

    def recurrent_inference(self, hidden, actions):
        return self._output(hidden)


class LinearNetwork:
    """hidden' = hidden * w; reward logits = hidden' @ r: gradients are easy to follow by hand."""

    value_support = Support(2)
    reward_support = Support(2)

    def __init__(self, batch_size, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.hidden = torch.randn(batch_size, 4, generator=generator, requires_grad=True)
        self.w = torch.randn(4, generator=generator)
        self.r = torch.randn(4, 5, generator=generator)

    def _output(self, hidden):
        b = hidden.shape[0]
        return Output(hidden, torch.zeros(b, 5), hidden @ self.r, torch.zeros(b, NUM_ACTIONS))

    def initial_inference(self, observations):
        return self._output(self.hidden)

    def recurrent_inference(self, hidden, actions):
        return self._output(hidden * self.w)


def make_batch(batch_size, unroll_steps, seed=0):
    rng = np.random.default_rng(seed)
    policies = rng.dirichlet(np.ones(NUM_ACTIONS), size=(batch_size, unroll_steps + 1))
    masks = torch.ones(batch_size, unroll_steps + 1, dtype=torch.bool)
    reward_mask = masks.clone()
    reward_mask[:, 0] = False
    return TorchBatch(
        observations=torch.zeros(batch_size, 2),
        actions=torch.zeros(batch_size, unroll_steps, dtype=torch.int64),
        target_values=torch.tensor(rng.normal(size=(batch_size, unroll_steps + 1)) * 3, dtype=torch.float32),
        target_rewards=torch.tensor(rng.normal(size=(batch_size, unroll_steps + 1)), dtype=torch.float32),
        target_policies=torch.tensor(policies, dtype=torch.float32),
        value_mask=masks.clone(),
        reward_mask=reward_mask,
        policy_mask=masks.clone(),
        weights=torch.ones(batch_size),
    )


def test_scale_gradient_is_identity_forward_and_scales_backward():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = scale_gradient(x, 0.5)
    torch.testing.assert_close(y, x.detach())
    (3 * y).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([1.5, 1.5]))


def test_cross_entropy_of_uniform_logits_is_log_of_the_bin_count():
    target = torch.tensor([[0.2, 0.8, 0.0, 0.0]])
    assert cross_entropy(torch.zeros(1, 4), target).item() == pytest.approx(math.log(4))
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = (1/4, 3/4)
    assert cross_entropy(logits, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(math.log(4))


def test_loss_parts_sum_the_root_and_the_scaled_unrolled_steps():
    unroll_steps = 4
    batch = make_batch(6, unroll_steps)
    loss = muzero_loss(ConstantNetwork(6), batch, value_loss_weight=0.25)
    # Uniform predictions: every CE is log(bins); root counts 1, each of K steps 1/K.
    assert loss.parts["value"] == pytest.approx(2 * math.log(21), rel=1e-5)
    assert loss.parts["reward"] == pytest.approx(math.log(11), rel=1e-5)  # no reward at the root
    assert loss.parts["policy"] == pytest.approx(2 * math.log(NUM_ACTIONS), rel=1e-5)
    expected_total = 0.25 * 2 * math.log(21) + math.log(11) + 2 * math.log(NUM_ACTIONS)
    assert loss.total.item() == pytest.approx(expected_total, rel=1e-5)
    assert loss.parts["total"] == pytest.approx(expected_total, rel=1e-5)


def test_masks_and_importance_weights_scale_each_example():
    batch = make_batch(2, 2)
    no_targets = replace(
        batch,
        value_mask=torch.zeros_like(batch.value_mask),
        reward_mask=torch.zeros_like(batch.reward_mask),
        policy_mask=torch.zeros_like(batch.policy_mask),
    )
    assert muzero_loss(ConstantNetwork(2), no_targets, 0.25).total.item() == 0.0
    half_weight = replace(batch, weights=torch.tensor([1.0, 0.0]))
    full = muzero_loss(ConstantNetwork(2), batch, 0.25).total.item()
    # Uniform predictions give both examples the same loss, so dropping one halves the mean.
    assert muzero_loss(ConstantNetwork(2), half_weight, 0.25).total.item() == pytest.approx(full / 2, rel=1e-6)


@pytest.mark.parametrize("unroll_steps", [1, 2, 3])
def test_gradient_into_the_dynamics_is_halved_at_every_step(unroll_steps):
    batch = make_batch(3, unroll_steps)
    only_last_reward = torch.zeros_like(batch.reward_mask)
    only_last_reward[:, -1] = True
    batch = replace(
        batch,
        value_mask=torch.zeros_like(batch.value_mask),
        reward_mask=only_last_reward,
        policy_mask=torch.zeros_like(batch.policy_mask),
    )
    network = LinearNetwork(3)
    muzero_loss(network, batch, 0.25).total.backward()

    reference = LinearNetwork(3)  # same seed, so the same parameters
    hidden = reference.hidden
    for _ in range(unroll_steps):
        hidden = hidden * reference.w
    target = reference.reward_support.scalar_to_probs(batch.target_rewards[:, -1])
    (cross_entropy(hidden @ reference.r, target).mean()).backward()

    expected = reference.hidden.grad * 0.5**unroll_steps / unroll_steps
    torch.testing.assert_close(network.hidden.grad, expected)


def test_priorities_are_root_value_errors():
    batch = make_batch(4, 1)
    loss = muzero_loss(ConstantNetwork(4), batch, 0.25)
    predicted = ConstantNetwork.value_support.logits_to_scalar(torch.zeros(1, 21)).item()  # 0 for uniform logits
    np.testing.assert_allclose(
        loss.priorities, np.abs(predicted - batch.target_values[:, 0].numpy()), rtol=1e-5, atol=1e-4
    )  # float32 through h^-1
    assert loss.priorities.shape == (4,)
