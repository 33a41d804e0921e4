"""A fully convolutional network for Go-like boards, after KataGo (Wu, 2019, arXiv:1902.10565).

Every weight is a convolution or acts on pooled channels, so one network runs on
any board size: the same checkpoint can play 7x7 and 9x9. What it takes from KataGo:

- **Global pooling.** Every second residual block pools a quarter of its channels
  over the board (mean, mean scaled by the board's width, max) and turns them into
  a bias for the others, so a point can see the whole board after one block (ko
  threats, which side is ahead), not only a 3x3 neighbourhood per layer.
- **Policy head.** One logit per point from 1x1 convolutions whose channels are
  biased by the pooled board, and the pass logit from the pooled board alone.
- **Value head.** Pooled features (mean, scaled mean, scaled mean squared), then a
  small MLP: the value (and the reward of the dynamics) do not depend on the size.
- **Auxiliary heads** (``network.ownership_head``, ``network.score_head``): who owns each
  point at the end of the game, and the final margin, which KataGo measured among its
  largest speed-ups of learning; trained at the root only.

The scale terms use KataGo's (width - 14) / 10 and ((width - 14)^2 / 100 - 0.1):
near zero on a 19x19 board, they tell a network trained on several sizes which
one it is on.

Actions are the points of the board, row-major as the observation planes lie,
plus an optional pass last (``num_actions`` is H*W or H*W + 1). In the learned
dynamics, the action enters as two planes: the point played, and a constant plane
that is one for a pass.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from muzero.config import NetworkConfig
from muzero.nn.networks import MuZeroNetwork, ResidualBlock, conv_stem


def pooled_features(x: Tensor, squared_scale: bool = False) -> Tensor:
    """(B, C, H, W) -> (B, 3C): mean, mean * (W - 14) / 10, and max (or, for value
    heads, mean * ((W - 14)^2 / 100 - 0.1))."""
    width = x.shape[-1]
    mean = x.mean(dim=(2, 3))
    scale = (width - 14) / 10.0
    third = mean * (scale * scale - 0.1) if squared_scale else x.amax(dim=(2, 3))
    return torch.cat([mean, mean * scale, third], dim=1)


class GlobalPoolingBias(nn.Module):
    """Pools ``pooled`` channels over the board into one bias per channel of ``biased``."""

    def __init__(self, pooled: int, biased: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(pooled)
        self.linear = nn.Linear(3 * pooled, biased)

    def forward(self, x: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` plus the bias, and the pooled features of ``g`` it came from (B, 3 * pooled)."""
        pooled = pooled_features(torch.relu(self.norm(g)))
        return x + self.linear(pooled)[:, :, None, None], pooled


