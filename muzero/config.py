"""The typed experiment config: one tree of frozen dataclasses used by every part.

A config is built from a preset file (TOML, under ``muzero/presets/``) plus
``key.path=value`` overrides. Building checks every key and value and raises
:class:`ConfigError` with a single line naming the offending key, so a bad
config fails at start, never halfway through a run.
"""

from __future__ import annotations

import dataclasses
import importlib
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

PRESET_DIR = Path(__file__).parent / "presets"


class ConfigError(ValueError):
    """A config key is unknown, has the wrong type or an impossible value."""


@dataclass(frozen=True)
class EnvConfig:
    id: str = "CartPole-v1"
    """A gymnasium env id (Discrete actions, Box observations) or a board game id."""
    num_envs: int = 16
    """Environments stepped in lockstep by self-play; one batched search per move."""
    frame_stack: int = 1
    max_episode_steps: int = 0
    """0 keeps the env's own limit."""
    random_opening_moves: int = 0
    """Board games: each self-play game starts after k uniformly random legal moves, k drawn
    uniformly from 0..N (a random opening that ends the game is replaced by the initial
    position). Only what follows the opening is played, stored and trained on, so every
    target is still that of good play from there; what it adds is positions good play
    alone never reaches, as an opponent's unusual opening. 0 (default): every game starts
    from the initial position. Evaluation always does."""
    wrappers: list[str] = field(default_factory=list)
    """gymnasium observation/reward wrappers applied in order to each env, each "name" or
    "name:arguments", e.g. ["max_and_skip:4", "grayscale", "resize:84x84", "channel_first",
    "scale:255"]; the names are in WRAPPER_FORMS below (docs/environments.md)."""
    plugins: list[str] = field(default_factory=list)
    """Modules imported before the env is made, so the games they register (with
    muzero.envs.registry.register_game) can be env.id; e.g. ["mypackage.mygame"].
    Entry points of the group "muzero.envs" load without being listed (docs/new-environment.md)."""

    def validate(self) -> None:
        _require(bool(self.id), "env.id", "must not be empty")
        _require(self.num_envs >= 1, "env.num_envs", "must be >= 1")
        _require(self.frame_stack >= 1, "env.frame_stack", "must be >= 1")
        _require(self.max_episode_steps >= 0, "env.max_episode_steps", "must be >= 0")
        _require(self.random_opening_moves >= 0, "env.random_opening_moves", "must be >= 0")
        for i, text in enumerate(self.wrappers):
            try:
                parse_wrapper(text)
            except ValueError as error:
                raise ConfigError(f"env.wrappers[{i}]: {error}") from None
        import_plugins(self.plugins)


