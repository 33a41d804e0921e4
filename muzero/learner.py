"""The learner's state and update, whatever feeds it batches.

Holds the network, its optimizer (:class:`~muzero.learning.trainer.Trainer`), the
target network that re-values bootstrap observations, and the checkpoints of a
run folder. ``resume`` continues from the newest checkpoint there with the
optimizer's moments and the step count, so a restarted learner carries on at the
step it stopped at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from muzero.checkpoint import CheckpointManager, load_checkpoint
from muzero.config import ExperimentConfig
from muzero.learning.batch import Batch
from muzero.learning.segment import stacked_observation_shape
from muzero.learning.targets import BootstrapTerms
from muzero.learning.trainer import TargetNetwork, Trainer
from muzero.nn.networks import build_network


def refreshed_targets(target_values: np.ndarray, terms: BootstrapTerms, value_fn) -> np.ndarray:
    """``target_values`` with each stored bootstrap value replaced by ``value_fn`` of its observation."""
    if not terms.mask.any():
        return target_values
    values = value_fn(terms.observations[terms.mask])
    out = target_values.astype(np.float32, copy=True)
    out[terms.mask] += terms.scale[terms.mask] * (values - terms.stored_values[terms.mask])
    return out


class Learner:
    def __init__(self, config: ExperimentConfig, observation_shape: tuple[int, ...], num_actions: int,
                 run_dir: str | Path, keep_last: int = 5):
        self.config = config
        training = config.training
        self.device = torch.device(training.device)
        torch.manual_seed(training.seed)
        stacked = stacked_observation_shape(tuple(observation_shape), config.env.frame_stack)
        self.network = build_network(config.network, stacked, num_actions).to(self.device)
        self.trainer = Trainer(self.network, training)
        self.target = TargetNetwork(self.network, self.device) if training.bootstrap == "target_network" else None
        self.checkpoints = CheckpointManager(run_dir, keep_last=keep_last)

    @property
    def step(self) -> int:
        return self.trainer.step

    @property
    def wants_bootstrap_observations(self) -> bool:
        return self.target is not None

    def resume(self) -> int | None:
        """Load the newest verified checkpoint of the run folder; its step, or None if there is none."""
        latest = self.checkpoints.latest()
        if latest is None:
            return None
        checkpoint = load_checkpoint(latest)
        self.network.load_state_dict(checkpoint.state_dict)
        if checkpoint.trainer_state is not None:
            self.trainer.load_state_dict(checkpoint.trainer_state)
        if self.target is not None:
            self.target.update(self.network)
        return self.trainer.step

    def save(self) -> Path:
        return self.checkpoints.save(self.network, self.config, step=self.step, version=self.step,
                                     trainer_state=self.trainer.state_dict())

    def train(self, batch) -> dict[str, Any]:
        """One update on a batch from the replay service (``TrainingBatchArrays``)."""
        training = self.config.training
        if self.target is not None and self.step % training.target_update_interval == 0:
            self.target.update(self.network)
        target_values = batch.target_values
        if self.target is not None and batch.bootstrap is not None:
            target_values = refreshed_targets(target_values, batch.bootstrap, self.target.values)

        ready = Batch(observations=batch.observations, actions=batch.actions, target_values=target_values,
                      target_rewards=batch.target_rewards, target_policies=batch.target_policies,
                      value_mask=batch.value_mask, reward_mask=batch.reward_mask, policy_mask=batch.policy_mask,
                      weights=batch.weights, keys=batch.keys)
        return self.trainer.train_step(ready.to_torch(self.device))
