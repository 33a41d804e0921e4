"""Scalars as categorical distributions over a support (MuZero, Appendix F).

Values and rewards are squashed with the invertible transform
h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x  (Pohlen et al. 2018), then
represented as a "two-hot" distribution over integer bins [-n, n]. The network
predicts logits over those bins; the scalar is h^-1 of their expectation.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-3


def h(x: Tensor, eps: float = EPS) -> Tensor:
    return torch.sign(x) * (torch.sqrt(torch.abs(x) + 1) - 1) + eps * x


def h_inverse(y: Tensor, eps: float = EPS) -> Tensor:
    # Closed form of the inverse (solve the quadratic in sqrt(|x| + 1)).
    root = (torch.sqrt(1 + 4 * eps * (torch.abs(y) + 1 + eps)) - 1) / (2 * eps)
    return torch.sign(y) * (root * root - 1)


class Support:
    """A categorical support of 2n+1 integer bins over [-n, n] in transformed space."""

    def __init__(self, half_width: int):
        if half_width < 1:
            raise ValueError(f"support half_width must be >= 1, got {half_width}")
        self.half_width = half_width
        self.size = 2 * half_width + 1
        self._bins_cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def bins(self, like: Tensor) -> Tensor:
        key = (like.device, like.dtype)
        if key not in self._bins_cache:
            self._bins_cache[key] = torch.arange(
                -self.half_width, self.half_width + 1, device=like.device, dtype=like.dtype
            )
        return self._bins_cache[key]

    def scalar_to_probs(self, x: Tensor) -> Tensor:
        """(...,) raw scalars -> (..., size) two-hot probabilities of h(x)."""
        y = h(x.float()).clamp(-self.half_width, self.half_width)
        low = y.floor()
        upper_weight = y - low
        low_index = (low + self.half_width).long()
        high_index = (low_index + 1).clamp(max=self.size - 1)
        probs = torch.zeros(*x.shape, self.size, device=x.device, dtype=torch.float32)
        probs.scatter_(-1, low_index.unsqueeze(-1), (1 - upper_weight).unsqueeze(-1))
        probs.scatter_add_(-1, high_index.unsqueeze(-1), upper_weight.unsqueeze(-1))
        return probs

    def probs_to_scalar(self, probs: Tensor) -> Tensor:
        return h_inverse(probs @ self.bins(probs))

    def logits_to_scalar(self, logits: Tensor) -> Tensor:
        """(..., size) logits -> (...,) raw scalars."""
        return self.probs_to_scalar(torch.softmax(logits.float(), dim=-1))
