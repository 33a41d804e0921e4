"""The game registry: registration, lookup, move names, plugins, and the scalar and OpenSpiel adapters."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from muzero import config as config_module
from muzero.config import ConfigError
from muzero.envs import ScalarBoardGame, TicTacToe, game_ids, get_game, load_plugins, make_vector_env, register_game
from muzero.envs.games.tictactoe import LINES, MinimaxPlayer
from muzero.envs.players import RandomPlayer, UCTPlayer, sample_from_mask
from muzero.envs.registry import PluginError, is_game

REPO = Path(__file__).resolve().parents[1]


class ScalarTicTacToe:
    """Tic-tac-toe one board at a time, to check the scalar adapter against the vectorised rules."""

    name = "scalar-tictactoe"
    num_actions = 9
    observation_shape = (3, 3, 3)
    state_shape = (9,)

    def initial_state(self):
        return [0] * 9

    def to_play(self, state):
        return int(np.count_nonzero(state) % 2)

    def _winner(self, state):
        for a, b, c in LINES.tolist():
            if state[a] != 0 and state[a] == state[b] == state[c]:
                return int(state[a])
        return 0

    def legal_actions(self, state):
        if self._winner(state) or all(state):
            return []
        return [cell for cell in range(9) if state[cell] == 0]

    def step(self, state, action):
        stone = self.to_play(state) + 1
        state = state.copy()
        state[action] = stone
        won = self._winner(state) == stone
        return state, float(won), won or bool(all(state))

    def observe(self, state):
        mover = self.to_play(state)
        planes = np.stack([state == mover + 1, state == 2 - mover, np.full(9, mover)]).astype(np.float32)
        return planes.reshape(3, 3, 3)

    def render(self, state):
        return "".join(".XO"[cell] for cell in state)


# --- registration and lookup -------------------------------------------------------------


def test_decorator_registers_a_class_under_its_id_and_aliases_and_returns_it():
    @register_game("test-decorated", aliases=("test/Decorated-v0",), move_names=tuple("abcdefghi"))
    class Decorated(TicTacToe):
        pass

    assert Decorated.__name__ == "Decorated" and issubclass(Decorated, TicTacToe)
    spec = get_game("test-decorated")
    assert get_game("test/Decorated-v0") is spec and spec.aliases == ("test/Decorated-v0",)
    assert isinstance(spec.make(), Decorated)
    assert {"test-decorated", "test/Decorated-v0"} <= set(game_ids())
    env = make_vector_env("test/Decorated-v0", num_envs=2, seed=0)  # the vector env looks games up here
    assert isinstance(env.game, Decorated) and env.num_players == 2


def test_every_game_gets_random_and_uct_and_tictactoe_adds_minimax():
    for game_id in game_ids():
        spec = get_game(game_id)
        assert {"random", "uct"} <= set(spec.opponents), game_id
        assert spec.eval_opponent in spec.opponents
    tictactoe = get_game("tictactoe")
    assert list(tictactoe.opponents) == ["minimax", "uct", "random"] and tictactoe.eval_opponent == "minimax"
    assert get_game("muzero/TicTacToe-v0") is tictactoe
    assert isinstance(tictactoe.opponent("minimax"), MinimaxPlayer)
    assert isinstance(tictactoe.opponent("uct"), UCTPlayer) and isinstance(tictactoe.opponent("random"), RandomPlayer)
    assert get_game("connect4").eval_opponent == "uct"
    with pytest.raises(ValueError, match=r"unknown opponent 'gnugo' for connect4 \(its opponents: random, uct\)"):
        get_game("connect4").opponent("gnugo")


def test_unknown_id_lists_the_known_ids():
    with pytest.raises(ValueError, match=r"'chess' is not a board game \(board games: .*connect4.*tictactoe"):
        get_game("chess")
    assert not is_game("chess")


def test_registration_mistakes_are_refused():
    @register_game("test-taken")
    class First(TicTacToe):
        pass

    class Second(TicTacToe):
        pass

    with pytest.raises(ValueError, match=r"'test-taken' is already registered by .*First"):
        register_game("test-taken")(Second)
    with pytest.raises(ValueError, match=r"eval_opponent 'minimax' is not one of its opponents \(random, uct\)"):
        register_game("test-no-minimax", eval_opponent="minimax")
    with pytest.raises(ValueError, match="move names must be distinct"):
        register_game("test-same-names", move_names=("a", "A"))

    @register_game("test-short-names", move_names=("a", "b"))
    class Short(TicTacToe):
        pass

    with pytest.raises(ValueError, match="test-short-names: move_names has 2 names for 9 actions"):
        get_game("test-short-names").format_move(0)


# --- move names ----------------------------------------------------------------------------


@pytest.mark.parametrize("game_id", ["tictactoe", "connect4"])
def test_move_names_round_trip(game_id):
    spec = get_game(game_id)
    game = spec.make()
    names = [spec.format_move(action) for action in range(game.num_actions)]
    assert len(set(names)) == game.num_actions
    for action, name in enumerate(names):
        assert spec.parse_move(name) == action
        assert spec.parse_move(f"  {name.upper()} ") == action
    with pytest.raises(ValueError, match=rf"{game_id}: action must be in \[0, {game.num_actions}\)"):
        spec.format_move(game.num_actions)
    with pytest.raises(ValueError, match=rf"{game_id} has no move named 'zz' \(moves: "):
        spec.parse_move("zz")
    assert spec.pass_action is None


def test_tictactoe_board_shows_the_names_players_type():
    spec = get_game("tictactoe")
    cells = [
        mark
        for row in TicTacToe().render(TicTacToe().initial_states(1)[0]).splitlines()[0:5:2]
        for mark in row.replace("|", " ").split()
    ]
    assert cells == [spec.format_move(action) for action in range(9)] == [str(cell) for cell in range(9)]


def test_a_game_with_a_pass_names_it():
    @register_game("test-with-pass", move_names=(*map(str, range(8)), "pass"))
    class WithPass(TicTacToe):  # nine actions: the last one stands for a pass here
        pass

    spec = get_game("test-with-pass")
    assert spec.pass_action == 8 and spec.format_move(8) == "pass" and spec.parse_move(" PASS ") == 8
    with pytest.raises(ValueError, match="tictactoe has no pass"):
        get_game("tictactoe").parse_move("pass")


# --- plugins -----------------------------------------------------------------------------------


def test_env_plugins_imports_a_users_module_at_config_load():
    # A fresh interpreter, so no earlier test has imported the plugin already.
    code = textwrap.dedent("""
        from muzero import config
        from muzero.envs.registry import is_game
        assert not is_game("test-nim")
        loaded = config.load("tictactoe", ["env.id=test-nim", 'env.plugins=["tests.plugin_game"]'])
        assert loaded.env.plugins == ["tests.plugin_game"]
        print(is_game("test-nim"))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_an_unknown_plugin_module_names_the_config_key():
    with pytest.raises(ConfigError, match=r"env.plugins\[1\]: cannot import module 'no_such_plugin_module'"):
        config_module.load("tictactoe", ['env.plugins=["tests.plugin_game", "no_such_plugin_module"]'])
    with pytest.raises(ConfigError, match=r"env.plugins: expected a list"):
        config_module.load("tictactoe", ["env.plugins=tests.plugin_game"])


