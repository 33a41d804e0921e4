"""The learner's update: optimizer, learning-rate warm-up, gradient clipping.

Optimizer: AdamW (Loshchilov & Hutter 2019), weight decay decoupled from the
adaptive step and applied only to weight matrices and kernels (tensors with 2+
axes), not to biases or normalisation parameters. The MuZero paper used SGD with
momentum and L2 1e-4 on large batches; Adam converges much faster on the small
batches and networks local mode runs, and decoupled decay keeps
``training.weight_decay`` meaning the same at any learning rate.

Learning rate: linear warm-up from lr / warmup to lr over ``lr_warmup_steps``,
then constant, or with ``lr_decay_steps`` a half cosine down to
``lr * lr_final_fraction`` over that many steps. It is a pure function of the
step counter, so the only state to checkpoint is the optimizer's moments and
the counter.
"""

from __future__ import annotations

import copy
import math
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from muzero.config import TrainingConfig
from muzero.learning.averaging import WeightAverage
from muzero.learning.batch import Batch, TorchBatch
from muzero.learning.consistency import ConsistencyHead
from muzero.learning.loss import muzero_loss
from muzero.nn.networks import MuZeroNetwork, hidden_shape


def learning_rate_at(step: int, config: TrainingConfig) -> float:
    """The learning rate of update number ``step`` (0-based)."""
    warmup = config.lr_warmup_steps
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    if config.lr_decay_steps <= 0:
        return config.learning_rate
    progress = min(1.0, (step - warmup) / config.lr_decay_steps)
    floor = config.lr_final_fraction
    return config.learning_rate * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


