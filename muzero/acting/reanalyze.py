"""Reanalyze: search stored play again with a newer network for fresher targets.

Every step of the given segments becomes a root (its stacked observation, legal
actions and player to move); roots are searched in batches of ``batch_size``
with the learned model, and the search's policy and root value replace the
stored ones (MuZero Reanalyze, Schrittwieser et al. 2021). No root noise: the
targets should be the network's best estimate, not exploration.

:class:`LocalReanalysis` runs the same inside local mode's loop, over the embedded
store, paced as the cluster's workers pace themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from muzero.config import ExperimentConfig
from muzero.learning.segment import Segment
from muzero.nn.networks import MuZeroNetwork
from muzero.search.mcts import make_search
from muzero.search.step_fns import LearnedModel


@dataclass(frozen=True)
class FreshTargets:
    segment_id: str
    policies: np.ndarray  # (T, A) float32
    root_values: np.ndarray  # (T,) float32


class Reanalyzer:
    def __init__(
        self,
        config: ExperimentConfig,
        network: MuZeroNetwork,
        num_actions: int,
        num_players: int,
        batch_size: int = 256,
        device: str = "cpu",
        seed: int = 0,
    ):
        if config.search.model != "learned":
            raise ValueError(
                "search.model: reanalyze searches the learned model; a 'simulator' search needs game "
                "states, which segments do not keep"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        self.config = config
        self.network = network
        self.batch_size = batch_size
        self.model = LearnedModel(network, device, num_players=num_players)
        self.search = make_search(config.search, num_actions, batch_size, config.training.discount)
        self.rng = np.random.default_rng(seed)
        self.simulations = 0

    @torch.inference_mode()
    def run(self, segments: list[Segment]) -> list[FreshTargets]:
        self.network.eval()
        observations = np.concatenate(
            [np.stack([s.stacked_observation(t) for t in range(s.num_steps)]) for s in segments]
        )
        legal = np.concatenate([s.legal_masks for s in segments])
        to_play = np.concatenate([s.to_play for s in segments])
        policies = np.empty(legal.shape, dtype=np.float32)
        values = np.empty(legal.shape[0], dtype=np.float32)
        for start in range(0, legal.shape[0], self.batch_size):
            rows = slice(start, start + self.batch_size)
            root = self.model.initial(observations[rows], legal[rows], to_play[rows])
            result = self.search.run(root, self.model, self.rng, temperature=1.0, add_noise=False)
            policies[rows] = result.policy_target
            values[rows] = result.root_value
            self.simulations += result.num_simulations * len(root.value)
        fresh, offset = [], 0
        for segment in segments:
            steps = segment.num_steps
            fresh.append(
                FreshTargets(segment.segment_id, policies[offset : offset + steps], values[offset : offset + steps])
            )
            offset += steps
        return fresh


def reanalysis_due(stats: dict, fraction: float) -> bool:
    """Whether a store (its ``stats()`` totals) wants more reanalysis: it holds transitions and
    its reanalysed total is below ``fraction`` of its inserted total."""
    stored = stats.get("num_transitions", stats.get("transitions", 0))
    done = stats.get("reanalysed_transitions_total", 0)
    return stored > 0 and done < fraction * stats.get("inserted_transitions_total", 0)


class LocalReanalysis:
    """Reanalysis over an embedded store (:class:`~muzero.storage.replay.memory.MemoryReplay`):
    each :meth:`run` searches segments of it again with ``network`` (the acting copy, already
    holding the newest weights) and writes the targets under ``model_version``, until the
    store's reanalysed transitions reach ``reanalyze.fraction`` of the ones played. A
    segment keeps its played targets until new ones are written; the store keeps each
    segment's targets version, so the age of every target is known."""

    def __init__(self, config: ExperimentConfig, network: MuZeroNetwork, replay, num_actions: int, num_players: int):
        self.config = config
        self.replay = replay
        self.reanalyzer = Reanalyzer(
            config,
            network,
            num_actions,
            num_players,
            batch_size=config.reanalyze.search_batch,
            device=config.training.device,
            seed=config.training.seed + 7919,
        )
        self.rng = np.random.default_rng(config.training.seed + 7920)  # which segments; apart from training's draws
        self.transitions = 0
        self.written = 0

    def run(self, model_version: int) -> int:
        """Reanalyse until paced; the transitions searched again."""
        searched = 0
        reanalyze = self.config.reanalyze
        while reanalysis_due(self.replay.stats(), reanalyze.fraction):
            segments = self.replay.read_segments(reanalyze.segments_per_round, self.rng)
            written = 0
            for targets in self.reanalyzer.run(segments):
                written += self.replay.write_targets(
                    targets.segment_id, targets.policies, targets.root_values, model_version
                )
            searched += sum(segment.num_steps for segment in segments)
            self.written += written
            if written == 0:  # every segment read already holds this version's targets: wait for the learner
                break
        self.transitions += searched
        return searched