@dataclass(frozen=True)
class NetworkConfig:
    kind: Literal["mlp", "resnet", "board"] = "mlp"
    """'mlp' for flat observations; 'resnet' for planes (C, H, W); 'board' for boards whose
    actions are their points (plus a pass): fully convolutional with KataGo's global pooling,
    so one network runs on every board size (muzero/nn/board.py)."""
    hidden_size: int = 64
    """MLP width, and the latent state size of the MLP body."""
    num_layers: int = 2
    """Hidden layers in each MLP (representation, dynamics)."""
    channels: int = 32
    """Channels of the resnet and board bodies."""
    num_blocks: int = 2
    """Residual blocks in each resnet or board body (representation, dynamics)."""
    head_hidden_size: int = 32
    """Width of the hidden layer in the value, reward and policy heads."""
    value_support: int = 10
    """Value support half-width: 2n+1 bins over [-n, n] in transformed space h(x); it covers
    values up to +-h^-1(n): 5 -> 35, 10 -> 117, 30 -> 905, 100 -> 8547."""
    reward_support: int = 5
    """Reward support half-width, as value_support."""
    supports: Literal["auto", "fixed"] = "auto"
    """How the supports meet the env (gymnasium ids; board games keep theirs). At start, a random
    rollout of support_probe_steps measures the largest |reward|; the largest |value| is bounded
    by that reward earned every step until the episode's step limit, discounted. 'auto': a
    support too narrow for that is widened to cover it with 25% to spare (in h space), one wide
    enough is kept; the run's config records what was used. 'fixed': the supports are used as
    set, and a run whose supports are too narrow stops at start naming the key to raise."""
    support_probe_steps: int = 1000
    """Env steps (over all env.num_envs envs) of that random rollout, at least: it goes on until
    every env has ended an episode (terminal rewards count), up to 10x as long; 0 skips it, and
    the check."""
    ownership_head: bool = False
    """kind = 'board': also predict, at the root, who will own each point when the game ends
    (KataGo's ownership target, trained where the episode's end is known; Go)."""
    score_head: bool = False
    """kind = 'board': also predict the final area margin of the player to move, over the
    board's points (KataGo's score target, from the same final ownership)."""
    rules_heads: bool = False
    """The learned model also predicts, at every hidden state, which actions are legal and
    whether the episode has ended (trained on the stored legal masks and episode ends,
    ``training.rules_loss_weight``). A search inside the learned model then expands only
    the moves it predicts legal and stops at states it predicts terminal, as it does in
    the true rules, instead of imagining play the rules forbid."""

    def validate(self) -> None:
        _require(self.kind in ("mlp", "resnet", "board"), "network.kind", "must be 'mlp', 'resnet' or 'board'")
        for key in (
            "hidden_size",
            "num_layers",
            "channels",
            "num_blocks",
            "head_hidden_size",
            "value_support",
            "reward_support",
        ):
            _require(getattr(self, key) >= 1, f"network.{key}", "must be >= 1")
        _require(self.supports in ("auto", "fixed"), "network.supports", "must be 'auto' or 'fixed'")
        _require(self.support_probe_steps >= 0, "network.support_probe_steps", "must be >= 0")
        for key in ("ownership_head", "score_head"):
            _require(not getattr(self, key) or self.kind == "board", f"network.{key}", "needs network.kind = 'board'")
        _require(
            not self.rules_heads or self.kind != "board",
            "network.rules_heads",
            "is for 'mlp' and 'resnet' networks (a 'board' network runs on any size; Go searches its true rules)",
        )


