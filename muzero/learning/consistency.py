"""EfficientZero's self-supervised consistency loss (Ye et al. 2021, section 4.1).

MuZero trains its dynamics only through rewards, values and policies, so the
hidden state after K imagined steps may look nothing like the one the
representation gives the observation actually seen there; a search deep in the
model then evaluates states no head was trained on. EfficientZero adds a
SimSiam-style loss (Chen & He 2021): the dynamics output at step k, passed
through a projection and a predictor, should point the same way as the
projection of the representation of observation t+k, whose gradient is stopped.

The projection and predictor exist only for this loss: the learner trains them
with the network and keeps them in its own state (checkpoints carry them), and
the search never runs them. Layer shapes follow EfficientZero's (Linear-BN-ReLU,
twice, then Linear-BN; predictor Linear-BN-ReLU-Linear with a bottleneck), sized
by ``training.consistency_projection_size`` for networks far smaller than its Atari one.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class ConsistencyHead(nn.Module):
    """Projection and predictor over flattened hidden states of ``hidden_shape``."""

    def __init__(self, hidden_shape: tuple[int, ...], size: int):
        super().__init__()
        flat = math.prod(hidden_shape)
        self.projection = nn.Sequential(
            nn.Linear(flat, size),
            nn.BatchNorm1d(size),
            nn.ReLU(),
            nn.Linear(size, size),
            nn.BatchNorm1d(size),
            nn.ReLU(),
            nn.Linear(size, size),
            nn.BatchNorm1d(size),
        )
        bottleneck = max(size // 4, 1)
        self.predictor = nn.Sequential(
            nn.Linear(size, bottleneck), nn.BatchNorm1d(bottleneck), nn.ReLU(), nn.Linear(bottleneck, size)
        )

    def online(self, hidden: Tensor) -> Tensor:
        """The dynamics side: projected, then predicted (gradients flow)."""
        return self.predictor(self.projection(hidden.flatten(1)))

    def target(self, hidden: Tensor) -> Tensor:
        """The observation side: projected, gradient stopped."""
        with torch.no_grad():
            return self.projection(hidden.flatten(1)).detach()


def negative_cosine(online: Tensor, target: Tensor) -> Tensor:
    """(B, D), (B, D) -> (B,) in [-1, 1]: -1 where the two point the same way."""
    return -(F.normalize(online.float(), dim=1) * F.normalize(target.float(), dim=1)).sum(dim=1)
