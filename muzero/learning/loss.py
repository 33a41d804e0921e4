"""The K-step unrolled MuZero loss (Schrittwieser et al. 2020, Appendix G and pseudocode).

    l = sum_k c_k * [ w_v * CE(value_k, twohot(z_k)) + CE(reward_k, twohot(u_k)) + CE(policy_k, pi_k) ]

with c_0 = 1 and c_k = 1/K for the unrolled steps, so the total gradient of the
dynamics stays the same whatever K is. The hidden state entering the dynamics
function is gradient-scaled by 1/2 ("we also scale the gradient at the start of
the dynamics function by 1/2", Appendix G). Each example is weighted by its
importance weight; masks drop targets that do not exist (see targets.py).
Networks with KataGo's auxiliary heads (muzero/nn/board.py) add, at the root, an
ownership cross-entropy and a squared score error where the batch knows the
episode's end. With a consistency head (consistency.py), each unrolled step adds
w_c * c_k * (negative cosine between the dynamics output and the representation
of the observation seen there), where that observation exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from muzero.learning.batch import TorchBatch
from muzero.learning.consistency import ConsistencyHead, negative_cosine
from muzero.nn.support import Support, h

HIDDEN_GRADIENT_SCALE = 0.5


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """Identity in the forward pass; multiplies the gradient by ``scale`` in the backward pass."""
    return x * scale + x.detach() * (1.0 - scale)


def cross_entropy(logits: Tensor, target_probs: Tensor) -> Tensor:
    """(..., C) logits and target distributions -> (...,) cross-entropy."""
    return -(target_probs * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1)


@dataclass(frozen=True)
class LossOutput:
    total: Tensor  # scalar, differentiable
    parts: dict[str, float]  # value (unweighted by value_loss_weight), reward, policy, total,
    # value_targets_clipped, reward_targets_clipped (see clipped_fraction)
    priorities: np.ndarray  # (B,) |predicted root value - value target|


def clipped_fraction(support: Support, targets: Tensor, mask: Tensor) -> float:
    """The share of the targets under ``mask`` whose h(x) lies outside ``support`` (0 if none are masked).

    ``scalar_to_probs`` clamps such a target to the edge bin, so the network is
    trained towards a value it cannot represent; counting them is how a support
    too narrow for the env shows (network.value_support / reward_support)."""
    outside = (h(targets.detach().float()).abs() > support.half_width + 1e-4) & mask.bool()
    masked = int(mask.bool().sum())
    return float(outside.sum()) / masked if masked else 0.0


def auxiliary_loss(
    network, hidden: Tensor, batch: TorchBatch, ownership_weight: float, score_weight: float
) -> tuple[Tensor | None, dict[str, float]]:
    """KataGo's ownership and score losses at the root, per example (B,), weighted and summed;
    None when the network has no such heads or the batch no such targets."""
    auxiliary = getattr(network, "auxiliary", None)
    if auxiliary is None or batch.target_ownership is None or batch.ownership_mask is None:
        return None, {}
    predicted = auxiliary(hidden)
    if not predicted:
        return None, {}
    mask = batch.ownership_mask.float()
    target = batch.target_ownership.float()
    loss = torch.zeros_like(mask)
    parts = {}
    if "ownership" in predicted:
        # Cross-entropy of (1 + o) / 2 against (1 + t) / 2, averaged over the points.
        p = ((1 + predicted["ownership"].float()) / 2).clamp(1e-6, 1 - 1e-6)
        q = (1 + target) / 2
        per_point = -(q * torch.log(p) + (1 - q) * torch.log(1 - p))
        ownership = per_point.mean(dim=1) * mask
        loss = loss + ownership_weight * ownership
        parts["ownership"] = float((ownership.sum() / mask.sum().clamp(min=1)).detach())
    if "score" in predicted:
        score = (predicted["score"].float() - target.mean(dim=1)).square() * mask
        loss = loss + score_weight * score
        parts["score"] = float((score.sum() / mask.sum().clamp(min=1)).detach())
    return loss, parts


def rules_loss(rules_logits: Tensor | None, batch: TorchBatch, k: int) -> Tensor | None:
    """(B,) binary cross-entropy of ``network.rules_heads``' logits (B, A + 1) at unrolled
    position k: the legal moves (averaged over the actions) plus the episode's end, masked
    where unknown; None when the network has no such heads (``rules_logits`` None)."""
    if rules_logits is None:
        return None
    if batch.target_legal is None or batch.target_terminal is None or batch.rules_mask is None:
        raise ValueError("network.rules_heads: the batch has no rules targets (batch_from_sample(rules=True))")
    logits = rules_logits.float()
    per_action = F.binary_cross_entropy_with_logits(logits[:, :-1], batch.target_legal[:, k].float(), reduction="none")
    ended = F.binary_cross_entropy_with_logits(logits[:, -1], batch.target_terminal[:, k].float(), reduction="none")
    legal = per_action.mean(dim=1)
    return (legal + ended) * batch.rules_mask[:, k].float()


def consistency_loss(network, head: ConsistencyHead, unrolled: list[Tensor], batch: TorchBatch) -> tuple[Tensor, float]:
    """(B,) per-example sum over the unrolled steps of c_k * negative cosine, masked where
    step t+k has no observation, and the masked mean similarity (for the logs: 1 is perfect)."""
    if batch.next_observations is None or batch.next_observation_mask is None:
        raise ValueError(
            "the consistency loss needs batches with next_observations (make_batch(next_observations=True))"
        )
    batch_size, unroll_steps = batch.actions.shape
    mask = batch.next_observation_mask.bool()
    if tuple(mask.shape) != (batch_size, unroll_steps):
        raise ValueError(f"next_observation_mask: expected shape {(batch_size, unroll_steps)}, got {tuple(mask.shape)}")
    loss = torch.zeros(batch_size, device=mask.device)
    if not mask.any():
        return loss, 0.0
    with torch.no_grad():
        seen = network.initial_inference(batch.next_observations[mask]).hidden  # (M, *hidden), M masked steps
    online = torch.stack(unrolled, dim=1)[mask]  # (M, *hidden), in the same (b, k) order
    per_step = negative_cosine(head.online(online), head.target(seen))
    rows = torch.nonzero(mask, as_tuple=True)[0]
    loss = loss.index_add(0, rows, per_step / unroll_steps)
    return loss, float(-per_step.detach().mean())


def muzero_loss(
    network,
    batch: TorchBatch,
    value_loss_weight: float,
    ownership_weight: float = 0.0,
    score_weight: float = 0.0,
    consistency: tuple[ConsistencyHead, float] | None = None,
    rules_weight: float = 1.0,
) -> LossOutput:
    """Unroll ``network`` K steps along ``batch.actions`` and score it against the targets.

    Each part is the importance-weighted batch mean of its per-example sum over
    the K + 1 positions (scaled by c_k); total = value_loss_weight * value +
    reward + policy. ``value_targets_clipped`` and ``reward_targets_clipped`` are the
    fractions of the masked targets outside their support (clipped to its edge).
    ``consistency`` (head, weight) adds the consistency loss (parts ``consistency``, its
    weighted mean, and ``consistency_similarity``, the mean cosine similarity). A network
    with rules heads adds ``rules_weight`` x their loss at every position (part ``rules``).
    """
    batch_size, unroll_steps = batch.actions.shape
    if batch.target_values.shape != (batch_size, unroll_steps + 1):
        raise ValueError(
            f"target_values: expected shape {(batch_size, unroll_steps + 1)}, got {tuple(batch.target_values.shape)}"
        )
    value_support, reward_support = network.value_support, network.reward_support
    value_probs = value_support.scalar_to_probs(batch.target_values)  # (B, K+1, bins)
    reward_probs = reward_support.scalar_to_probs(batch.target_rewards)
    value_mask = batch.value_mask.float()
    reward_mask = batch.reward_mask.float()
    policy_mask = batch.policy_mask.float()

    output = network.initial_inference(batch.observations)
    root_value = value_support.logits_to_scalar(output.value_logits.detach())
    value_loss = cross_entropy(output.value_logits, value_probs[:, 0]) * value_mask[:, 0]
    # Initial inference predicts no reward (its logits are fixed): reward_mask[:, 0] is False.
    reward_loss = cross_entropy(output.reward_logits, reward_probs[:, 0]) * reward_mask[:, 0]
    policy_loss = cross_entropy(output.policy_logits, batch.target_policies[:, 0]) * policy_mask[:, 0]

    hidden = output.hidden
    auxiliary, auxiliary_parts = auxiliary_loss(network, hidden, batch, ownership_weight, score_weight)
    rules = rules_loss(output.rules_logits, batch, 0)
    step_scale = 1.0 / unroll_steps
    unrolled: list[Tensor] = []
    for k in range(1, unroll_steps + 1):
        hidden = scale_gradient(hidden, HIDDEN_GRADIENT_SCALE)
        output = network.recurrent_inference(hidden, batch.actions[:, k - 1])
        hidden = output.hidden
        unrolled.append(hidden)
        step_rules = rules_loss(output.rules_logits, batch, k)
        if rules is not None and step_rules is not None:
            rules = rules + step_scale * step_rules
        value_loss = value_loss + step_scale * cross_entropy(output.value_logits, value_probs[:, k]) * value_mask[:, k]
        reward_loss = (
            reward_loss + step_scale * cross_entropy(output.reward_logits, reward_probs[:, k]) * reward_mask[:, k]
        )
        policy_loss = (
            policy_loss
            + step_scale * cross_entropy(output.policy_logits, batch.target_policies[:, k]) * policy_mask[:, k]
        )

    weights = batch.weights.float()
    value_mean = (weights * value_loss).mean()
    reward_mean = (weights * reward_loss).mean()
    policy_mean = (weights * policy_loss).mean()
    total = value_loss_weight * value_mean + reward_mean + policy_mean
    if auxiliary is not None:
        total = total + (weights * auxiliary).mean()
    rules_parts = {}
    if rules is not None:
        rules_mean = (weights * rules).mean()
        total = total + rules_weight * rules_mean
        rules_parts = {"rules": float(rules_mean.detach())}
    consistency_parts = {}
    if consistency is not None:
        head, weight = consistency
        per_example, similarity = consistency_loss(network, head, unrolled, batch)
        consistency_mean = (weights * per_example).mean()
        total = total + weight * consistency_mean
        consistency_parts = {"consistency": float(consistency_mean.detach()), "consistency_similarity": similarity}
    priorities = (root_value - batch.target_values[:, 0].float()).abs().cpu().numpy()
    parts = {
        "value": float(value_mean.detach()),
        "reward": float(reward_mean.detach()),
        "policy": float(policy_mean.detach()),
        "total": float(total.detach()),
        "value_targets_clipped": clipped_fraction(value_support, batch.target_values, batch.value_mask),
        "reward_targets_clipped": clipped_fraction(reward_support, batch.target_rewards, batch.reward_mask),
        **auxiliary_parts,
        **consistency_parts,
        **rules_parts,
    }
    return LossOutput(total=total, parts=parts, priorities=priorities)
