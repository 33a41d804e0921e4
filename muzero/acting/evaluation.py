"""Evaluation: greedy search (no noise, temperature 0) with a fixed network.

Single-player envs: play exactly ``episodes`` episodes, one per environment, so
short episodes are not over-counted. Board games: matches against the game's
opponents (its registry spec: "random", "uct" and the game's own, such as
tic-tac-toe's "minimax"), half as first player and half as second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from muzero.config import ExperimentConfig
from muzero.envs.base import BoardGame
from muzero.envs.players import play_match
from muzero.envs.registry import get_game
from muzero.envs.vector import make_vector_env
from muzero.learning.segment import FrameStacker
from muzero.nn.networks import MuZeroNetwork
from muzero.search.mcts import make_search
from muzero.search.step_fns import LearnedModel, NetworkEvaluator, SimulatorModel
from muzero.search.types import StepFn


@dataclass(frozen=True)
class ReturnsReport:
    returns: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())


@torch.inference_mode()
def evaluate_returns(
    config: ExperimentConfig, network: MuZeroNetwork, episodes: int, seed: int, device: str = "cpu"
) -> ReturnsReport:
    """Mean return of greedy search over ``episodes`` single-player episodes."""
    env = make_vector_env(config.env.id, episodes, seed, config.env.max_episode_steps, config.env.wrappers)
    if env.num_players != 1:
        raise ValueError(f"{config.env.id} is a {env.num_players}-player game: use evaluate_board")
    network.eval()
    model = LearnedModel(network, device)
    search = make_search(config.search, env.num_actions, episodes, config.training.discount)
    rng = np.random.default_rng(seed)
    observations = env.reset()
    stacker = FrameStacker(episodes, env.observation_shape, config.env.frame_stack, env.observation_dtype)
    stacked = stacker.push(observations, np.ones(episodes, dtype=bool))
    returns = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        root = model.initial(stacked, env.legal_mask(), env.to_play())
        result = search.run(root, model, rng, temperature=config.search.eval_temperature, add_noise=False)
        step = env.step(result.action)
        returns += np.where(running, step.reward, 0.0)
        ended = step.terminated | step.truncated
        running &= ~ended
        stacked = stacker.push(step.next_obs, ended)
    return ReturnsReport(returns)


class SearchPlayer:
    """A board-game player that searches with the network (learned model or true rules)."""

    def __init__(
        self,
        config: ExperimentConfig,
        game: BoardGame,
        network: MuZeroNetwork,
        batch_size: int,
        device: str = "cpu",
        num_simulations: int | None = None,
    ):
        search_config = config.search
        if num_simulations is not None:
            from dataclasses import replace

            search_config = replace(search_config, num_simulations=num_simulations)
        self.config = config
        self.game = game
        self.network = network
        self.search = make_search(search_config, game.num_actions, batch_size, config.training.discount)
        self.learned = LearnedModel(network, device, num_players=2)
        self.simulator = SimulatorModel(game, NetworkEvaluator(game, network, device))

    @torch.inference_mode()
    def act(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.network.eval()
        step_fn: StepFn
        if self.config.search.model == "simulator":
            root, step_fn = self.simulator.initial(states), self.simulator
        else:
            root = self.learned.initial(
                self.game.observe(states), self.game.legal_mask(states), self.game.to_play(states)
            )
            step_fn = self.learned
        result = self.search.run(root, step_fn, rng, temperature=self.config.search.eval_temperature, add_noise=False)
        return result.action


def evaluate_board(
    config: ExperimentConfig,
    game: BoardGame,
    network: MuZeroNetwork,
    games: int,
    seed: int,
    opponents: tuple[str, ...] | None = None,
    device: str = "cpu",
) -> dict[str, dict[str, int]]:
    """Win/draw/loss of the agent against each opponent; half the games as first player.

    ``opponents`` are names from the spec of ``config.env.id`` (None: all of them), or
    ``uct:N``; an unknown name is a ValueError listing the game's opponents, raised
    before any game.
    """
    spec = get_game(config.env.id)
    opponents = tuple(spec.opponents) if opponents is None else tuple(opponents)
    players = {name: spec.opponent(name, game) for name in opponents}  # a bad name fails before any game
    rng = np.random.default_rng(seed)
    agent = SearchPlayer(config, game, network, batch_size=max(1, games), device=device)
    report = {}
    for name, opponent in players.items():
        first = play_match(game, agent, opponent, games - games // 2, rng, a_first=True)
        second = play_match(game, agent, opponent, games // 2, rng, a_first=False)
        report[name] = {key: int(first[key] + second[key]) for key in ("wins", "draws", "losses")}
    return report
