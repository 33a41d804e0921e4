"""The gymnasium wrappers that ``env.wrappers`` names, built from their parsed form.

A wrapper is written as a string, ``"name"`` or ``"name:arguments"``, and the
list is applied in order, each wrapping the one before (the first wraps the
env itself)::

    wrappers = ["max_and_skip:4", "grayscale", "resize:84x84", "channel_first", "scale:255"]

Strings rather than tables keep one form for TOML files, ``key=value``
overrides and the Helm schema. The names and their arguments are parsed in
the config layer (``muzero.config.WRAPPER_FORMS``, so a typo fails when the
config is built); this module holds one builder per name. Where gymnasium has
the wrapper, it is gymnasium's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import numpy as np

from muzero.config import parse_wrapper

EnvWrapper = Callable[[gymnasium.Env], gymnasium.Wrapper]
"""What gymnasium.make_vec(wrappers=...) takes: one env in, that env wrapped out."""


class WrapperError(ValueError):
    """A wrapper string names no wrapper, has bad arguments, or does not fit the env."""


def _grayscale(env: gymnasium.Env) -> gymnasium.Wrapper:
    # keep_dim: (H, W, 1), so channel_first and frame stacking see a channel axis.
    return gymnasium.wrappers.GrayscaleObservation(env, keep_dim=True)


def _resize(env: gymnasium.Env, shape: tuple[int, int]) -> gymnasium.Wrapper:
    # Checked here, not when parsing: a config that resizes is valid on a machine without OpenCV.
    try:
        import cv2  # noqa: F401  (gymnasium's ResizeObservation imports it too, with a vaguer error)
    except ImportError:
        raise WrapperError("resize needs OpenCV: pip install opencv-python-headless") from None
    return gymnasium.wrappers.ResizeObservation(env, shape)


def _channel_first(env: gymnasium.Env) -> gymnasium.Wrapper:
    space = env.observation_space
    if not isinstance(space, gymnasium.spaces.Box) or len(space.shape) not in (2, 3):
        raise WrapperError(f"channel_first needs (H, W) or (H, W, C) Box observations, got {space}")
    if len(space.shape) == 2:  # a grey image without a channel axis gets one
        return gymnasium.wrappers.TransformObservation(
            env, lambda obs: obs[None], gymnasium.spaces.Box(space.low[None], space.high[None], dtype=space.dtype)
        )
    transposed = gymnasium.spaces.Box(np.moveaxis(space.low, -1, 0), np.moveaxis(space.high, -1, 0), dtype=space.dtype)
    return gymnasium.wrappers.TransformObservation(
        env, lambda obs: np.ascontiguousarray(np.moveaxis(obs, -1, 0)), transposed
    )


def _flatten(env: gymnasium.Env) -> gymnasium.Wrapper:
    return gymnasium.wrappers.FlattenObservation(env)


def _float32(env: gymnasium.Env) -> gymnasium.Wrapper:
    return gymnasium.wrappers.DtypeObservation(env, np.float32)


def _scale(env: gymnasium.Env, divisor: float) -> gymnasium.Wrapper:
    space = env.observation_space
    if not isinstance(space, gymnasium.spaces.Box):
        raise WrapperError(f"scale needs Box observations, got {space}")
    scaled = gymnasium.spaces.Box(
        (space.low / divisor).astype(np.float32), (space.high / divisor).astype(np.float32), dtype=np.float32
    )
    return gymnasium.wrappers.TransformObservation(
        env, lambda obs: np.asarray(obs, dtype=np.float32) / np.float32(divisor), scaled
    )


def _clip_reward(env: gymnasium.Env, low: float, high: float) -> gymnasium.Wrapper:
    return gymnasium.wrappers.ClipReward(env, low, high)


def _max_and_skip(env: gymnasium.Env, skip: int) -> gymnasium.Wrapper:
    return gymnasium.wrappers.MaxAndSkipObservation(env, skip=skip)


def _sticky_actions(env: gymnasium.Env, probability: float) -> gymnasium.Wrapper:
    return gymnasium.wrappers.StickyAction(env, repeat_action_probability=probability)


BUILDERS: dict[str, Callable[..., gymnasium.Wrapper]] = {
    "grayscale": _grayscale,
    "resize": _resize,
    "channel_first": _channel_first,
    "flatten": _flatten,
    "float32": _float32,
    "scale": _scale,
    "clip_reward": _clip_reward,
    "max_and_skip": _max_and_skip,
    "sticky_actions": _sticky_actions,
}
"""name -> (env, **the arguments muzero.config.parse_wrapper gives) -> the wrapped env; one for
each name of muzero.config.WRAPPER_FORMS (tests/test_env_wrappers.py checks)."""


def build_wrapper(text: str) -> EnvWrapper:
    """``"name"`` or ``"name:arguments"`` -> a function that wraps one env; WrapperError if it is not valid."""
    try:
        spec = parse_wrapper(text)
    except ValueError as error:
        raise WrapperError(str(error)) from None
    build = BUILDERS[spec.name]
    arguments: dict[str, Any] = spec.arguments

    def wrap(env: gymnasium.Env) -> gymnasium.Wrapper:
        # gymnasium's wrappers check the space they are given with TypeError/ValueError/assert;
        # say which wrapper of the list did not fit.
        try:
            return build(env, **arguments)
        except WrapperError as error:
            raise WrapperError(f"wrapper {text!r}: {error}") from None
        except (TypeError, ValueError, AssertionError, gymnasium.error.Error) as error:
            raise WrapperError(f"wrapper {text!r} does not fit observations {env.observation_space}: {error}") from None

    return wrap


def build_wrappers(texts: Sequence[str]) -> list[EnvWrapper]:
    """The wrapper functions for ``texts`` (``env.wrappers``), in order; WrapperError naming a bad one."""
    wrappers = []
    for i, text in enumerate(texts):
        try:
            wrappers.append(build_wrapper(text))
        except WrapperError as error:
            raise WrapperError(f"env.wrappers[{i}]: {error}") from None
    return wrappers
