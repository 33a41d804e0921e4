"""MuZero's three functions: representation h, dynamics g, prediction f.

Three bodies share one interface: an MLP for flat observations (classic control),
a ResNet for image-like planes (board games, Atari) and, in ``board.py``, a fully
convolutional KataGo-style network for Go-like boards. Hidden states are
min-max scaled to [0, 1] per example (MuZero, Appendix G), which keeps the
dynamics' input on the same scale as the representation's output however far
the model is unrolled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from muzero.config import NetworkConfig
from muzero.nn.support import Support


@dataclass
class InferenceOutput:
    hidden: Tensor  # (B, *hidden_shape), in [0, 1]
    value_logits: Tensor  # (B, value bins)
    reward_logits: Tensor  # (B, reward bins); initial inference: the logits of reward 0
    policy_logits: Tensor  # (B, A)
    rules_logits: Tensor | None = None
    """With network.rules_heads (B, A + 1): per action whether it is legal, then whether the
    episode has ended, as logits; None without."""


def scale_hidden(hidden: Tensor) -> Tensor:
    """Min-max scale each example's hidden state to [0, 1]."""
    flat = hidden.flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    high = flat.max(dim=1, keepdim=True).values
    scaled = (flat - low) / (high - low).clamp(min=1e-5)
    return scaled.view_as(hidden)