@dataclass(frozen=True)
class SearchConfig:
    algorithm: Literal["muzero", "gumbel"] = "muzero"
    """'muzero': pUCT with Dirichlet root noise; 'gumbel': Gumbel MuZero root rules."""
    model: Literal["learned", "simulator"] = "learned"
    """'learned': search inside the learned model (MuZero); 'simulator': search with the
    true rules of a board game (AlphaZero-style)."""
    num_simulations: int = 25
    pb_c_init: float = 1.25
    pb_c_base: float = 19652.0
    dirichlet_alpha: float = 0.25
    exploration_fraction: float = 0.25
    temperature: list[list[float]] = field(default_factory=lambda: [[0.0, 1.0]])
    """Visit-count temperature schedule: [[from_env_step, temperature], ...]."""
    eval_temperature: float = 0.0
    sample_moves: int = 0
    """pUCT self-play: the first ``sample_moves`` moves of each episode are sampled from
    the visit counts at the scheduled temperature, later ones take the most visited
    action (AlphaZero's opening randomisation); 0 samples every move."""
    fast_simulations: int = 0
    """Playout cap randomisation (KataGo, Wu 2019): 0 searches every self-play move with
    num_simulations. Above 0, a move is a full search (num_simulations, root noise, its policy
    a training target) with probability full_search_fraction, and otherwise a fast one
    (fast_simulations, no noise, no policy target; its value targets still train). One draw
    per move serves all env.num_envs games, so each move stays one batched search."""
    full_search_fraction: float = 0.25
    """Playout cap randomisation: the share of moves searched in full (KataGo's 0.25)."""
    resign: bool = False
    """Self-play of two-player board games with search.model = 'simulator': a player resigns
    when the root value (its own) stays below resign_threshold for resign_after of its moves
    in a row, the game ending as its loss. Games that end early are shorter, so play goes
    faster; a wrong resignation teaches a wrong outcome, hence no_resign_fraction."""
    resign_threshold: float = -0.9
    resign_after: int = 3
    no_resign_fraction: float = 0.1
    """Share of games (drawn at each game's start) in which nobody resigns; where a player would
    have, the end of the game shows whether it was right (the false resignation rate reported
    by self-play), as AlphaGo Zero kept it under 5%."""
    ez_greedy_epsilon: float = 0.0
    """Self-play's temporally-extended exploration (εz-greedy, Dabney et al. 2021;
    muzero/acting/exploration.py): each step, an env not already exploring starts with this
    probability to repeat one random legal action for n ~ Zeta(ez_greedy_mu) steps (at most
    ez_greedy_max_repeat). For tasks whose reward is silent until a goal that independent
    random actions do not reach. Evaluation never explores. 0 (default) turns it off."""
    ez_greedy_mu: float = 2.0
    ez_greedy_max_repeat: int = 100
    max_considered_actions: int = 16
    """Gumbel: actions sampled at the root (Gumbel-top-k)."""
    gumbel_scale: float = 1.0
    c_visit: float = 50.0
    c_scale: float = 0.1

    def validate(self) -> None:
        _require(self.algorithm in ("muzero", "gumbel"), "search.algorithm", "must be 'muzero' or 'gumbel'")
        _require(self.model in ("learned", "simulator"), "search.model", "must be 'learned' or 'simulator'")
        _require(self.num_simulations >= 1, "search.num_simulations", "must be >= 1")
        _require(self.pb_c_init > 0, "search.pb_c_init", "must be > 0")
        _require(self.pb_c_base > 0, "search.pb_c_base", "must be > 0")
        _require(self.dirichlet_alpha > 0, "search.dirichlet_alpha", "must be > 0")
        _require(0 <= self.exploration_fraction <= 1, "search.exploration_fraction", "must be in [0, 1]")
        _require(self.eval_temperature >= 0, "search.eval_temperature", "must be >= 0")
        _require(self.sample_moves >= 0, "search.sample_moves", "must be >= 0")
        _require(self.max_considered_actions >= 1, "search.max_considered_actions", "must be >= 1")
        _require(0 <= self.ez_greedy_epsilon <= 1, "search.ez_greedy_epsilon", "must be in [0, 1]")
        _require(self.ez_greedy_mu > 1, "search.ez_greedy_mu", "must be > 1 (a zeta distribution's exponent)")
        _require(self.ez_greedy_max_repeat >= 1, "search.ez_greedy_max_repeat", "must be >= 1")
        _require(self.fast_simulations >= 0, "search.fast_simulations", "must be >= 0")
        if self.fast_simulations:
            _require(
                self.fast_simulations < self.num_simulations,
                "search.fast_simulations",
                f"must be below search.num_simulations ({self.num_simulations})",
            )
            _require(
                self.algorithm == "muzero",
                "search.fast_simulations",
                "playout cap randomisation needs search.algorithm = 'muzero'",
            )
        _require(0 < self.full_search_fraction <= 1, "search.full_search_fraction", "must be in (0, 1]")
        _require(-1 < self.resign_threshold < 1, "search.resign_threshold", "must be in (-1, 1)")
        _require(self.resign_after >= 1, "search.resign_after", "must be >= 1")
        _require(0 <= self.no_resign_fraction <= 1, "search.no_resign_fraction", "must be in [0, 1]")
        _require(
            len(self.temperature) >= 1, "search.temperature", "needs at least one [from_env_step, temperature] pair"
        )
        previous = -1.0
        for i, pair in enumerate(self.temperature):
            _require(len(pair) == 2, f"search.temperature[{i}]", "must be [from_env_step, temperature]")
            _require(pair[0] > previous, f"search.temperature[{i}]", "env steps must increase")
            _require(pair[1] >= 0, f"search.temperature[{i}]", "temperature must be >= 0")
            previous = pair[0]

    def temperature_at(self, env_steps: int) -> float:
        value = self.temperature[0][1]
        for start, temperature in self.temperature:
            if env_steps >= start:
                value = temperature
        return float(value)


