"""The learner: the one update that local mode and the learner service both run.

A :class:`Learner` holds the network, its optimizer (:class:`~muzero.learning.trainer.Trainer`)
and the target network that re-values bootstrap targets. :meth:`Learner.train` takes a
:class:`~muzero.learning.batch.Batch` from wherever it came (local mode's embedded store
or the replay service's wire) and returns the losses and the priorities to send back;
:attr:`Learner.checkpoint_due` says when to write a checkpoint. Where batches come from,
where priorities go and where checkpoints are written is the caller's business, so the
update itself is the same code everywhere.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import numpy as np
import torch

from muzero.config import ExperimentConfig
from muzero.learning.augment import check_d4
from muzero.learning.batch import Batch
from muzero.learning.segment import stacked_observation_shape
from muzero.learning.targets import BootstrapTerms
from muzero.learning.trainer import TargetNetwork, Trainer
from muzero.nn.networks import MuZeroNetwork, build_network


def refreshed_targets(target_values: np.ndarray, terms: BootstrapTerms, value_fn) -> np.ndarray:
    """``target_values`` with each stored bootstrap value replaced by ``value_fn`` of its observation."""
    if not terms.mask.any():
        return target_values
    values = value_fn(terms.observations[terms.mask])
    out = target_values.astype(np.float32, copy=True)
    out[terms.mask] += terms.scale[terms.mask] * (values - terms.stored_values[terms.mask])
    return out


class Learner:
    def __init__(
        self,
        config: ExperimentConfig,
        observation_shape: tuple[int, ...],
        num_actions: int,
        network: MuZeroNetwork | None = None,
    ):
        """``network``: train this one (already built for these shapes); by default a new one."""
        self.config = config
        training = config.training
        self.device = torch.device(training.device)
        if training.augment == "d4":
            check_d4(tuple(observation_shape), num_actions)
        stacked = stacked_observation_shape(tuple(observation_shape), config.env.frame_stack)
        if network is None:
            torch.manual_seed(training.seed)
            network = build_network(config.network, stacked, num_actions)
        self.network = network.to(self.device)
        self.trainer = Trainer(self.network, training, observation_shape=stacked)
        self.target = TargetNetwork(self.network, self.device) if training.bootstrap == "target_network" else None

    @property
    def step(self) -> int:
        return self.trainer.step

    @property
    def model(self) -> MuZeroNetwork:
        """What plays, is evaluated and is checkpointed: ``network``, or its weight average
        with ``training.weight_average_decay``."""
        return cast(MuZeroNetwork, self.trainer.model)

    @property
    def wants_bootstrap_observations(self) -> bool:
        """Whether batches should carry the terms the target network re-values (``Batch.bootstrap``)."""
        return self.target is not None

    @property
    def checkpoint_due(self) -> bool:
        """True right after every ``training.checkpoint_interval``-th update."""
        return self.step > 0 and self.step % self.config.training.checkpoint_interval == 0

    def train(self, batch: Batch[np.ndarray]) -> dict[str, Any]:
        """One update: refresh the target network on schedule, re-value the bootstrap targets
        with it (when the batch carries them), take an optimizer step. Returns the loss parts,
        grad_norm, learning_rate and ``priorities`` (B,) for the replay store."""
        training = self.config.training
        if self.target is not None and self.step % training.target_update_interval == 0:
            self.target.update(self.network)
        if self.target is not None and batch.bootstrap is not None:
            batch = replace(
                batch, target_values=refreshed_targets(batch.target_values, batch.bootstrap, self.target.values)
            )
        self.network.train()
        return self.trainer.train_step(batch.to_torch(self.device))

    # --- what a checkpoint holds (written and read by muzero.storage.checkpoint) -------------

    def trainer_state(self) -> dict[str, Any]:
        return self.trainer.state_dict()

    def restore(self, state_dict: dict[str, torch.Tensor], trainer_state: dict[str, Any] | None) -> None:
        """Continue from a checkpoint's weights and optimizer state (the step included).

        ``state_dict`` is the checkpoint's model: with weight averaging, the average (the
        trained weights then come from ``trainer_state``, or start from the average)."""
        self.network.load_state_dict(state_dict)
        if self.model is not self.network:
            self.model.load_state_dict(state_dict)
        if trainer_state is not None:
            self.trainer.load_state_dict(trainer_state)
        if self.target is not None:
            self.target.update(self.network)