class GlobalPoolingBlock(nn.Module):
    """A residual block whose first convolution's output is partly pooled into a bias
    for the rest (KataGo's global pooling residual block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.pooled = max(1, channels // 4)
        regular = channels - self.pooled
        if regular < 1:
            raise ValueError(f"network.channels: a global pooling block needs at least 2 channels, got {channels}")
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.pool = GlobalPoolingBias(self.pooled, regular)
        self.norm1 = nn.BatchNorm2d(regular)
        self.conv2 = nn.Conv2d(regular, channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1(x)
        regular, pooled = y[:, : -self.pooled], y[:, -self.pooled :]
        y = torch.relu(self.norm1(self.pool(regular, pooled)[0]))
        return torch.relu(x + self.norm2(self.conv2(y)))


def tower(in_channels: int, channels: int, blocks: int) -> nn.Sequential:
    """A stem and ``blocks`` residual blocks, every second one with global pooling."""
    body: list[nn.Module] = [conv_stem(in_channels, channels)]
    for i in range(blocks):
        body.append(GlobalPoolingBlock(channels) if i % 2 == 1 else ResidualBlock(channels))
    return nn.Sequential(*body)


class BoardPolicyHead(nn.Module):
    def __init__(self, channels: int, head: int, has_pass: bool):
        super().__init__()
        self.has_pass = has_pass
        self.point_conv = nn.Conv2d(channels, head, 1, bias=False)
        self.pool_conv = nn.Conv2d(channels, head, 1, bias=False)
        self.pool = GlobalPoolingBias(head, head)
        self.norm = nn.BatchNorm2d(head)
        self.logit = nn.Conv2d(head, 1, 1)
        self.pass_logit = nn.Linear(3 * head, 1) if has_pass else None

    def forward(self, x: Tensor) -> Tensor:
        biased, pooled = self.pool(self.point_conv(x), self.pool_conv(x))
        points = self.logit(torch.relu(self.norm(biased))).flatten(1)
        if self.pass_logit is None:
            return points
        return torch.cat([points, self.pass_logit(pooled)], dim=1)


class BoardScalarHead(nn.Module):
    """1x1 convolution, KataGo's value pooling, then an MLP to ``out`` logits."""

    def __init__(self, channels: int, head: int, out: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(channels, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU())
        self.mlp = nn.Sequential(nn.Linear(3 * head, head), nn.ReLU(), nn.Linear(head, out))

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(pooled_features(self.conv(x), squared_scale=True))


class BoardNetwork(MuZeroNetwork):
    """For board planes (C, H, W) whose actions are the points (plus a pass)."""

    def __init__(self, config: NetworkConfig, observation_shape: tuple[int, ...], num_actions: int):
        super().__init__(config, num_actions)
        if len(observation_shape) != 3:
            raise ValueError(f"network.kind = 'board' needs (C, H, W) observations, got shape {observation_shape}")
        in_channels, height, width = observation_shape
        points = height * width
        if num_actions not in (points, points + 1):
            raise ValueError(
                f"network.kind = 'board' needs one action per point of the {height}x{width} board "
                f"({points}), plus at most a pass; this env has {num_actions} actions (use kind = 'resnet')"
            )
        self.board_shape = (height, width)
        self.has_pass = num_actions == points + 1
        channels, blocks, head = config.channels, config.num_blocks, config.head_hidden_size
        self.representation = tower(in_channels, channels, blocks)
        self.dynamics_body = tower(channels + 2, channels, blocks)
        self.policy_head = BoardPolicyHead(channels, head, self.has_pass)
        self.value_head = BoardScalarHead(channels, head, self.value_support.size)
        self.reward_head = BoardScalarHead(channels, head, self.reward_support.size)
        self.ownership_head = (
            nn.Sequential(
                nn.Conv2d(channels, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU(), nn.Conv2d(head, 1, 1)
            )
            if config.ownership_head
            else None
        )
        self.score_head = BoardScalarHead(channels, head, 1) if config.score_head else None

    def represent(self, observations: Tensor) -> Tensor:
        return self.representation(observations.float())

    def action_planes(self, actions: Tensor, like: Tensor) -> Tensor:
        """(B,) actions -> (B, 2, H, W): the point played, and all ones for a pass."""
        height, width = like.shape[-2:]
        points = height * width
        planes = torch.zeros(actions.shape[0], 2, points, device=like.device, dtype=like.dtype)
        rows = torch.arange(actions.shape[0], device=like.device)
        on_board = actions < points
        planes[rows[on_board], 0, actions[on_board]] = 1.0
        planes[rows[~on_board], 1] = 1.0
        return planes.view(-1, 2, height, width)

    def dynamics(self, hidden: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        next_hidden = self.dynamics_body(torch.cat([hidden, self.action_planes(actions, hidden)], dim=1))
        return next_hidden, self.reward_head(next_hidden)

    def predict(self, hidden: Tensor) -> tuple[Tensor, Tensor, None]:
        return self.policy_head(hidden), self.value_head(hidden), None  # Go searches its true rules

    def auxiliary(self, hidden: Tensor) -> dict[str, Tensor]:
        """KataGo's auxiliary predictions at ``hidden`` (the heads switched on): "ownership"
        (B, H*W) in [-1, 1] for the player to move, "score" (B,) its final area margin over
        the board's points, in [-1, 1]."""
        out = {}
        if self.ownership_head is not None:
            out["ownership"] = torch.tanh(self.ownership_head(hidden).flatten(1))
        if self.score_head is not None:
            out["score"] = torch.tanh(self.score_head(hidden)[:, 0])
        return out
