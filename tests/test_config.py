import pytest

from muzero import config
from muzero.config import ConfigError


@pytest.mark.parametrize("name", config.preset_names())
def test_presets_load_and_validate(name):
    loaded = config.load(name)
    assert loaded.name == name


def test_presets_exist():
    assert {"cartpole", "tictactoe"} <= set(config.preset_names())


def test_override_sets_nested_value_with_toml_types():
    loaded = config.load(
        "cartpole",
        [
            "search.num_simulations=7",
            "training.learning_rate=0.5",
            "env.id=Acrobot-v1",
            "search.temperature=[[0, 0.5]]",
        ],
    )
    assert loaded.search.num_simulations == 7
    assert loaded.training.learning_rate == 0.5
    assert loaded.env.id == "Acrobot-v1"
    assert loaded.search.temperature == [[0.0, 0.5]]


def test_int_is_accepted_for_float():
    assert config.load("cartpole", ["training.discount=1"]).training.discount == 1.0


@pytest.mark.parametrize(
    "override, key",
    [
        ("search.num_simulation=5", "search.num_simulation: unknown key"),
        ("bogus.x=1", "bogus: unknown key"),
        ("search.num_simulations=-5", "search.num_simulations: must be >= 1"),
        ("training.unroll_steps=0", "training.unroll_steps: must be >= 1"),
        ("env.random_opening_moves=-1", "env.random_opening_moves: must be >= 0"),
        ("training.lr_decay_steps=-1", "training.lr_decay_steps: must be >= 0"),
        ("search.num_simulations=2.5", "search.num_simulations: expected an integer"),
        ("search.num_simulations=true", "search.num_simulations: expected an integer"),
        ("training.learning_rate='fast'", "training.learning_rate: expected a number"),
        ("training.learning_rate=nan", "training.learning_rate: must be finite"),
        ("network.kind=transformer", "network.kind: must be one of"),
        ("search.exploration_fraction=1.5", "search.exploration_fraction: must be in [0, 1]"),
        ("training.discount=0", "training.discount: must be in (0, 1]"),
        ("replay.min_size=999999999", "replay.min_size: must be <= replay.capacity"),
        ("search.temperature=[[100, 1.0], [50, 0.5]]", "search.temperature[1]: env steps must increase"),
        ("env.num_envs=0", "env.num_envs: must be >= 1"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_key(override, key):
    with pytest.raises(ConfigError) as error:
        config.load("cartpole", [override])
    message = str(error.value)
    assert message.startswith(key), message
    assert "\n" not in message


def test_override_without_equals_sign_is_rejected():
    with pytest.raises(ConfigError, match="expected key.path=value"):
        config.load("cartpole", ["search.num_simulations"])


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError, match="cartpole"):
        config.load("no-such-preset")


def test_config_file_with_unknown_key(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('name = "x"\n[training]\nbatchsize = 3\n')
    with pytest.raises(ConfigError, match="^training.batchsize: unknown key"):
        config.load(str(path))


def test_round_trip_through_dict():
    loaded = config.load("tictactoe")
    assert config.from_dict(loaded.to_dict()) == loaded


def test_temperature_schedule():
    search = config.load("cartpole", ["search.temperature=[[0, 1.0], [10000, 0.5], [20000, 0.25]]"]).search
    assert search.temperature_at(0) == 1.0
    assert search.temperature_at(10_000) == 0.5
    assert search.temperature_at(39_999) == 0.25
