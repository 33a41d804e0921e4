"""env.wrappers: each named wrapper on a real (tiny) gymnasium image env, through the vector env."""

import importlib.util
import sys

import gymnasium
import numpy as np
import pytest

from muzero import config as config_module
from muzero.config import WRAPPER_FORMS
from muzero.envs import make_vector_env
from muzero.envs.wrappers import BUILDERS, build_wrapper
from muzero.learning.segment import stacked_observation_shape
from muzero.nn.networks import build_network

IMAGE_ENV_ID = "muzero-test/TinyImage-v0"
HEIGHT, WIDTH = 12, 16
EPISODE_STEPS = 6
REWARDS = (-2.0, 3.0)
"""The reward of action 0 and of action 1: outside [-1, 1], so clipping shows."""


def image_at(step: int) -> np.ndarray:
    """The (H, W, 3) uint8 frame after ``step`` steps: channels differ, pixels vary across the image."""
    rows = np.arange(HEIGHT, dtype=np.int64)[:, None, None]
    cols = np.arange(WIDTH, dtype=np.int64)[None, :, None]
    channels = np.arange(3, dtype=np.int64)[None, None, :]
    return ((rows * 7 + cols * 3 + channels * 60 + step * 11) % 256).astype(np.uint8)


class TinyImageEnv(gymnasium.Env):
    """RGB frames that change every step; 2 actions with different rewards; 6 steps an episode."""

    observation_space = gymnasium.spaces.Box(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    action_space = gymnasium.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return image_at(0), {}

    def step(self, action):
        self.steps += 1
        return image_at(self.steps), REWARDS[int(action)], self.steps >= EPISODE_STEPS, False, {}


if IMAGE_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=IMAGE_ENV_ID, entry_point=TinyImageEnv)


def wrapped(*wrappers, num_envs=2):
    return make_vector_env(IMAGE_ENV_ID, num_envs=num_envs, seed=0, wrappers=list(wrappers))


def grey(image: np.ndarray) -> np.ndarray:
    return np.sum(image * np.array([0.2125, 0.7154, 0.0721]), axis=-1).astype(np.uint8)[..., None]


def test_no_wrappers_leave_the_env_as_it_is():
    env = wrapped()
    assert env.observation_shape == (HEIGHT, WIDTH, 3) and env.observation_dtype == np.uint8
    np.testing.assert_array_equal(env.reset()[0], image_at(0))


def test_grayscale_keeps_a_channel_axis():
    env = wrapped("grayscale")
    obs = env.reset()
    assert env.observation_shape == (HEIGHT, WIDTH, 1) and env.observation_dtype == np.uint8
    assert obs.shape == (2, HEIGHT, WIDTH, 1)
    np.testing.assert_array_equal(obs[0], grey(image_at(0)))
    np.testing.assert_array_equal(env.step(np.array([0, 1])).next_obs[1], grey(image_at(1)))


@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="needs OpenCV (opencv-python-headless)")
def test_resize_shrinks_images_by_area():
    env = wrapped("resize:6x8")
    obs = env.reset()
    assert env.observation_shape == (6, 8, 3) and obs.shape == (2, 6, 8, 3) and obs.dtype == np.uint8
    # area interpolation halving each side: each output pixel is about the mean of a 2x2 block
    block_means = image_at(0).reshape(6, 2, 8, 2, 3).astype(float).mean(axis=(1, 3))
    assert np.abs(obs[0].astype(float) - block_means).max() <= 1.0


def test_resize_without_opencv_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # what `import cv2` sees on a machine without OpenCV
    with pytest.raises(ValueError, match="pip install opencv-python-headless"):
        wrapped("resize:6x8")


def test_channel_first_transposes_images_and_gives_grey_ones_a_channel():
    env = wrapped("channel_first")
    obs = env.reset()
    assert env.observation_shape == (3, HEIGHT, WIDTH) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs[0], np.moveaxis(image_at(0), -1, 0))
    env = wrapped("grayscale", "channel_first")
    assert env.observation_shape == (1, HEIGHT, WIDTH)
    np.testing.assert_array_equal(env.reset()[0, 0], grey(image_at(0))[..., 0])


def test_flatten_makes_observations_1d():
    env = wrapped("flatten")
    obs = env.reset()
    assert env.observation_shape == (HEIGHT * WIDTH * 3,)
    np.testing.assert_array_equal(obs[0], image_at(0).reshape(-1))


def test_float32_casts_and_scale_divides():
    env = wrapped("float32")
    obs = env.reset()
    assert env.observation_dtype == np.float32 and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[0], image_at(0).astype(np.float32))
    env = wrapped("scale:255")
    obs = env.reset()
    assert env.observation_dtype == np.float32 and obs.dtype == np.float32
    np.testing.assert_allclose(obs[0], image_at(0) / 255.0, rtol=1e-6)
    assert 0.0 <= obs.min() and obs.max() <= 1.0


@pytest.mark.parametrize(
    "spec, expected",
    [("clip_reward", (-1.0, 1.0)), ("clip_reward:2", (-2.0, 2.0)), ("clip_reward:-0.5,2.5", (-0.5, 2.5))],
)
def test_clip_reward_bounds_rewards(spec, expected):
    env = wrapped(spec)
    env.reset()
    step = env.step(np.array([0, 1]))
    assert step.reward.tolist() == list(expected)