@dataclass(frozen=True)
class TrainingConfig:
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 128
    unroll_steps: int = 5
    """K: steps the model is unrolled in training."""
    td_steps: int = 10
    """n: steps of real reward before bootstrapping from a search value."""
    discount: float = 0.997
    learning_rate: float = 3e-3
    lr_warmup_steps: int = 0
    lr_decay_steps: int = 0
    """Learner steps, counted after the warm-up, over which the learning rate falls from
    ``learning_rate`` to ``learning_rate * lr_final_fraction`` along a half cosine
    (Loshchilov & Hutter 2017), then stays there. 0 (default) keeps it constant. A late,
    small step size is what lets the last checkpoints of a run agree with each other."""
    lr_final_fraction: float = 0.1
    """With lr_decay_steps: the learning rate at the end of the decay, as a fraction of
    ``learning_rate``."""
    weight_decay: float = 1e-4
    max_grad_norm: float = 5.0
    value_loss_weight: float = 0.25
    ownership_loss_weight: float = 1.5
    """With network.ownership_head: weight of the ownership loss, a cross-entropy per point
    averaged over the board (KataGo's 1.5 / points, summed)."""
    score_loss_weight: float = 0.5
    """With network.score_head: weight of the squared error of the final margin over points."""
    consistency_loss_weight: float = 0.0
    """Weight of EfficientZero's self-supervised consistency loss (Ye et al. 2021: 2.0): at
    each unrolled step, the negative cosine similarity between the projected and predicted
    dynamics output and the projection of the representation of the observation actually
    seen there (gradient stopped, SimSiam-style). 0 leaves it out."""
    rules_loss_weight: float = 1.0
    """With network.rules_heads: weight of their binary cross-entropies (legal moves,
    averaged over the actions, and the episode's end), at the root and every unrolled step."""
    consistency_projection_size: int = 256
    """Width of the consistency loss's projection (its predictor's bottleneck is a quarter)."""
    bootstrap: Literal["stored", "target_network"] = "target_network"
    """What n-step value targets bootstrap from: the root values stored at play time, or
    the stored observations re-evaluated by a target network (fresher, costs a forward pass)."""
    target_update_interval: int = 100
    """Learner steps between copies of the network into the target network."""
    weight_average_decay: float = 0.0
    """Polyak averaging: with d > 0 the model that acts, is evaluated and is checkpointed is
    an exponential moving average of the trained weights (each update moves it 1 - d of the
    way, d warmed up as (1 + t) / (10 + t) over the first updates), which smooths the
    update-to-update noise out of the played network. The trained weights stay in the
    checkpoint's trainer state for resuming. 0 (default) acts with the trained weights."""
    train_ratio: float = 0.5
    """Learner samples per environment step (replay ratio); the loop keeps to it."""
    max_env_steps: int = 50_000
    max_wall_s: float = 0.0
    """0 means no wall-time limit."""
    checkpoint_interval: int = 500
    """Learner steps between checkpoints."""
    eval_interval: int = 5_000
    """Environment steps between evaluations; 0 disables them."""
    eval_episodes: int = 20
    target_return: float = 0.0
    """Stop early once an evaluation reaches this mean return (0: never)."""
    evals_after_target: int = 0
    """With target_return: evaluations still run after it is first reached before the run
    stops (whether the level holds; benchmarks/learn.py cartpole uses 4)."""
    torch_threads: int = 0
    """0 lets torch choose."""
    augment: Literal["none", "d4"] = "none"
    """'d4': each example drawn is rotated or mirrored by one of the square board's eight
    symmetries, at random (observations, actions and policy targets alike); for games like
    Go whose rules have them (muzero/learning/augment.py)."""

    def validate(self) -> None:
        _require(self.batch_size >= 1, "training.batch_size", "must be >= 1")
        _require(self.augment in ("none", "d4"), "training.augment", "must be 'none' or 'd4'")
        _require(self.unroll_steps >= 1, "training.unroll_steps", "must be >= 1")
        _require(self.td_steps >= 1, "training.td_steps", "must be >= 1")
        _require(0 < self.discount <= 1, "training.discount", "must be in (0, 1]")
        _require(self.learning_rate > 0, "training.learning_rate", "must be > 0")
        _require(self.ownership_loss_weight >= 0, "training.ownership_loss_weight", "must be >= 0")
        _require(self.score_loss_weight >= 0, "training.score_loss_weight", "must be >= 0")
        _require(self.consistency_loss_weight >= 0, "training.consistency_loss_weight", "must be >= 0")
        _require(0 <= self.weight_average_decay < 1, "training.weight_average_decay", "must be in [0, 1)")
        _require(self.rules_loss_weight >= 0, "training.rules_loss_weight", "must be >= 0")
        _require(self.consistency_projection_size >= 4, "training.consistency_projection_size", "must be >= 4")
        _require(self.lr_warmup_steps >= 0, "training.lr_warmup_steps", "must be >= 0")
        _require(self.lr_decay_steps >= 0, "training.lr_decay_steps", "must be >= 0")
        _require(0 <= self.lr_final_fraction <= 1, "training.lr_final_fraction", "must be in [0, 1]")
        _require(self.weight_decay >= 0, "training.weight_decay", "must be >= 0")
        _require(self.max_grad_norm > 0, "training.max_grad_norm", "must be > 0")
        _require(self.value_loss_weight > 0, "training.value_loss_weight", "must be > 0")
        _require(self.train_ratio > 0, "training.train_ratio", "must be > 0")
        _require(self.target_update_interval >= 1, "training.target_update_interval", "must be >= 1")
        _require(self.max_env_steps >= 1, "training.max_env_steps", "must be >= 1")
        _require(self.max_wall_s >= 0, "training.max_wall_s", "must be >= 0")
        _require(self.checkpoint_interval >= 1, "training.checkpoint_interval", "must be >= 1")
        _require(self.eval_interval >= 0, "training.eval_interval", "must be >= 0")
        _require(self.eval_episodes >= 1, "training.eval_episodes", "must be >= 1")
        _require(self.evals_after_target >= 0, "training.evals_after_target", "must be >= 0")
        _require(self.torch_threads >= 0, "training.torch_threads", "must be >= 0")
        _require(
            self.device == "cpu" or self.device.startswith("cuda"), "training.device", "must be 'cpu' or 'cuda[:N]'"
        )