def _installed_distribution(root: Path, name: str, entry_points: str) -> None:
    """What pip leaves in site-packages for a package declaring ``entry_points``."""
    dist_info = root / f"{name}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(entry_points)


def test_entry_points_of_group_muzero_envs_register_games(tmp_path, monkeypatch):
    (tmp_path / "entry_point_game.py").write_text(
        textwrap.dedent("""
        from muzero.envs.games.tictactoe import TicTacToe
        from muzero.envs.registry import register_game

        @register_game("test-entry-point-game")
        class EntryPointGame(TicTacToe):
            pass
    """)
    )
    _installed_distribution(tmp_path, "entry_point_game", "[muzero.envs]\nmygame = entry_point_game\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not is_game("test-entry-point-game")
    load_plugins([])
    assert get_game("test-entry-point-game").make().num_actions == 9


def test_a_broken_entry_point_is_named(tmp_path, monkeypatch):
    _installed_distribution(tmp_path, "broken_game", "[muzero.envs]\nbroken = no_such_module_for_entry_point\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        PluginError, match=r"entry point 'broken' = 'no_such_module_for_entry_point' of group 'muzero.envs'"
    ):
        load_plugins([])


def test_a_plugin_game_trains_and_evaluates_in_local_mode(tmp_path):
    from muzero.operations.local import train

    config = config_module.load(
        "tictactoe",
        [
            "name=nim",
            "env.id=test-nim",
            'env.plugins=["tests.plugin_game"]',
            "env.num_envs=4",
            "network.hidden_size=16",
            "network.head_hidden_size=16",
            "search.num_simulations=4",
            "training.max_env_steps=300",
            "training.eval_interval=150",
            "training.eval_episodes=4",
            "training.batch_size=16",
            "training.train_ratio=1.0",
            "training.td_steps=7",
            "training.checkpoint_interval=5",
            "replay.min_size=40",
            "replay.segment_length=7",
        ],
    )
    result = train(config, tmp_path / "run")
    assert result.env_steps >= 300 and result.learner_steps > 0 and not result.interrupted
    assert result.curve and all(-1.0 <= point.eval_mean_return <= 1.0 for point in result.curve)
    # The checkpoint carries env.plugins, so a fresh `muzero eval` finds the game again.
    evaluated = subprocess.run(
        [
            sys.executable,
            "-m",
            "muzero.cli",
            "eval",
            str(tmp_path / "run" / "checkpoints" / "latest"),
            "--episodes",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "vs uct:" in evaluated.stdout and "vs random:" in evaluated.stdout


# --- adapters ------------------------------------------------------------------------------------


def _play_in_lockstep(reference, other, num_games: int, seed: int, compare_observations: bool) -> int:
    """Random games through two BoardGames at once; asserts they agree after every move."""
    rng = np.random.default_rng(seed)
    ours, theirs = reference.initial_states(num_games), other.initial_states(num_games)
    live = np.arange(num_games)
    moves = 0
    while live.size:
        legal = reference.legal_mask(ours[live])
        np.testing.assert_array_equal(legal, other.legal_mask(theirs[live]))
        np.testing.assert_array_equal(reference.to_play(ours[live]), other.to_play(theirs[live]))
        if compare_observations:
            np.testing.assert_array_equal(reference.observe(ours[live]), other.observe(theirs[live]))
        actions = sample_from_mask(legal, rng)
        ours[live], reward, terminal = reference.step(ours[live], actions)
        theirs[live], other_reward, other_terminal = other.step(theirs[live], actions)
        np.testing.assert_array_equal(reward, other_reward)
        np.testing.assert_array_equal(terminal, other_terminal)
        moves += live.size
        live = live[~terminal]
    assert not other.legal_mask(theirs).any()
    return moves


def test_scalar_rules_run_through_the_vectorised_interface():
    game = ScalarBoardGame(ScalarTicTacToe())
    assert (game.num_actions, game.observation_shape, game.state_shape) == (9, (3, 3, 3), (9,))
    states = game.initial_states(4)
    assert states.shape == (4, 9) and states.dtype == np.int64
    assert _play_in_lockstep(TicTacToe(), game, num_games=200, seed=0, compare_observations=True) > 200 * 5
    assert game.render(game.initial_states(1)[0]) == "........."


def test_scalar_adapter_refuses_illegal_moves_naming_the_games():
    game = ScalarBoardGame(ScalarTicTacToe())
    states, _, _ = game.step(game.initial_states(3), np.array([4, 4, 4]))
    with pytest.raises(ValueError, match=r"scalar-tictactoe: illegal moves: games \[0, 2\] play \[4, 9\], not legal"):
        game.step(states, np.array([4, 0, 9]))
    won = states
    for actions in ([0, 0, 0], [2, 2, 2], [3, 3, 3], [6, 6, 6]):  # X 4, O 0, X 2, O 3, X 6: X wins on 2-4-6
        won, reward, terminal = game.step(won, np.array(actions))
    assert terminal.all() and (reward == 1).all()
    with pytest.raises(ValueError, match=r"games \[0, 1, 2\] are already finished"):
        game.step(won, np.array([1, 1, 1]))
    with pytest.raises(ValueError, match=r"states must have shape \(n, 9\)"):
        game.legal_mask(np.zeros((1, 3)))


def test_a_scalar_plugin_game_plays_through_the_vector_env():
    load_plugins(["tests.plugin_game"])
    spec = get_game("test-nim")
    assert [spec.format_move(action) for action in range(3)] == ["1", "2", "3"] and spec.parse_move("3") == 2
    env = make_vector_env("test-nim", num_envs=2, seed=0)
    env.reset()
    for _ in range(2):  # 7 - 3 - 3 = 1 stone left, then taking it wins
        env.step(np.array([2, 2]))
    np.testing.assert_array_equal(env.legal_mask(), [[True, False, False]] * 2)
    step = env.step(np.array([0, 0]))
    assert step.terminated.all() and (step.reward == 1).all()
    assert (env.states == [7, 0]).all()  # restarted in the same step


def test_openspiel_adapter_agrees_with_the_vectorised_tictactoe():
    pytest.importorskip("pyspiel")
    from muzero.envs.openspiel import openspiel_game

    game = openspiel_game("tic_tac_toe")
    assert game.num_actions == 9 and game.observation_shape == (3, 3, 3)
    assert _play_in_lockstep(TicTacToe(), game, num_games=100, seed=1, compare_observations=False) > 100 * 5
    with pytest.raises(ValueError, match="chance nodes"):
        openspiel_game("backgammon")