def test_max_and_skip_repeats_the_action_sums_rewards_and_maxes_frames():
    env = wrapped("max_and_skip:2")
    env.reset()
    step = env.step(np.array([1, 0]))
    assert step.reward.tolist() == [2 * REWARDS[1], 2 * REWARDS[0]]
    np.testing.assert_array_equal(step.next_obs[0], np.maximum(image_at(1), image_at(2)))
    for _ in range(EPISODE_STEPS // 2 - 1):
        step = env.step(np.array([1, 1]))
    assert step.terminated.all()  # 6 env steps in 3 agent steps


def test_sticky_actions_repeat_the_previous_action():
    env = wrapped("sticky_actions:0.9", num_envs=1)
    env.reset()
    rewards = [env.step(np.array([step % 2])).reward[0] for step in range(EPISODE_STEPS - 1)]
    env = wrapped(num_envs=1)
    env.reset()
    plain = [env.step(np.array([step % 2])).reward[0] for step in range(EPISODE_STEPS - 1)]
    assert plain == [REWARDS[0], REWARDS[1]] * 2 + [REWARDS[0]]
    # with p = 0.9 most alternating actions are replaced by the previous one: rewards repeat
    repeats = sum(a == b for a, b in zip(rewards, rewards[1:]))
    assert repeats >= 2 and rewards != plain


def test_a_pixel_pipeline_feeds_the_resnet():
    """What an Atari-style config lists, end to end: uint8 RGB -> (1, H, W) float32 in [0, 1]."""
    config = config_module.load(
        "cartpole",
        [
            f"env.id={IMAGE_ENV_ID}",
            "env.num_envs=2",
            "env.frame_stack=2",
            'env.wrappers=["grayscale", "channel_first", "scale:255"]',
            "network.kind=resnet",
            "network.channels=4",
            "network.num_blocks=1",
        ],
    )
    from muzero.storage.replay.factory import EnvSpec  # the callers pass config.env.wrappers on

    spec = EnvSpec.of(config)
    assert spec.observation_shape == (1, HEIGHT, WIDTH) and spec.observation_dtype == np.float32
    network = build_network(config.network, stacked_observation_shape(spec.observation_shape, 2), spec.num_actions)
    from muzero.acting.selfplay import SelfPlay

    selfplay = SelfPlay(config, network, seed=0)
    assert selfplay.stacked.shape == (2, 2, HEIGHT, WIDTH)
    selfplay.step()


def test_wrapper_that_does_not_fit_the_env_names_itself():
    with pytest.raises(ValueError, match=r"wrapper 'grayscale' does not fit observations .*\(4,\)"):
        make_vector_env("CartPole-v1", num_envs=1, seed=0, wrappers=["grayscale"])


@pytest.mark.parametrize(
    "wrappers, index, message",
    [
        (["grayscale", "nope"], 1, "unknown wrapper 'nope'"),
        (["resize"], 0, "needs a size"),
        (["resize:84"], 0, "HxW"),
        (["resize:0x84"], 0, "height must be an integer >= 1"),
        (["scale"], 0, "needs a divisor"),
        (["scale:0"], 0, "divisor must be > 0"),
        (["scale:pixels"], 0, "divisor must be a number"),
        (["clip_reward:3,1"], 0, "low must be < high"),
        (["clip_reward:1,2,3"], 0, "clip_reward:LOW,HIGH"),
        (["max_and_skip:1"], 0, "skip must be an integer >= 2"),
        (["sticky_actions:1.5"], 0, r"probability must be in \[0, 1\)"),
        (["flatten", "grayscale:3"], 1, "takes no arguments"),
    ],
)
def test_bad_wrappers_fail_at_config_time_naming_the_key(wrappers, index, message):
    override = "env.wrappers=[" + ", ".join(f'"{w}"' for w in wrappers) + "]"
    with pytest.raises(config_module.ConfigError, match=rf"^env\.wrappers\[{index}\]: .*{message}"):
        config_module.load("cartpole", [override])


def test_wrappers_must_be_a_list_of_strings():
    with pytest.raises(config_module.ConfigError, match=r"^env\.wrappers: expected a list"):
        config_module.load("cartpole", ['env.wrappers="grayscale"'])
    with pytest.raises(config_module.ConfigError, match=r"^env\.wrappers\[0\]: expected a string"):
        config_module.load("cartpole", ["env.wrappers=[84]"])


def test_every_name_the_config_accepts_has_a_builder_and_parses_in_its_documented_form():
    assert set(BUILDERS) == set(WRAPPER_FORMS)
    for name, (usage, _, _) in WRAPPER_FORMS.items():
        usage = usage.split("[")[0]  # the form without optional arguments
        usage = {"resize:HxW": "resize:84x84", "scale:D": "scale:255"}.get(usage, usage)
        assert callable(build_wrapper(usage)), name


def test_unknown_namespaced_id_says_which_package_registers_it():
    with pytest.raises(ValueError, match=r"pip install ale-py and set env\.plugins = \[\"ale_py\"\]"):
        make_vector_env("ALE/NoSuchGame-v5", num_envs=1, seed=0)
    with pytest.raises(ValueError, match="pip install minatar"):
        make_vector_env("MinAtar/NoSuchGame-v1", num_envs=1, seed=0)
    with pytest.raises(ValueError, match=r"env\.plugins"):
        make_vector_env("NoSuchEnvAnywhere-v0", num_envs=1, seed=0)
