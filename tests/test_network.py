import pytest
import torch

from muzero.config import NetworkConfig
from muzero.nn.networks import build_network


@pytest.mark.parametrize(
    "config, obs_shape, actions",
    [(NetworkConfig(kind="mlp"), (8,), 3), (NetworkConfig(kind="resnet", channels=8, num_blocks=1), (3, 3, 3), 9)],
)
def test_inference_shapes_and_hidden_range(config, obs_shape, actions):
    torch.manual_seed(0)
    network = build_network(config, obs_shape, actions)
    first = network.initial_inference(torch.randn(5, *obs_shape))
    assert first.policy_logits.shape == (5, actions)
    assert first.value_logits.shape == (5, 2 * config.value_support + 1)
    assert first.hidden.min() >= 0 and first.hidden.max() <= 1
    # Initial inference predicts reward 0 exactly.
    assert torch.allclose(network.reward_support.logits_to_scalar(first.reward_logits), torch.zeros(5), atol=1e-6)
    nxt = network.recurrent_inference(first.hidden, torch.tensor([0, 1, 2, 0, 1]))
    assert nxt.hidden.shape == first.hidden.shape
    assert nxt.reward_logits.shape == (5, 2 * config.reward_support + 1)
    assert nxt.hidden.min() >= 0 and nxt.hidden.max() <= 1


def test_dynamics_depend_on_the_action():
    torch.manual_seed(0)
    network = build_network(NetworkConfig(), (4,), 2)
    hidden = network.initial_inference(torch.randn(1, 4)).hidden.repeat(2, 1)
    out = network.recurrent_inference(hidden, torch.tensor([0, 1]))
    assert not torch.allclose(out.hidden[0], out.hidden[1])


def test_float_actions_are_rejected():
    network = build_network(NetworkConfig(), (4,), 2)
    hidden = network.initial_inference(torch.randn(2, 4)).hidden
    with pytest.raises(TypeError, match="actions"):
        network.recurrent_inference(hidden, torch.tensor([0.0, 1.0]))


def test_resnet_needs_planes():
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        build_network(NetworkConfig(kind="resnet"), (4,), 2)
