"""The vector env over gymnasium envs and board games: shapes, auto-reset, truncation, errors."""

import gymnasium
import numpy as np
import pytest

from muzero.envs import TicTacToe, make_vector_env

GAME = TicTacToe()


@pytest.mark.parametrize("env_id", ["tictactoe", "muzero/TicTacToe-v0"])
def test_board_game_env_attributes(env_id):
    env = make_vector_env(env_id, num_envs=3, seed=0)
    obs = env.reset()
    assert isinstance(env.game, TicTacToe)
    assert (env.num_envs, env.num_actions, env.num_players) == (3, 9, 2)
    assert env.observation_shape == (3, 3, 3) and env.observation_dtype == np.float32
    assert obs.shape == (3, 3, 3, 3) and obs.dtype == np.float32
    assert env.states.shape == (3, 9)
    assert env.legal_mask().shape == (3, 9) and env.legal_mask().all()
    np.testing.assert_array_equal(env.to_play(), [0, 0, 0])


def test_board_game_env_auto_resets_a_won_game_in_the_same_step():
    env = make_vector_env("tictactoe", num_envs=2, seed=0)
    env.reset()
    # Game 0: X 0, O 3, X 1, O 4, X 2 wins. Game 1 plays a drawn line that is still going.
    moves = [(0, 0), (3, 4), (1, 8), (4, 2), (2, 6)]
    for ply, actions in enumerate(moves):
        before = env.states.copy()
        step = env.step(np.array(actions))
        np.testing.assert_array_equal(env.to_play()[1], (ply + 1) % 2)
    assert step.terminated.tolist() == [True, False]
    assert step.truncated.tolist() == [False, False]
    assert step.reward.tolist() == [1.0, 0.0] and step.reward.dtype == np.float32
    won_board, _, _ = GAME.step(before[:1], np.array([2]))
    np.testing.assert_array_equal(step.final_obs[0], GAME.observe(won_board)[0])
    np.testing.assert_array_equal(step.next_obs[0], GAME.observe(GAME.initial_states(1))[0])
    np.testing.assert_array_equal(step.final_obs[1], step.next_obs[1])
    assert not env.states[0].any() and env.to_play()[0] == 0
    assert env.legal_mask()[0].all()


def test_board_game_env_truncates_at_max_episode_steps():
    env = make_vector_env("tictactoe", num_envs=2, seed=0, max_episode_steps=3)
    env.reset()
    for actions in [(0, 8), (1, 7)]:
        step = env.step(np.array(actions))
        assert not step.truncated.any()
    step = env.step(np.array([2, 6]))  # game 0: X 0, O 1, X 2 -- no line, just the step limit
    assert step.truncated.all() and not step.terminated.any()
    assert not env.states.any()
    assert not np.array_equal(step.final_obs, step.next_obs)


def test_board_game_env_rejects_illegal_actions():
    env = make_vector_env("tictactoe", num_envs=2, seed=0)
    env.reset()
    env.step(np.array([4, 0]))
    with pytest.raises(ValueError, match=r"games \[0\]"):
        env.step(np.array([4, 1]))
    with pytest.raises(ValueError, match=r"actions must have shape \(2,\)"):
        env.step(np.array([1]))
    with pytest.raises(ValueError, match=r"envs \[1\] got \[9\]"):
        env.step(np.array([1, 9]))


def test_cartpole_shapes_and_single_player_defaults():
    env = make_vector_env("CartPole-v1", num_envs=4, seed=0)
    obs = env.reset()
    assert env.game is None and env.states is None and env.num_players == 1
    assert (env.num_envs, env.num_actions, env.observation_shape) == (4, 2, (4,))
    assert obs.shape == (4, 4) and obs.dtype == env.observation_dtype == np.float32
    assert env.legal_mask().shape == (4, 2) and env.legal_mask().all()
    np.testing.assert_array_equal(env.to_play(), np.zeros(4, np.int8))
    step = env.step(np.array([0, 1, 0, 1]))
    assert step.next_obs.shape == step.final_obs.shape == (4, 4)
    assert step.reward.dtype == np.float32 and step.reward.shape == (4,)
    env.close()


def test_cartpole_env_i_is_seeded_with_seed_plus_i():
    env = make_vector_env("CartPole-v1", num_envs=3, seed=7)
    obs = env.reset()
    for i in range(3):
        single, _ = gymnasium.make("CartPole-v1").reset(seed=7 + i)
        np.testing.assert_array_equal(obs[i], single)
    env.close()