class Trainer:
    """Owns the optimizer of ``network`` and applies one update per :meth:`train_step`."""

    def __init__(self, network: nn.Module, config: TrainingConfig, observation_shape: tuple[int, ...] | None = None):
        """``observation_shape`` (stacked) sizes the consistency head; needed only with
        ``training.consistency_loss_weight > 0``."""
        config.validate()
        self.network = network
        self.config = config
        self.device = torch.device(config.device)
        self.network.to(self.device)
        self.consistency: ConsistencyHead | None = None
        parameters = list(network.parameters())
        if config.consistency_loss_weight > 0:
            if observation_shape is None:
                raise ValueError("training.consistency_loss_weight > 0: the trainer needs the observation shape")
            shape = hidden_shape(cast(MuZeroNetwork, network), tuple(observation_shape), self.device)
            self.consistency = ConsistencyHead(shape, config.consistency_projection_size).to(self.device)
            parameters += list(self.consistency.parameters())
        decayed = [p for p in parameters if p.ndim >= 2]
        not_decayed = [p for p in parameters if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decayed, "weight_decay": config.weight_decay}, {"params": not_decayed, "weight_decay": 0.0}],
            lr=learning_rate_at(0, config),
        )
        self.average = WeightAverage(network, config.weight_average_decay) if config.weight_average_decay else None
        self.step = 0

    @property
    def model(self) -> nn.Module:
        """The network that plays and is checkpointed: the weight average, or the trained one."""
        return self.network if self.average is None else self.average.network

    def train_step(self, batch: Batch | TorchBatch) -> dict[str, Any]:
        """One update. Returns floats value, reward, policy, total, grad_norm, learning_rate,
        and priorities (B,) numpy for the replay store."""
        if isinstance(batch, Batch):
            batch = batch.to_torch(self.device)
        learning_rate = learning_rate_at(self.step, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        self.network.train()
        config = self.config
        consistency = None
        if self.consistency is not None:
            self.consistency.train()
            consistency = (self.consistency, config.consistency_loss_weight)
        loss = muzero_loss(
            self.network,
            batch,
            config.value_loss_weight,
            config.ownership_loss_weight,
            config.score_loss_weight,
            consistency=consistency,
            rules_weight=config.rules_loss_weight,
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for group in self.optimizer.param_groups for p in group["params"]], self.config.max_grad_norm
        )
        self.optimizer.step()
        if self.average is not None:
            self.average.update(self.network, self.step)
        self.step += 1
        return {
            **loss.parts,
            "grad_norm": float(grad_norm),
            "learning_rate": learning_rate,
            "priorities": loss.priorities,
        }

    # --- checkpointable state: tensors plus JSON-able values, never pickled ---------

    def state_dict(self) -> dict[str, Any]:
        """{"tensors": {name: Tensor}, "meta": JSON-able dict} of the optimizer and step."""
        optimizer_state = self.optimizer.state_dict()
        tensors: dict[str, torch.Tensor] = {}
        scalars: dict[str, dict[str, Any]] = {}
        for param_index, state in optimizer_state["state"].items():
            for name, value in state.items():
                if isinstance(value, torch.Tensor):
                    # A copy: the optimizer updates its moments in place.
                    tensors[f"optimizer.{param_index}.{name}"] = value.detach().to("cpu", copy=True).contiguous()
                else:
                    scalars.setdefault(str(param_index), {})[name] = value
        groups = [
            {key: (list(value) if isinstance(value, tuple) else value) for key, value in group.items()}
            for group in optimizer_state["param_groups"]
        ]
        if self.consistency is not None:  # trained with the network, used only by the loss
            for name, value in self.consistency.state_dict().items():
                tensors[f"consistency.{name}"] = value.detach().to("cpu", copy=True).contiguous()
        if self.average is not None:  # the checkpoint's model is the average: keep what is trained
            for name, value in self.network.state_dict().items():
                tensors[f"trained.{name}"] = value.detach().to("cpu", copy=True).contiguous()
        return {"tensors": tensors, "meta": {"step": self.step, "param_groups": groups, "scalars": scalars}}

    def _check_moments_fit(self, per_param: dict[int, dict[str, Any]]) -> None:
        """torch's optimizer loads moments of any shape and fails only at the next step: refuse
        the state of another network layout here, naming the parameter."""
        parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        for index, values in per_param.items():
            if not 0 <= index < len(parameters):
                raise ValueError(f"trainer state: parameter {index}, the network has {len(parameters)}")
            for name, value in values.items():
                if isinstance(value, torch.Tensor) and value.ndim and value.shape != parameters[index].shape:
                    raise ValueError(
                        f"trainer state: {name} of parameter {index} has shape {tuple(value.shape)}, the "
                        f"parameter {tuple(parameters[index].shape)}: the state of another network layout"
                    )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (e.g. from a checkpoint)."""
        try:
            meta, tensors = state["meta"], state["tensors"]
            step = meta["step"]
            groups = meta["param_groups"]
        except (KeyError, TypeError) as error:
            raise ValueError(f"trainer state: missing {error}") from None
        if len(groups) != len(self.optimizer.param_groups):
            raise ValueError(
                f"trainer state: {len(groups)} parameter groups, optimizer has {len(self.optimizer.param_groups)}"
            )
        per_param: dict[int, dict[str, Any]] = {}
        head: dict[str, torch.Tensor] = {}
        trained: dict[str, torch.Tensor] = {}
        for key, value in tensors.items():
            prefix, _, rest = key.partition(".")
            if prefix == "consistency":
                head[rest] = value.clone()
                continue
            if prefix == "trained":
                trained[rest] = value
                continue
            if prefix != "optimizer" or "." not in rest:
                raise ValueError(f"trainer state: unexpected tensor {key!r}")
            index, name = rest.split(".", 1)
            per_param.setdefault(int(index), {})[name] = value.clone()  # never share the caller's tensors
        if bool(head) != (self.consistency is not None):
            raise ValueError(
                "trainer state: "
                + (
                    "has a consistency head, but training.consistency_loss_weight is 0"
                    if head
                    else "has no consistency head"
                )
                + " (the optimizer state is of a run with the other setting)"
            )
        if self.consistency is not None:
            try:
                self.consistency.load_state_dict(head)
            except RuntimeError as error:
                raise ValueError(f"trainer state: consistency head: {error}") from None
        if trained:  # written with weight averaging on: these, not the checkpoint's model, are trained on
            try:
                self.network.load_state_dict(trained)
            except RuntimeError as error:
                raise ValueError(f"trainer state: trained weights: {error}") from None
        for index, values in meta.get("scalars", {}).items():
            per_param.setdefault(int(index), {}).update(values)
        self._check_moments_fit(per_param)
        restored_groups = [
            {key: (tuple(value) if key == "betas" else value) for key, value in group.items()} for group in groups
        ]
        self.optimizer.load_state_dict({"state": per_param, "param_groups": restored_groups})
        self.step = int(step)


class TargetNetwork:
    """A periodically refreshed copy of the network that values stored observations
    for n-step bootstrap targets (see ``training.bootstrap``)."""

    def __init__(self, network: MuZeroNetwork, device: str | torch.device = "cpu"):
        self.network = copy.deepcopy(network).eval()
        self.device = torch.device(device)

    def update(self, network: MuZeroNetwork) -> None:
        self.network.load_state_dict(network.state_dict())

    @torch.inference_mode()
    def values(self, observations: np.ndarray) -> np.ndarray:
        output = self.network.initial_inference(torch.as_tensor(observations, device=self.device))
        return self.network.value_support.logits_to_scalar(output.value_logits).float().cpu().numpy()