def mlp(sizes: list[int], final_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2 or final_activation:
            layers += [nn.LayerNorm(fan_out), nn.ReLU()]
    return nn.Sequential(*layers)


class MuZeroNetwork(nn.Module):
    """Common inference API; subclasses provide the bodies and heads."""

    def __init__(self, config: NetworkConfig, num_actions: int):
        super().__init__()
        self.config = config
        self.num_actions = num_actions
        self.value_support = Support(config.value_support)
        self.reward_support = Support(config.reward_support)
        self.has_rules_heads = config.rules_heads
        """network.rules_heads: every inference also predicts the legal moves and the episode's
        end (``InferenceOutput.rules_logits``)."""

    # bodies, implemented by subclasses
    def represent(self, observations: Tensor) -> Tensor:
        raise NotImplementedError

    def dynamics(self, hidden: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def predict(self, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """(policy logits, value logits, rules logits or None) of (scaled) hidden states."""
        raise NotImplementedError

    def initial_inference(self, observations: Tensor) -> InferenceOutput:
        hidden = scale_hidden(self.represent(observations))
        policy_logits, value_logits, rules_logits = self.predict(hidden)
        reward_logits = self._zero_reward_logits(hidden.shape[0], hidden)
        return InferenceOutput(hidden, value_logits, reward_logits, policy_logits, rules_logits)

    def recurrent_inference(self, hidden: Tensor, actions: Tensor) -> InferenceOutput:
        if actions.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"actions must be an integer tensor, got {actions.dtype}")
        next_hidden, reward_logits = self.dynamics(hidden, actions.long())
        next_hidden = scale_hidden(next_hidden)
        policy_logits, value_logits, rules_logits = self.predict(next_hidden)
        return InferenceOutput(next_hidden, value_logits, reward_logits, policy_logits, rules_logits)

    def _zero_reward_logits(self, batch: int, like: Tensor) -> Tensor:
        logits = torch.full((batch, self.reward_support.size), -1e4, device=like.device, dtype=like.dtype)
        logits[:, self.config.reward_support] = 0.0  # all mass on the bin of reward 0
        return logits


class MLPNetwork(MuZeroNetwork):
    """For flat observations: (frame_stack * D,).

    The prediction heads (policy, value and, with rules heads, rules) are two-layer MLPs on
    the hidden state whose first layers are one matrix: on a CPU a search's network call is
    a few dozen small operations, each costing about as much as its arithmetic, so one
    matrix product instead of three is what keeps the rules heads cheap to the search.
    """

    def __init__(self, config: NetworkConfig, observation_shape: tuple[int, ...], num_actions: int):
        super().__init__(config, num_actions)
        width, depth = config.hidden_size, config.num_layers
        obs_size = math.prod(observation_shape)
        self.representation = mlp([obs_size] + [width] * depth + [width])
        self.dynamics_body = mlp([width + num_actions] + [width] * depth + [width])
        head = config.head_hidden_size
        self.reward_head = nn.Sequential(nn.Linear(width, head), nn.ReLU(), nn.Linear(head, self.reward_support.size))
        heads = 3 if config.rules_heads else 2
        self.prediction_hidden = nn.Linear(width, heads * head)
        """The first layers of the policy, value and rules heads, in that order, stacked."""
        self.policy_out = nn.Linear(head, num_actions)
        self.value_out = nn.Linear(head, self.value_support.size)
        self.rules_out = nn.Linear(head, num_actions + 1) if config.rules_heads else None
        self.register_load_state_dict_pre_hook(_stack_per_head_layers)

    def represent(self, observations: Tensor) -> Tensor:
        return self.representation(observations.flatten(1).float())

    def dynamics(self, hidden: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        one_hot = nn.functional.one_hot(actions, self.num_actions).to(hidden.dtype)
        next_hidden = self.dynamics_body(torch.cat([hidden, one_hot], dim=1))
        return next_hidden, self.reward_head(next_hidden)

    def predict(self, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        features = torch.relu(self.prediction_hidden(hidden)).split(self.config.head_hidden_size, dim=1)
        rules = self.rules_out(features[2]) if self.rules_out is not None else None
        return self.policy_out(features[0]), self.value_out(features[1]), rules


def _stack_per_head_layers(module: nn.Module, state_dict: dict, prefix: str, *_) -> None:
    """Load a checkpoint of the earlier MLP layout (one ``policy_head``, ``value_head`` and
    ``rules_head.body`` Sequential each): stack their first layers into
    ``prediction_hidden``, rename their second ones. The arithmetic is the same."""
    firsts = [f"{prefix}policy_head.0.", f"{prefix}value_head.0.", f"{prefix}rules_head.body.0."]
    if f"{firsts[0]}weight" not in state_dict:
        return
    for kind in ("weight", "bias"):
        parts = [state_dict.pop(f"{first}{kind}") for first in firsts if f"{first}{kind}" in state_dict]
        state_dict[f"{prefix}prediction_hidden.{kind}"] = torch.cat(parts)
        for old, new in (
            ("policy_head.2", "policy_out"),
            ("value_head.2", "value_out"),
            ("rules_head.body.2", "rules_out"),
        ):
            if f"{prefix}{old}.{kind}" in state_dict:
                state_dict[f"{prefix}{new}.{kind}"] = state_dict.pop(f"{prefix}{old}.{kind}")


class RulesHead(nn.Module):
    """Which actions are legal and whether the episode has ended, from a hidden state
    (flattened): the rules a search inside the learned model would otherwise not know.
    Logits (B, A + 1): per action, then the end."""

    def __init__(self, hidden_size: int, head: int, num_actions: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(hidden_size, head), nn.ReLU(), nn.Linear(head, num_actions + 1))

    def forward(self, hidden: Tensor) -> Tensor:
        return self.body(hidden.flatten(1))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(x + self.norm2(self.conv2(y)))


def conv_stem(in_channels: int, channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
    )


class PooledHead(nn.Module):
    """Global average pooling, then a small MLP: size-independent scalar heads."""

    def __init__(self, channels: int, hidden: int, out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.mean(dim=(2, 3)))


class ResNetNetwork(MuZeroNetwork):
    """For planes (C, H, W): a residual tower per function, global-pooling heads.

    The action enters the dynamics as one learned plane per action (an
    embedding of size H*W), so one body serves any board size and action set.
    """

    def __init__(self, config: NetworkConfig, observation_shape: tuple[int, ...], num_actions: int):
        super().__init__(config, num_actions)
        if len(observation_shape) != 3:
            raise ValueError(f"resnet needs (C, H, W) observations, got shape {observation_shape}")
        in_channels, height, width = observation_shape
        channels, blocks, head = config.channels, config.num_blocks, config.head_hidden_size
        self.board_shape = (height, width)
        self.representation = nn.Sequential(
            conv_stem(in_channels, channels), *[ResidualBlock(channels) for _ in range(blocks)]
        )
        self.action_planes = nn.Embedding(num_actions, height * width)
        self.dynamics_body = nn.Sequential(
            conv_stem(channels + 1, channels), *[ResidualBlock(channels) for _ in range(blocks)]
        )
        self.reward_head = PooledHead(channels, head, self.reward_support.size)
        self.value_head = PooledHead(channels, head, self.value_support.size)
        self.policy_conv = nn.Sequential(nn.Conv2d(channels, 2, 1), nn.ReLU())
        self.policy_out = nn.Linear(2 * height * width + channels, num_actions)
        self.rules_head = RulesHead(channels * height * width, head, num_actions) if config.rules_heads else None

    def represent(self, observations: Tensor) -> Tensor:
        return self.representation(observations.float())

    def dynamics(self, hidden: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        plane = self.action_planes(actions).view(-1, 1, *self.board_shape).to(hidden.dtype)
        next_hidden = self.dynamics_body(torch.cat([hidden, plane], dim=1))
        return next_hidden, self.reward_head(next_hidden)

    def predict(self, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        local = self.policy_conv(hidden).flatten(1)
        pooled = hidden.mean(dim=(2, 3))
        rules = self.rules_head(hidden) if self.rules_head is not None else None
        return self.policy_out(torch.cat([local, pooled], dim=1)), self.value_head(hidden), rules


def build_network(config: NetworkConfig, observation_shape: tuple[int, ...], num_actions: int) -> MuZeroNetwork:
    """The network for (already frame-stacked) observations of ``observation_shape``."""
    if num_actions < 1:
        raise ValueError(f"num_actions must be >= 1, got {num_actions}")
    network: MuZeroNetwork
    if config.kind == "mlp":
        network = MLPNetwork(config, tuple(observation_shape), num_actions)
    elif config.kind == "resnet":
        network = ResNetNetwork(config, tuple(observation_shape), num_actions)
    elif config.kind == "board":
        from muzero.nn.board import BoardNetwork  # it builds on this module's blocks

        network = BoardNetwork(config, tuple(observation_shape), num_actions)
    else:
        raise ValueError(f"network.kind: unknown body {config.kind!r}")
    return network


def hidden_shape(network: MuZeroNetwork, observation_shape: tuple[int, ...], device=None) -> tuple[int, ...]:
    """The shape of one example's hidden state: the network run once on a zero observation
    of (stacked) ``observation_shape``, in eval mode, its mode restored after."""
    was_training = network.training
    network.eval()
    with torch.no_grad():
        hidden = network.initial_inference(torch.zeros((1, *observation_shape), device=device)).hidden
    network.train(was_training)
    return tuple(hidden.shape[1:])
