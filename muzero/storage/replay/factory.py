"""Build the replay store an experiment config asks for."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import numpy as np

from muzero.config import ExperimentConfig
from muzero.envs.vector import make_vector_env
from muzero.storage.replay.memory import MemoryReplay
from muzero.storage.replay.protocol import ReplayStorage
from muzero.storage.replay.redis_store import RedisReplay


@dataclass(frozen=True)
class EnvSpec:
    """What a store (and the wire) must know about an experiment's environment."""

    num_actions: int
    observation_shape: tuple[int, ...]  # one frame, before stacking
    observation_dtype: np.dtype
    num_players: int

    @classmethod
    def of(cls, config: ExperimentConfig) -> EnvSpec:
        env = make_vector_env(config.env.id, 1, config.training.seed, config.env.max_episode_steps, config.env.wrappers)
        try:
            return cls(env.num_actions, tuple(env.observation_shape), np.dtype(env.observation_dtype), env.num_players)
        finally:
            close = getattr(env, "close", None)
            if close:
                close()


def redis_overrides(urls: str | list[str], password: str = "") -> list[str]:
    """Config overrides that put replay on these Redis shards (a list, or one comma-separated
    string as in MUZERO_REDIS_URLS); none for no URLs. ``password`` (e.g. MUZERO_REDIS_PASSWORD,
    from a Kubernetes Secret) goes into each URL that carries no credentials of its own."""
    if isinstance(urls, str):
        urls = urls.split(",")
    urls = [u.strip() for u in urls if u.strip()]
    if not urls:
        return []
    if password:
        urls = [_with_password(u, password) for u in urls]
    return ["replay.backend=redis", "replay.redis_urls=[" + ", ".join(f'"{u}"' for u in urls) + "]"]


def _with_password(url: str, password: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" in rest.split("/", 1)[0]:
        return url  # no scheme to place it after, or credentials already given
    return f"{scheme}://:{quote(password, safe='')}@{rest}"


def window_steps(config: ExperimentConfig) -> int:
    """Steps of a segment one training example needs: K unrolled + n bootstrap + 1."""
    return config.training.unroll_steps + config.training.td_steps + 1


def build_store(config: ExperimentConfig, spec: EnvSpec | None = None) -> ReplayStorage:
    spec = spec or EnvSpec.of(config)
    if config.replay.backend == "memory":
        return MemoryReplay(
            config.replay,
            num_actions=spec.num_actions,
            observation_shape=spec.observation_shape,
            frame_stack=config.env.frame_stack,
        )
    return RedisReplay(
        config.replay,
        experiment=config.name,
        num_actions=spec.num_actions,
        observation_shape=spec.observation_shape,
        frame_stack=config.env.frame_stack,
        window_steps=window_steps(config),
        observation_dtype=spec.observation_dtype,
    )
