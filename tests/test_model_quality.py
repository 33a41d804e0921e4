"""The learned-model diagnostics on a hand-built tic-tac-toe model whose errors are known."""

import io
import json

import numpy as np
import torch
from torch import nn

from muzero.acting.model_quality import model_quality, random_games
from muzero.config import load
from muzero.envs.games.tictactoe import MinimaxPlayer, TicTacToe
from muzero.nn.networks import InferenceOutput
from muzero.nn.support import Support

REWARD_BIAS = 0.25


class HandBuiltModel(nn.Module):
    """The true rules as a 'learned' model: the hidden state is the observation's planes
    plus an absorbing flag. Its values are exact (minimax), its rewards inside the game
    are REWARD_BIAS too high, past the end it predicts 0, and its policy always prefers
    cell 0."""

    def __init__(self):
        super().__init__()
        self.game = TicTacToe()
        self.oracle = MinimaxPlayer(self.game)
        self.num_actions = 9
        self.value_support = Support(1)
        self.reward_support = Support(2)
        self.anchor = nn.Parameter(torch.zeros(1))  # a parameter, so it is a network

    def _states(self, hidden):
        planes = hidden[:, :27].reshape(-1, 3, 9).numpy()
        mover = planes[:, 2, 0].astype(np.int8)
        own, opponent = planes[:, 0] > 0.5, planes[:, 1] > 0.5
        return np.where(own, (mover + 1)[:, None], np.where(opponent, (2 - mover)[:, None], 0)).astype(np.int8)

    def _output(self, hidden, reward):
        absorbing = hidden[:, 27].numpy() > 0.5
        states = self._states(hidden)
        values = np.zeros(len(states), dtype=np.float32)
        if (~absorbing).any():
            values[~absorbing] = self.oracle.values(states[~absorbing])
        policy = torch.full((len(states), 9), -5.0)
        policy[:, 0] = 5.0
        return InferenceOutput(
            hidden=hidden,
            value_logits=torch.log(self.value_support.scalar_to_probs(torch.as_tensor(values)) + 1e-12),
            reward_logits=torch.log(self.reward_support.scalar_to_probs(torch.as_tensor(reward)) + 1e-12),
            policy_logits=policy,
        )

    def initial_inference(self, observations):
        hidden = torch.cat([observations.reshape(-1, 27), torch.zeros(observations.shape[0], 1)], dim=1)
        return self._output(hidden, np.zeros(observations.shape[0], dtype=np.float32))

    def recurrent_inference(self, hidden, actions):
        states = self._states(hidden)
        absorbing = hidden[:, 27].numpy() > 0.5
        terminal = self.game.is_terminal(states)
        actions = actions.numpy()
        live = ~absorbing & ~terminal
        live &= states[np.arange(len(states)), actions] == 0
        rewards = np.zeros(len(states), dtype=np.float32)
        next_hidden = hidden.clone()
        next_hidden[~live, 27] = 1.0
        if live.any():
            next_states, reward, _ = self.game.step(states[live], actions[live])
            rewards[live] = reward + REWARD_BIAS
            next_hidden[torch.as_tensor(live), :27] = torch.as_tensor(self.game.observe(next_states).reshape(-1, 27))
        return self._output(next_hidden, rewards)


def test_the_diagnostics_report_the_errors_a_hand_built_model_has():
    config = load("tictactoe-learned", ["training.unroll_steps=3"])
    model = HandBuiltModel()
    quality = model_quality(config, model.game, model, games=60, oracle=model.oracle, seed=7)
    assert [d.depth for d in quality.depths] == [1, 2, 3, 4, 5, 6]  # twice the unroll
    played = random_games(model.game, 60, np.random.default_rng(7))  # the same games
    live = played.actions >= 0
    for d in quality.depths:
        assert abs(d.reward_mae - REWARD_BIAS) < 1e-3
        assert d.value_mae < 1e-3  # exact values
        if d.positions_past_end:
            assert d.reward_mae_past_end < 1e-3 and d.value_mae_past_end < 1e-3
        # Cell 0 is the top move: illegal wherever it is taken, counted at every live
        # position at least ``depth`` moves into its game.
        at_depth = live & (played.step >= d.depth)
        expected = float((played.states[at_depth, 0] != 0).mean())
        assert abs(d.illegal_preferred - expected) < 1e-9, (d.depth, d.illegal_preferred, expected)
    assert quality.depths[0].positions == int(live.sum())
    assert quality.root_illegal_preferred == float((played.states[live, 0] != 0).mean())
    assert quality.terminal_missed == 0.0 and quality.terminals > 0
    optimal = model.oracle.optimal_moves(played.states[live])
    legal = model.game.legal_mask(played.states[live])
    # The prior's top legal move is cell 0 where legal, else cell 1, 2, ...: the first legal cell.
    first_legal = legal.argmax(axis=1)
    assert quality.prior_optimal == float(optimal[np.arange(len(first_legal)), first_legal].mean())
    json.dumps(quality.to_json(), allow_nan=False)  # JSON as it is printed


def test_a_model_that_pays_rewards_after_the_end_misses_terminal_states():
    class LateRewards(HandBuiltModel):
        def recurrent_inference(self, hidden, actions):
            output = super().recurrent_inference(hidden, actions)
            reward = self.reward_support.logits_to_scalar(output.reward_logits).numpy()
            states = self._states(hidden)
            ended = self.game.is_terminal(states) & (hidden[:, 27].numpy() < 0.5)
            reward = np.where(ended, 1.0, reward).astype(np.float32)  # a move from a finished game pays
            output.reward_logits = torch.log(self.reward_support.scalar_to_probs(torch.as_tensor(reward)) + 1e-12)
            return output

    config = load("tictactoe-learned", ["training.unroll_steps=2"])
    model = LateRewards()
    quality = model_quality(config, model.game, model, games=30, oracle=None, seed=1)
    assert quality.terminal_missed == 1.0
    assert np.isnan(quality.depths[0].value_mae)  # no oracle, no value errors
    assert quality.depths[1].reward_mae_past_end > 0.5


def test_a_learned_model_run_writes_its_diagnostics_next_to_its_curve(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from muzero.operations.local import train
    from muzero.operations.progress import Progress

    overrides = [
        "training.max_env_steps=256",
        "training.eval_interval=128",
        "training.eval_episodes=4",
        "replay.min_size=64",
        "training.train_ratio=1.0",
        "training.batch_size=16",
        "search.num_simulations=4",
        "env.num_envs=8",
    ]
    config = load("tictactoe-learned", overrides)
    result = train(config, tmp_path / "run", progress=Progress(config.name, stream=io.StringIO(), live=False))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    depth = 2 * config.training.unroll_steps
    # Depth 2K = 10 is past the end of every game of tic-tac-toe: only its past-the-end error exists.
    for name in ("prior_optimal", "terminal_missed", "value_error_depth_1", f"reward_error_past_end_depth_{depth}"):
        assert f"model/{name}" in tags, sorted(tags)
    steps = [e.step for e in events.Scalars("model/prior_optimal")]
    assert steps == [p.env_steps for p in result.curve]  # one point per evaluation
    assert all(0.0 <= e.value <= 1.0 for e in events.Scalars("model/prior_optimal"))
