"""Self-play: N environments in lockstep, one batched search per move, cut into segments.

This is the actor's core, shared by local mode and the actor service: it owns
an acting copy of the network, never the learner's, so weights change only
when the caller swaps them in (and the version says which weights played).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from muzero.acting.exploration import RepeatedRandomActions
from muzero.config import ExperimentConfig
from muzero.envs.vector import BoardGameVectorEnv, VectorEnv, make_vector_env
from muzero.learning.segment import FrameStacker, Segment, SegmentBuilder, stack_frames
from muzero.nn.networks import MuZeroNetwork
from muzero.search.components import visit_count_action
from muzero.search.mcts import make_search
from muzero.search.step_fns import LearnedModel, NetworkEvaluator, SimulatorModel
from muzero.search.types import SearchResult, StepFn


@dataclass
class EpisodeStats:
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    resignations: int = 0
    """Games of this step that ended by a resignation."""
    resign_checks: int = 0
    """Would-be resignations checked: players who would have resigned in games of this step
    played out without resigning (search.no_resign_fraction)."""
    resign_wrong: int = 0
    """Of those, the players who did not lose the game after all."""


class SelfPlay:
    """Plays ``env.num_envs`` games with the acting network; emits finished segments."""

    def __init__(self, config: ExperimentConfig, network: MuZeroNetwork, seed: int, device: str = "cpu"):
        self.config = config
        self.env: VectorEnv = make_vector_env(
            config.env.id,
            config.env.num_envs,
            seed,
            config.env.max_episode_steps,
            config.env.wrappers,
            random_opening_moves=config.env.random_opening_moves,
        )
        self.network = network
        self.device = device
        self.rng = np.random.default_rng(seed)
        self.model_version = 0
        self.search = make_search(config.search, self.env.num_actions, self.env.num_envs, config.training.discount)
        self.learned = LearnedModel(network, device, num_players=self.env.num_players)
        if config.search.model == "simulator":
            if self.env.game is None:
                raise ValueError(
                    f"search.model = 'simulator' needs a board game, but env.id {config.env.id!r} is not one"
                )
            self.simulator = SimulatorModel(self.env.game, NetworkEvaluator(self.env.game, network, device))
        self.builder = SegmentBuilder.from_config(config, self.env.num_envs, self.env.num_actions)
        self.observations = self.env.reset()
        self.stacker = FrameStacker(
            self.env.num_envs, self.env.observation_shape, config.env.frame_stack, self.env.observation_dtype
        )
        self.stacked = self.stacker.push(self.observations, np.ones(self.env.num_envs, dtype=bool))
        self.episode_return = np.zeros(self.env.num_envs)
        self.episode_length = np.zeros(self.env.num_envs, dtype=np.int64)
        self.env_steps = 0
        self.simulations = 0
        self.resignation = Resignation(config, self.env, self.rng) if config.search.resign else None
        search = config.search
        self.exploration = (
            RepeatedRandomActions(
                self.env.num_envs, search.ez_greedy_epsilon, search.ez_greedy_mu, search.ez_greedy_max_repeat, self.rng
            )
            if search.ez_greedy_epsilon
            else None
        )

    def set_weights(self, state_dict: dict[str, torch.Tensor], version: int) -> None:
        self.network.load_state_dict(state_dict)
        self.model_version = version

    def step(self) -> tuple[list[Segment], EpisodeStats]:
        """One move in every env: search, act, and return the segments that completed."""
        self.network.eval()
        legal = self.env.legal_mask()
        to_play = self.env.to_play()
        step_fn: StepFn
        if self.config.search.model == "simulator":
            states = self.env.states
            if states is None:  # __init__ checked that the env is a board game, whose states are arrays
                raise RuntimeError(f"search.model = 'simulator': env {self.config.env.id!r} has no board states")
            root = self.simulator.initial(states)
            step_fn = self.simulator
        else:
            root = self.learned.initial(self.stacked, legal, to_play)
            step_fn = self.learned
        result, full = self._search(root, step_fn)
        actions = self._late_moves_greedy(result, legal)
        if self.exploration is not None:
            actions = self.exploration.choose(actions, legal)
        policies = result.policy_target if full else np.zeros_like(result.policy_target)
        if self.resignation is not None:
            resign = self.resignation.decide(result.root_value, to_play)
            step = self.resignation.env.step(actions, resign=resign)
        else:
            step = self.env.step(actions)
        ended = step.terminated | step.truncated
        if self.exploration is not None:
            self.exploration.end_episodes(ended)
        bootstrap = self._bootstrap_values(step.final_obs, step.truncated & ~step.terminated)
        segments = self.builder.add_step(
            obs=self.observations,
            actions=actions,
            rewards=step.reward,
            to_play=to_play,
            legal_masks=legal,
            policies=policies,
            root_values=result.root_value,
            terminated=step.terminated,
            truncated=step.truncated & ~step.terminated,
            final_bootstrap_values=bootstrap,
            model_version=self.model_version,
            final_ownership=step.final_ownership,
        )
        stats = self._track_episodes(step.reward, ended)
        if self.resignation is not None:
            self.resignation.end_games(stats, ended, step.reward, to_play, resign)
        self.observations = step.next_obs
        self.stacked = self.stacker.push(step.next_obs, ended)
        self.env_steps += self.env.num_envs
        self.simulations += self.env.num_envs * result.num_simulations
        return segments, stats

    def _search(self, root, step_fn: StepFn) -> tuple[SearchResult, bool]:
        """This move's search, and whether it was a full one (its policy a training target).

        With playout cap randomisation (``search.fast_simulations``), a fast search has
        no root noise: its visits only choose the move, they teach nothing."""
        search = self.config.search
        temperature = search.temperature_at(self.env_steps)
        if not search.fast_simulations or self.rng.random() < search.full_search_fraction:
            return self.search.run(root, step_fn, self.rng, temperature=temperature, add_noise=True), True
        self.search.start(root, self.rng, add_noise=False)
        self.search.simulate(step_fn, search.fast_simulations)
        return self.search.finish(self.rng, temperature), False

    def _late_moves_greedy(self, result, legal: np.ndarray) -> np.ndarray:
        """Past ``search.sample_moves`` moves of an episode, play the most visited action."""
        sample_moves = self.config.search.sample_moves
        if not sample_moves or self.config.search.algorithm != "muzero":
            return result.action
        late = self.episode_length >= sample_moves
        if not late.any():
            return result.action
        greedy = visit_count_action(result.visit_counts, result.q_values, legal, 0.0, self.rng)
        return np.where(late, greedy, result.action)

    def _bootstrap_values(self, final_obs: np.ndarray, truncated: np.ndarray) -> np.ndarray:
        """Value of the last state of truncated episodes (time limits), from the network."""
        values = np.zeros(self.env.num_envs, dtype=np.float32)
        if not truncated.any() or self.config.search.model == "simulator":
            return values
        index = np.flatnonzero(truncated)
        frames = np.concatenate([self.stacker.frames[index, 1:], final_obs[index, None]], axis=1)
        root = self.learned.initial(stack_frames(frames))
        values[index] = root.value
        return values

    def _track_episodes(self, rewards: np.ndarray, ended: np.ndarray) -> EpisodeStats:
        # Returns are summed from player 0's side for single-player envs; for two-player
        # games the return of an episode is the last mover's reward (win = 1).
        self.episode_return += rewards
        self.episode_length += 1
        stats = EpisodeStats()
        for i in np.flatnonzero(ended):
            stats.returns.append(float(self.episode_return[i]))
            stats.lengths.append(int(self.episode_length[i]))
        self.episode_return[ended] = 0
        self.episode_length[ended] = 0
        return stats

    def flush(self) -> list[Segment]:
        return self.builder.flush()


class Resignation:
    """Who resigns in self-play, and how often a resignation would have been wrong.

    A player resigns when its root value stays below ``search.resign_threshold`` for
    ``search.resign_after`` of its moves in a row. In a share of the games
    (``search.no_resign_fraction``, drawn as each game starts) nobody may; there the
    players who would have resigned are remembered, and the game's end says whether
    they would have been right."""

    def __init__(self, config: ExperimentConfig, env: VectorEnv, rng: np.random.Generator):
        if not isinstance(env, BoardGameVectorEnv):
            raise ValueError(f"search.resign needs a two-player board game; env.id {config.env.id!r} is not one")
        if config.search.model != "simulator":
            raise ValueError(
                "search.resign needs search.model = 'simulator': a learned model would be taught "
                "that the resigner's searched move ends the game"
            )
        self.env = env
        self.search = config.search
        self.rng = rng
        n = env.num_envs
        self.streak = np.zeros((n, 2), dtype=np.int64)  # own moves in a row below the threshold
        self.would_resign = np.zeros((n, 2), dtype=bool)
        self.no_resign = rng.random(n) < self.search.no_resign_fraction

    def decide(self, root_values: np.ndarray, to_play: np.ndarray) -> np.ndarray:
        """(N,) bool: the games whose player to move resigns now."""
        rows = np.arange(self.env.num_envs)
        player = to_play.astype(np.int64)
        below = root_values < self.search.resign_threshold
        self.streak[rows, player] = np.where(below, self.streak[rows, player] + 1, 0)
        wants = self.streak[rows, player] >= self.search.resign_after
        self.would_resign[rows, player] |= wants & self.no_resign
        return wants & ~self.no_resign

    def end_games(
        self, stats: EpisodeStats, ended: np.ndarray, rewards: np.ndarray, to_play: np.ndarray, resigned: np.ndarray
    ) -> None:
        """Count this step's resignations and checks into ``stats``; start the ended games afresh."""
        stats.resignations += int(resigned.sum())
        for i in np.flatnonzero(ended & self.no_resign).tolist():
            mover, reward = int(to_play[i]), float(rewards[i])
            loser = None if reward == 0 else (1 - mover if reward > 0 else mover)
            for player in np.flatnonzero(self.would_resign[i]).tolist():
                stats.resign_checks += 1
                stats.resign_wrong += int(player != loser)
        self.streak[ended] = 0
        self.would_resign[ended] = False
        self.no_resign[ended] = self.rng.random(int(ended.sum())) < self.search.no_resign_fraction