@dataclass(frozen=True)
class ReplayConfig:
    backend: Literal["memory", "redis"] = "memory"
    capacity: int = 100_000
    """Capacity in transitions; the oldest segments are evicted first."""
    capacity_bytes: int = 0
    """Redis: stored bytes (compressed frames, segments, targets) across all shards; 0: no limit."""
    segment_length: int = 200
    """Steps a segment owns (it also carries unroll + td context after them)."""
    min_size: int = 1_000
    """Transitions stored before training starts."""
    priority_alpha: float = 1.0
    priority_beta: float = 1.0
    priority_eps: float = 1e-6
    redis_urls: list[str] = field(default_factory=list)
    """Redis: one URL per shard, e.g. ["redis://:password@replay-redis-0:6379/0"]."""
    key_prefix: str = "mz"
    cache_bytes: int = 256 * 2**20
    """Redis: decoded segments and frames a replay front keeps in memory, so a window drawn
    again costs no Redis read or decode (both are immutable; reanalysed targets are versioned);
    0 turns the cache off."""
    zstd_level: int = 3
    zstd_dictionary: bool = False
    """Train a zstd dictionary on the first frames (helps small frames) and use it for frames
    of at most ``zstd_dictionary_max_frame_bytes``."""
    zstd_dictionary_frames: int = 512
    zstd_dictionary_bytes: int = 16_384
    zstd_dictionary_max_frame_bytes: int = 65_536
    samples_per_insert: float = 0.0
    """Rate limiter: sampled transitions per inserted transition the sides are held to; 0: off."""
    samples_per_insert_error_buffer: float = 0.0
    """Rate limiter: how many samples the two sides may drift from the ratio before the
    faster one blocks (Reverb's error buffer); 0 picks 2 x samples_per_insert x segment_length,
    enough that one segment's insert never deadlocks against a waiting sampler."""

    def validate(self) -> None:
        _require(self.backend in ("memory", "redis"), "replay.backend", "must be 'memory' or 'redis'")
        _require(self.capacity >= 1, "replay.capacity", "must be >= 1")
        _require(self.capacity_bytes >= 0, "replay.capacity_bytes", "must be >= 0")
        _require(self.cache_bytes >= 0, "replay.cache_bytes", "must be >= 0")
        _require(self.segment_length >= 1, "replay.segment_length", "must be >= 1")
        _require(self.min_size >= 1, "replay.min_size", "must be >= 1")
        _require(self.min_size <= self.capacity, "replay.min_size", "must be <= replay.capacity")
        _require(self.priority_alpha >= 0, "replay.priority_alpha", "must be >= 0")
        _require(0 <= self.priority_beta <= 1, "replay.priority_beta", "must be in [0, 1]")
        _require(self.priority_eps > 0, "replay.priority_eps", "must be > 0")
        _require(
            self.backend != "redis" or len(self.redis_urls) >= 1,
            "replay.redis_urls",
            "needs at least one URL when replay.backend = 'redis'",
        )
        for i, url in enumerate(self.redis_urls):
            _require(
                isinstance(url, str) and url.startswith(("redis://", "rediss://", "unix://")),
                f"replay.redis_urls[{i}]",
                "must be a redis://, rediss:// or unix:// URL",
            )
        _require(
            bool(self.key_prefix) and "{" not in self.key_prefix and "}" not in self.key_prefix,
            "replay.key_prefix",
            "must be non-empty, without braces",
        )
        _require(-7 <= self.zstd_level <= 22, "replay.zstd_level", "must be in [-7, 22]")
        _require(self.zstd_dictionary_frames >= 8, "replay.zstd_dictionary_frames", "must be >= 8")
        _require(self.zstd_dictionary_bytes >= 256, "replay.zstd_dictionary_bytes", "must be >= 256")
        _require(self.samples_per_insert >= 0, "replay.samples_per_insert", "must be >= 0")
        _require(self.samples_per_insert_error_buffer >= 0, "replay.samples_per_insert_error_buffer", "must be >= 0")