def test_cartpole_auto_reset_returns_the_final_observation():
    env = make_vector_env("CartPole-v1", num_envs=4, seed=0)
    env.reset()
    ended_seen = 0
    for _ in range(60):  # always pushing left drops the pole within a few dozen steps
        step = env.step(np.zeros(4, dtype=np.int64))
        ended = step.terminated | step.truncated
        ended_seen += int(ended.sum())
        if ended.any():
            assert (step.final_obs[ended] != step.next_obs[ended]).any(axis=1).all()
            # A fresh CartPole episode starts within +-0.05 in every coordinate; the last one ended outside.
            assert (np.abs(step.next_obs[ended]) <= 0.05).all()
            assert (np.abs(step.final_obs[ended]) > 0.05).any(axis=1).all()
        np.testing.assert_array_equal(step.final_obs[~ended], step.next_obs[~ended])
    assert ended_seen >= 4
    env.close()


def test_cartpole_truncates_at_max_episode_steps():
    env = make_vector_env("CartPole-v1", num_envs=2, seed=0, max_episode_steps=5)
    env.reset()
    for t in range(5):
        step = env.step(np.array([t % 2, t % 2]))  # alternate pushes: the pole stays up for 5 steps
        assert not step.terminated.any()
        assert step.truncated.all() == (t == 4)
    assert (step.final_obs != step.next_obs).any(axis=1).all()
    env.close()


def test_unknown_env_id_lists_what_was_tried():
    with pytest.raises(ValueError, match=r"'NoSuchGame-v0'.*not a board game \(.*tictactoe.*\).*gymnasium"):
        make_vector_env("NoSuchGame-v0", num_envs=1, seed=0)


def test_non_discrete_actions_are_rejected():
    with pytest.raises(ValueError, match=r"Pendulum-v1.*Discrete.*Box"):
        make_vector_env("Pendulum-v1", num_envs=1, seed=0)


def test_non_box_observations_are_rejected():
    with pytest.raises(ValueError, match=r"FrozenLake-v1.*observation space must be Box.*Discrete"):
        make_vector_env("FrozenLake-v1", num_envs=1, seed=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_envs": 0}, "num_envs"),
        ({"num_envs": 2, "max_episode_steps": -1}, "max_episode_steps"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_vector_env("CartPole-v1", seed=0, **kwargs)


def test_cartpole_step_before_reset_is_an_error():
    env = make_vector_env("CartPole-v1", num_envs=1, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0]))
    env.close()


def test_random_openings_start_games_after_zero_to_n_random_legal_moves():
    env = make_vector_env("tictactoe", num_envs=4000, seed=3, random_opening_moves=3)
    counts = (env.states != 0).sum(axis=1)
    # k uniform in 0..3: every count about a quarter of the games, and no other count
    shares = np.bincount(counts, minlength=4) / counts.size
    assert shares.size == 4 and np.all(np.abs(shares - 0.25) < 0.03), shares
    np.testing.assert_array_equal(env._episode_steps, counts)  # the opening counts towards a time limit
    np.testing.assert_array_equal(env.to_play(), counts % 2)  # positions of legal play: X moved first
    assert not GAME.is_terminal(env.states).any()
    # the openings vary: many distinct 3-move positions, and the seed decides them
    three = {state.tobytes() for state in env.states[counts == 3]}
    assert len(three) > 200
    same = make_vector_env("tictactoe", num_envs=4000, seed=3, random_opening_moves=3)
    other = make_vector_env("tictactoe", num_envs=4000, seed=4, random_opening_moves=3)
    np.testing.assert_array_equal(same.states, env.states)
    assert not np.array_equal(other.states, env.states)


def test_random_openings_restart_finished_games_and_never_hand_out_a_finished_one():
    env = make_vector_env("tictactoe", num_envs=500, seed=0, random_opening_moves=9)
    assert not GAME.is_terminal(env.states).any()  # openings of up to 9 moves that ended were replaced
    assert (env._episode_steps == (env.states != 0).sum(axis=1)).all()
    rng = np.random.default_rng(0)
    restarted = []
    for _ in range(6):
        mask = env.legal_mask()
        step = env.step(np.array([rng.choice(np.flatnonzero(row)) for row in mask]))
        ended = step.terminated | step.truncated
        restarted.extend((env.states[ended] != 0).sum(axis=1).tolist())
        assert not GAME.is_terminal(env.states).any()
    assert restarted and max(restarted) > 0  # a new game after an end gets a random opening too


def test_random_openings_are_refused_for_gymnasium_envs_and_bad_counts():
    with pytest.raises(ValueError, match="env.random_opening_moves is for board games"):
        make_vector_env("CartPole-v1", 1, 0, random_opening_moves=2)
    with pytest.raises(ValueError, match="random_opening_moves must be an integer >= 0"):
        make_vector_env("tictactoe", 1, 0, random_opening_moves=-1)
