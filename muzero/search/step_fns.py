"""Step functions: what the search runs in.

- :class:`LearnedModel` — MuZero: the network's dynamics and prediction functions.
- :class:`SimulatorModel` — AlphaZero-style: a board game's true rules, with an
  evaluator (a network, or random rollouts for a network-free baseline) giving
  priors and values of the positions reached.

Both turn batched tensors into the plain numpy arrays of
:mod:`muzero.search.types`; the search never sees torch except as an opaque
embedding it gathers and scatters.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from muzero.envs.base import BoardGame
from muzero.envs.players import random_playout_return
from muzero.nn.networks import InferenceOutput, MuZeroNetwork
from muzero.search.types import RootInput, StepOutput


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


class _Inference(torch.nn.Module):
    """The network's inference with scalar outputs, as single graphs torch.compile can fuse."""

    def __init__(self, network: MuZeroNetwork):
        super().__init__()
        self.network = network

    def _scalars(self, output: InferenceOutput) -> tuple[torch.Tensor, ...]:
        """hidden, value, reward, policy logits and, with rules heads, their logits (B, A + 1)."""
        value = self.network.value_support.logits_to_scalar(output.value_logits)
        reward = self.network.reward_support.logits_to_scalar(output.reward_logits)
        scalars = (output.hidden, value, reward, output.policy_logits)
        return scalars if output.rules_logits is None else (*scalars, output.rules_logits)

    def initial(self, observations: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._scalars(self.network.initial_inference(observations))

    def recurrent(self, hidden: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._scalars(self.network.recurrent_inference(hidden, actions))


class LearnedModel:
    """Search inside the learned model. ``num_players`` = 2 makes turns alternate.

    ``compile=True`` runs the network through ``torch.compile``: about 20 s of
    compilation per process (and per new batch size), then each simulation's
    network call costs roughly a third less on a CPU. Worth it for long runs.
    """

    def __init__(
        self, network: MuZeroNetwork, device: str | torch.device = "cpu", num_players: int = 1, compile: bool = False
    ):
        if num_players not in (1, 2):
            raise ValueError(f"num_players must be 1 or 2, got {num_players}")
        self.network = network
        self.device = torch.device(device)
        self.num_players = num_players
        self.num_actions = network.num_actions
        inference = _Inference(network)
        self.knows_rules = getattr(network, "has_rules_heads", False)  # duck-typed networks: none
        """With network.rules_heads the search expands only moves the model predicts legal and
        stops where it predicts the episode has ended; without, every move is legal, always."""
        self._initial = torch.compile(inference.initial) if compile else inference.initial
        self._recurrent = torch.compile(inference.recurrent) if compile else inference.recurrent
        self._all_legal: np.ndarray | None = None
        self._no_terminal: np.ndarray | None = None

    @torch.inference_mode()
    def initial(
        self, observations: np.ndarray, legal_mask: np.ndarray | None = None, to_play: np.ndarray | None = None
    ) -> RootInput:
        batch = observations.shape[0]
        hidden, value, _, logits = self._initial(torch.as_tensor(observations, device=self.device))[:4]
        if legal_mask is None:
            legal_mask = np.ones((batch, self.num_actions), dtype=bool)
        if to_play is None:
            to_play = np.zeros(batch, dtype=np.int8)
        return RootInput(
            _to_numpy(logits),
            _to_numpy(value),
            hidden,
            legal_mask.astype(bool, copy=False),
            to_play.astype(np.int8, copy=False),
        )

    @torch.inference_mode()
    def __call__(self, embedding: torch.Tensor, action: np.ndarray, to_play: np.ndarray) -> StepOutput:
        batch = action.shape[0]
        actions = torch.as_tensor(action, device=self.device, dtype=torch.int64)
        outputs = self._recurrent(embedding, actions)
        hidden, value, reward, logits = outputs[:4]
        next_to_play = (1 - to_play).astype(np.int8) if self.num_players == 2 else to_play
        if self.knows_rules:
            verdicts = _to_numpy(outputs[4]) > 0  # (B, A + 1): legal per action, then ended
            legal, ended = np.ascontiguousarray(verdicts[:, :-1]), verdicts[:, -1].copy()
            nothing_legal = ~legal.any(axis=1) & ~ended
            legal[nothing_legal] = True  # the model is unsure of its own rules: every move stays open
        else:
            if self._all_legal is None or self._no_terminal is None or self._all_legal.shape[0] < batch:
                self._all_legal = np.ones((batch, self.num_actions), dtype=bool)
                self._no_terminal = np.zeros(batch, dtype=bool)
            legal, ended = self._all_legal[:batch], self._no_terminal[:batch]
        return StepOutput(_to_numpy(reward), _to_numpy(value), _to_numpy(logits), hidden, next_to_play, legal, ended)


Evaluator = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""states (B, ...) -> (prior_logits (B, A), value (B,) for the player to move)."""


class NetworkEvaluator:
    """Priors and values of board positions from a network's initial inference."""

    def __init__(self, game: BoardGame, network: MuZeroNetwork, device: str | torch.device = "cpu"):
        self.game = game
        self.network = network
        self.device = torch.device(device)

    @torch.inference_mode()
    def __call__(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs = torch.as_tensor(self.game.observe(states), device=self.device)
        output = self.network.initial_inference(obs)
        value = self.network.value_support.logits_to_scalar(output.value_logits)
        return _to_numpy(output.policy_logits), _to_numpy(value)


class RolloutEvaluator:
    """No network: uniform priors, value = mean outcome of random playouts."""

    def __init__(self, game: BoardGame, rng: np.random.Generator, num_rollouts: int = 1, max_moves: int = 1000):
        self.game = game
        self.rng = rng
        self.num_rollouts = num_rollouts
        self.max_moves = max_moves

    def __call__(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = states.shape[0]
        logits = np.zeros((batch, self.game.num_actions), dtype=np.float32)
        total = np.zeros(batch, dtype=np.float64)
        for _ in range(self.num_rollouts):
            total += random_playout_return(
                self.game, states, self.rng, self.max_moves, perspective=self.game.to_play(states)
            )
        return logits, (total / self.num_rollouts).astype(np.float32)


class SimulatorModel:
    """AlphaZero-style search: the game's true rules as the step function.

    The embedding is the batch of game states. A parent that is terminal, or an
    action that is illegal there (the search may pass a placeholder for roots
    whose descent ended on a terminal node), yields a terminal child with
    reward 0 instead of an error.
    """

    def __init__(self, game: BoardGame, evaluator: Evaluator):
        self.game = game
        self.evaluator = evaluator

    def initial(self, states: np.ndarray) -> RootInput:
        logits, value = self.evaluator(states)
        return RootInput(logits, value, states.copy(), self.game.legal_mask(states), self.game.to_play(states))

    def __call__(self, embedding: np.ndarray, action: np.ndarray, to_play: np.ndarray) -> StepOutput:
        states = np.asarray(embedding)
        batch = states.shape[0]
        action = np.asarray(action, dtype=np.int64)
        playable = self.game.legal_mask(states)[np.arange(batch), action]
        next_states = states.copy()
        reward = np.zeros(batch, dtype=np.float32)
        terminal = np.ones(batch, dtype=bool)
        if playable.any():
            stepped, step_reward, step_terminal = self.game.step(states[playable], action[playable])
            next_states[playable] = stepped
            reward[playable] = step_reward
            terminal[playable] = step_terminal
        logits, value = self.evaluator(next_states)
        value = np.where(terminal, 0.0, value).astype(np.float32)
        return StepOutput(
            reward,
            value,
            logits.astype(np.float32, copy=False),
            next_states,
            self.game.to_play(next_states),
            self.game.legal_mask(next_states),
            terminal,
        )