@dataclass(frozen=True)
class ReanalyzeConfig:
    fraction: float = 0.5
    """Reanalysed transitions per transition the actors store: workers pause while the store's
    reanalysed total reaches fraction x its inserted total. With uniform reads, about this
    share of training examples (for fraction <= 1) carries targets searched again since
    they were played; reanalyze then spends this share of the actors' search."""
    segments_per_round: int = 8
    """Segments read from replay per round."""
    search_batch: int = 256
    """Roots searched at once."""
    local: bool = False
    """Local mode reanalyses too: after each burst of training, stored segments are searched
    again with the newest network (learned model only) until the reanalysed transitions
    reach ``fraction`` of those played, as the cluster's workers pace themselves."""

    def validate(self) -> None:
        _require(0 <= self.fraction <= 1, "reanalyze.fraction", "must be in [0, 1]")
        _require(self.segments_per_round >= 1, "reanalyze.segments_per_round", "must be >= 1")
        _require(self.search_batch >= 1, "reanalyze.search_batch", "must be >= 1")


@dataclass(frozen=True)
class WarmStartConfig:
    """Local mode, Go: games of an existing engine, imitated before self-play begins
    (policy: its moves; value: its results), the way strong open-source Go programs
    bootstrapped. Everything happens inside the run (muzero/operations/warm_start.py)."""

    games: int = 0
    """Games of GNU Go playing itself to generate into the run folder (warm_start/*.sgf);
    0: none. Needs GNU Go (apt-get install gnugo)."""
    level: int = 10
    """GNU Go's level (0-10) for those games."""
    random_opening_moves: int = 6
    """Each generated game opens with 0 to this many random moves (uniform), so that games
    differ; they are marked in the SGF and are not imitated."""
    processes: int = 2
    """GNU Go processes generating games at once."""
    sgf_dir: str = ""
    """Also (or instead) imitate every *.sgf game in this folder (plain games from an empty
    board, e.g. professional or engine games of env.id's board size)."""
    train_steps: int = 0
    """Learner steps on those games before self-play starts (the games then stay in replay
    until evicted, like self-play data)."""

    def validate(self) -> None:
        _require(self.games >= 0, "warm_start.games", "must be >= 0")
        _require(0 <= self.level <= 10, "warm_start.level", "must be in [0, 10] (GNU Go's levels)")
        _require(self.random_opening_moves >= 0, "warm_start.random_opening_moves", "must be >= 0")
        _require(self.processes >= 1, "warm_start.processes", "must be >= 1")
        _require(self.train_steps >= 0, "warm_start.train_steps", "must be >= 0")

    @property
    def enabled(self) -> bool:
        return bool(self.games or self.sgf_dir)


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "experiment"
    env: EnvConfig = field(default_factory=EnvConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    reanalyze: ReanalyzeConfig = field(default_factory=ReanalyzeConfig)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)

    def validate(self) -> None:
        _require(bool(self.name), "name", "must not be empty")
        sections = (self.env, self.network, self.search, self.training, self.replay, self.reanalyze, self.warm_start)
        for section in sections:
            section.validate()
        _require(
            not self.reanalyze.local or self.search.model == "learned",
            "reanalyze.local",
            "reanalysis searches the learned model (search.model = 'learned'); stored segments keep no game states "
            "for a 'simulator' search",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- building ---------------------------------------------------------------------------


def import_plugins(modules: list[str] | tuple[str, ...]) -> None:
    """Import each module of ``env.plugins``: importing registers its games or env ids.
    An import that fails is a ConfigError naming ``env.plugins[i]``."""
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ConfigError(f"env.plugins[{i}]: cannot import module {module!r} ({error})") from None


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _check_type(value: Any, annotation: Any, key: str) -> Any:
    """Return ``value`` as the annotated type, or raise ConfigError naming ``key``."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise ConfigError(f"{key}: must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [_check_type(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{key}: must be finite, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {annotation!r} at {key}")


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            where = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(fields))})")
    kwargs = {}
    for name in fields:
        if name not in data:
            continue
        key = f"{prefix}.{name}" if prefix else name
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):  # a nested section (a dataclass class)
            kwargs[name] = _build(hint, data[name], key)
        else:
            kwargs[name] = _check_type(data[name], hint, key)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as TOML, else kept as a bare string."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{'.'.join(path)}: {part} is not a table")
        node[path[-1]] = value
    return data


def from_dict(data: dict[str, Any]) -> ExperimentConfig:
    config = _build(ExperimentConfig, data, "")
    config.validate()
    return config


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load(preset_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Load a preset by name (``cartpole``) or a TOML file by path, then apply overrides."""
    path = Path(preset_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{preset_or_path}.toml"
        if not path.exists():
            raise ConfigError(f"preset {preset_or_path!r} not found (presets: {', '.join(preset_names())})")
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return from_dict(apply_overrides(data, list(overrides)))


def replace(config: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """Return ``config`` with ``key.path=value`` overrides applied and validated."""
    return from_dict(apply_overrides(config.to_dict(), overrides))


# --- env.wrappers: the names and the arguments each takes -------------------------------
# The grammar lives here so a typo fails when the config is built; muzero/envs/wrappers.py
# turns a parsed WrapperSpec into the gymnasium wrapper (one builder per name below).


@dataclass(frozen=True)
class WrapperSpec:
    """One parsed entry of ``env.wrappers``: ``"resize:84x84"`` -> ``WrapperSpec("resize", {"shape": (84, 84)})``."""

    name: str
    arguments: dict[str, Any]


def _no_arguments(name: str, arguments: str | None) -> dict[str, Any]:
    if arguments is not None:
        raise ValueError(f"{name} takes no arguments, got {arguments!r}")
    return {}


def _integer_argument(name: str, text: str, what: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}: {what} must be an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise ValueError(f"{name}: {what} must be an integer >= {minimum}, got {value}")
    return value


def _number_argument(name: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}: {what} must be a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name}: {what} must be finite, got {text!r}")
    return value


def _resize_arguments(arguments: str | None) -> dict[str, Any]:
    if arguments is None:
        raise ValueError("resize needs a size: resize:HxW (e.g. resize:84x84)")
    parts = arguments.lower().split("x")
    if len(parts) != 2:
        raise ValueError(f"resize: size must be HxW (e.g. 84x84), got {arguments!r}")
    return {
        "shape": (_integer_argument("resize", parts[0], "height", 1), _integer_argument("resize", parts[1], "width", 1))
    }


def _scale_arguments(arguments: str | None) -> dict[str, Any]:
    if arguments is None:
        raise ValueError("scale needs a divisor: scale:D (e.g. scale:255 maps uint8 pixels to [0, 1])")
    divisor = _number_argument("scale", arguments, "divisor")
    if divisor <= 0:
        raise ValueError(f"scale: divisor must be > 0, got {arguments!r}")
    return {"divisor": divisor}


def _clip_reward_arguments(arguments: str | None) -> dict[str, Any]:
    if arguments is None:
        return {"low": -1.0, "high": 1.0}  # the Atari convention (DQN)
    bounds = arguments.split(",")
    if len(bounds) == 1:
        bound = abs(_number_argument("clip_reward", bounds[0], "bound"))
        low, high = -bound, bound
    elif len(bounds) == 2:
        low = _number_argument("clip_reward", bounds[0], "low")
        high = _number_argument("clip_reward", bounds[1], "high")
    else:
        raise ValueError(f"clip_reward: expected clip_reward, clip_reward:B or clip_reward:LOW,HIGH, got {arguments!r}")
    if not low < high:
        raise ValueError(f"clip_reward: low must be < high, got {arguments!r}")
    return {"low": low, "high": high}


def _max_and_skip_arguments(arguments: str | None) -> dict[str, Any]:
    return {"skip": 4 if arguments is None else _integer_argument("max_and_skip", arguments, "skip", 2)}


def _sticky_actions_arguments(arguments: str | None) -> dict[str, Any]:
    probability = 0.25 if arguments is None else _number_argument("sticky_actions", arguments, "probability")
    if not 0 <= probability < 1:
        raise ValueError(f"sticky_actions: probability must be in [0, 1), got {arguments!r}")
    return {"probability": probability}


WRAPPER_FORMS: dict[str, tuple[str, str, typing.Callable[[str | None], dict[str, Any]]]] = {
    "grayscale": (
        "grayscale",
        "RGB (H, W, 3) uint8 -> grey (H, W, 1)",
        lambda arguments: _no_arguments("grayscale", arguments),
    ),
    "resize": ("resize:HxW", "images -> (H, W[, C]) by area interpolation (needs OpenCV)", _resize_arguments),
    "channel_first": (
        "channel_first",
        "(H, W, C) -> (C, H, W); (H, W) -> (1, H, W)",
        lambda arguments: _no_arguments("channel_first", arguments),
    ),
    "flatten": ("flatten", "any Box -> 1-D", lambda arguments: _no_arguments("flatten", arguments)),
    "float32": ("float32", "cast observations to float32", lambda arguments: _no_arguments("float32", arguments)),
    "scale": ("scale:D", "float32 observations divided by D (scale:255 for pixels)", _scale_arguments),
    "clip_reward": (
        "clip_reward[:B | :LOW,HIGH]",
        "clip rewards to [-1, 1], [-B, B] or [LOW, HIGH]",
        _clip_reward_arguments,
    ),
    "max_and_skip": (
        "max_and_skip[:N]",
        "repeat each action N times (default 4), sum the rewards, observe the max of the last two frames",
        _max_and_skip_arguments,
    ),
    "sticky_actions": (
        "sticky_actions[:P]",
        "repeat the previous action with probability P (default 0.25, Machado et al. 2018)",
        _sticky_actions_arguments,
    ),
}
"""name -> (how to write it, what it does, arguments text or None -> keyword arguments; ValueError if bad)."""


def parse_wrapper(text: str) -> WrapperSpec:
    """``"name"`` or ``"name:arguments"`` -> its WrapperSpec; ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"expected a wrapper string like 'grayscale' or 'resize:84x84', got {text!r}")
    name, colon, arguments = text.strip().partition(":")
    name = name.strip()
    if name not in WRAPPER_FORMS:
        raise ValueError(f"unknown wrapper {name!r} (wrappers: {', '.join(WRAPPER_FORMS)})")
    _, _, parse_arguments = WRAPPER_FORMS[name]
    return WrapperSpec(name, parse_arguments(arguments.strip() if colon else None))
