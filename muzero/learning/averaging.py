"""Polyak averaging of a network's weights (``training.weight_average_decay``).

The averaged copy is what plays, is evaluated and is checkpointed; the optimizer keeps
training the original. Each update moves the average ``1 - d`` of the way to the trained
weights, with ``d = min(decay, (1 + t) / (10 + t))`` at update ``t`` so that the first
updates are not averaged with the random initial weights for thousands of steps (the
warm-up of TensorFlow's ``ExponentialMovingAverage(num_updates=...)``). Buffers (batch
norm's running statistics) are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def average_decay_at(update: int, decay: float) -> float:
    """The decay used by update number ``update`` (0-based)."""
    return min(decay, (1.0 + update) / (10.0 + update))


class WeightAverage:
    def __init__(self, network: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"weight average decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.network = copy.deepcopy(network).eval()
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module, update: int) -> None:
        """Fold in ``network``'s weights after its update number ``update``."""
        weight = 1.0 - average_decay_at(update, self.decay)
        for averaged, trained in zip(self.network.parameters(), network.parameters(), strict=True):
            averaged.lerp_(trained.detach(), weight)
        for buffer, source in zip(self.network.buffers(), network.buffers(), strict=True):
            buffer.copy_(source)
