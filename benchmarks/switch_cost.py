"""Switch cost: how much slower self-play, search and the learner run with the added learned-model switches.

The switches: ``network.rules_heads`` (legal-move and episode-end heads evaluated on every
hidden state the search reaches, muzero/search/step_fns.py) and
``training.consistency_loss_weight`` (EfficientZero's consistency loss, training only,
muzero/learning/consistency.py). The requirement: no slowdown of the search or of self-play
beyond 10% from them. For a preset (default ``tictactoe-learned``) it measures

- self-play: env steps per second of ``SelfPlay.step()`` (num_envs games in lockstep, one
  batched search per move, as local mode and the actor run it), rules heads off and on;
- search: simulations per second of one batched search of num_envs roots (mid-game positions
  of a short self-play) with num_simulations each, in the learned model, rules heads off and
  on (a "simulation" counts one root's descent-expand-backup, as in benchmarks/search.py);
- learner: updates per second of ``Trainer.train_step`` on a fixed batch of batch_size
  examples sampled from a short self-play's replay store, made as local mode makes it
  (``batch_from_sample``, with the rules targets or the consistency loss's observations when
  the variant asks for them; making the batch is not timed): off, rules heads, consistency
  loss weight 2, both.

Networks are untrained: every variant has the off network's weights (seeded), and the rules
heads' verdicts are held at "every move legal, never ended", so the search grows the same
trees with and without them; the figures are compute cost, not search quality (an untrained
head's arbitrary verdicts would change the trees: each predicted end skips a network call).
With ``search.model = 'simulator'`` self-play never runs the learned model, so its rules
heads cost it nothing.

The machine may be shared and noisy, so each figure is a ratio against a peer measured in the
same run: the variants of a part are interleaved in rounds (forward, then reversed order the
next round), each timed for --seconds after --warmup untimed calls. Reported per variant: the
median rate over rounds; per switch: the median over rounds of (rate with it) / (rate off)
and the slowdown 100 * (1 - that ratio) in percent (negative: faster); for self-play and
search, whether it is within the 10% bar (the learner's figures are stated, not judged).

    python benchmarks/switch_cost.py [--preset tictactoe-learned] [--set KEY=VALUE ...]
        [--rounds 5] [--seconds 3] [--warmup 3] [--simulations N] [--threads 2] [--seed 0]

``--set`` overrides apply to every variant (the switches themselves are set per variant);
``--simulations`` sets search.num_simulations for self-play and search alike. Where another
process keeps the cores busy, torch's threads wait on each other and every figure drops
(on 2 shared cores, 2 threads ran hundreds of times slower than 1, and the ratios then weigh
how often the threads synchronise, not the work): use ``--threads 1`` there, and say so.
Progress goes to stderr; a table to stdout, whose last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from muzero import config as config_module
from muzero.acting.selfplay import SelfPlay
from muzero.config import ExperimentConfig
from muzero.envs.vector import make_vector_env
from muzero.learning.batch import batch_from_sample
from muzero.learning.segment import stacked_observation_shape
from muzero.learning.supports import adapt_to_env
from muzero.learning.trainer import Trainer
from muzero.nn.networks import MuZeroNetwork, build_network
from muzero.search import make_search
from muzero.search.step_fns import LearnedModel
from muzero.storage.replay.memory import MemoryReplay

BAR_PCT = 10.0
"""The requirement: no slowdown beyond this many percent."""
CONSISTENCY_WEIGHT = 2.0
"""EfficientZero's weight (Ye et al. 2021)."""
VARIANTS: dict[str, list[str]] = {
    "off": ["network.rules_heads=false", "training.consistency_loss_weight=0"],
    "rules_heads": ["network.rules_heads=true", "training.consistency_loss_weight=0"],
    "consistency": ["network.rules_heads=false", f"training.consistency_loss_weight={CONSISTENCY_WEIGHT}"],
    "both": ["network.rules_heads=true", f"training.consistency_loss_weight={CONSISTENCY_WEIGHT}"],
}
PARTS: dict[str, tuple[str, list[str]]] = {
    # part: (unit, variants; the first is the baseline the others are divided by)
    "selfplay": ("env steps/s", ["off", "rules_heads"]),
    "search": ("sims/s", ["off", "rules_heads"]),
    "learner": ("updates/s", ["off", "rules_heads", "consistency", "both"]),
}

BARRED = ("selfplay", "search")
"""The parts the 10% bar is for; the learner's figures are stated, not judged."""

Step = Callable[[], int]
"""One timed call; returns how many units (env steps, simulations, updates) it did."""


@dataclass(frozen=True)
class Shapes:
    observation: tuple[int, ...]
    stacked: tuple[int, ...]
    num_actions: int


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


NEUTRAL_LOGIT = 10.0
"""The neutral rules heads' verdicts: every move legal (+10), never ended (-10)."""


def seeded_network(config: ExperimentConfig, shapes: Shapes, seed: int) -> MuZeroNetwork:
    """Every variant's network: the off variant's weights (seeded) and, with rules heads, heads
    whose verdicts are "every move legal, never ended" whatever the state. The search then
    grows the off variant's trees and only the heads' compute differs: an untrained head's
    verdicts are arbitrary, and each predicted end skips a simulation's network call (one
    seed's untrained heads made the search twice as fast)."""
    torch.manual_seed(seed)
    off = build_network(
        config_module.replace(config, ["network.rules_heads=false"]).network, shapes.stacked, shapes.num_actions
    )
    if not config.network.rules_heads:
        return off
    network = build_network(config.network, shapes.stacked, shapes.num_actions)
    state = network.state_dict()
    for name, value in off.state_dict().items():
        state[name][: value.shape[0]] = value  # the MLP's stacked first layer: policy and value rows, then rules
    network.load_state_dict(state)
    verdicts = network.rules_out if hasattr(network, "rules_out") else network.rules_head.body[-1]
    with torch.no_grad():
        verdicts.weight.zero_()
        verdicts.bias.fill_(NEUTRAL_LOGIT)
        verdicts.bias[-1] = -NEUTRAL_LOGIT
    return network


def collect(config: ExperimentConfig, shapes: Shapes, seed: int, min_transitions: int):
    """A short self-play of the off network into an embedded replay store, until it holds
    ``min_transitions``; returns the store and the self-play (its current positions are the
    search part's roots)."""
    selfplay = SelfPlay(config, seeded_network(config, shapes, seed), seed=seed, device="cpu")
    replay = MemoryReplay(
        config.replay,
        num_actions=shapes.num_actions,
        observation_shape=shapes.observation,
        frame_stack=config.env.frame_stack,
    )
    while replay.num_transitions < min_transitions:
        segments, _ = selfplay.step()
        for segment in segments:
            replay.insert(segment)
    return replay, selfplay


def selfplay_step(config: ExperimentConfig, shapes: Shapes, seed: int) -> Step:
    selfplay = SelfPlay(config, seeded_network(config, shapes, seed), seed=seed, device="cpu")

    def step() -> int:
        before = selfplay.env_steps
        selfplay.step()
        return selfplay.env_steps - before

    return step


def search_step(config: ExperimentConfig, shapes: Shapes, seed: int, roots: SelfPlay) -> Step:
    network = seeded_network(config, shapes, seed).eval()
    model = LearnedModel(network, "cpu", num_players=roots.env.num_players)
    batch = roots.env.num_envs
    search = make_search(config.search, shapes.num_actions, batch, config.training.discount)
    observations, legal, to_play = roots.stacked.copy(), roots.env.legal_mask().copy(), roots.env.to_play().copy()
    rng = np.random.default_rng(seed)

    def step() -> int:
        root = model.initial(observations, legal, to_play)
        result = search.run(root, model, rng, temperature=1.0, add_noise=True)
        return batch * result.num_simulations

    return step


def learner_step(config: ExperimentConfig, shapes: Shapes, seed: int, replay: MemoryReplay) -> Step:
    training = config.training
    sampled = replay.sample(training.batch_size, np.random.default_rng(seed), count=False)
    batch = batch_from_sample(
        sampled, training, config.env.frame_stack, np.random.default_rng(seed), rules=config.network.rules_heads
    )
    trainer = Trainer(seeded_network(config, shapes, seed), training, observation_shape=shapes.stacked)

    def step() -> int:
        trainer.train_step(batch)
        return 1

    return step


def rate(step: Step, seconds: float) -> float:
    """Units per second of calling ``step`` until ``seconds`` have passed (at least once)."""
    units = 0
    start = time.perf_counter()
    while True:
        units += step()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return units / elapsed


def interleaved(part: str, steps: dict[str, Step], rounds: int, seconds: float, warmup: int) -> dict[str, list[float]]:
    """Each variant's rate in each round; the order alternates forward and reversed."""
    for name, step in steps.items():
        for _ in range(warmup):  # numba cache load, torch allocator, the first games
            step()
        log(f"{part}: {name} warmed up")
    names = list(steps)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            rates[name].append(rate(steps[name], seconds))
        figures = ", ".join(f"{name} {rates[name][-1]:,.1f}" for name in names)
        log(f"{part} round {round_index + 1}/{rounds}: {figures} {PARTS[part][0]}")
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tictactoe-learned", help="a bundled preset or a TOML file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, all variants")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of interleaved timings (default 5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds each variant is timed per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per variant before the rounds")
    parser.add_argument("--simulations", type=int, default=None, help="search.num_simulations (default: preset's)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if not args.seconds > 0:
        parser.error("--seconds must be > 0")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.simulations is not None and args.simulations < 1:
        parser.error("--simulations must be >= 1")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    overrides = [*args.set, *([f"search.num_simulations={args.simulations}"] if args.simulations else [])]
    try:
        base, _ = adapt_to_env(config_module.load(args.preset, overrides), seed=args.seed)
        configs = {name: config_module.replace(base, switches) for name, switches in VARIANTS.items()}
    except (config_module.ConfigError, ValueError) as error:  # a bad --set, or a switch this preset refuses
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    env = make_vector_env(base.env.id, 1, args.seed, base.env.max_episode_steps, base.env.wrappers)
    observation_shape = tuple(env.observation_shape)
    stacked = stacked_observation_shape(observation_shape, base.env.frame_stack)
    shapes = Shapes(observation_shape, stacked, env.num_actions)
    env.close()
    training = base.training
    log(
        f"{base.name}: {base.env.num_envs} envs, {base.search.num_simulations} simulations, batch "
        f"{training.batch_size}; collecting {training.batch_size} transitions for the learner's batch"
    )
    replay, roots = collect(configs["off"], shapes, args.seed, training.batch_size)
    builders: dict[str, Callable[[ExperimentConfig], Step]] = {
        "selfplay": lambda config: selfplay_step(config, shapes, args.seed),
        "search": lambda config: search_step(config, shapes, args.seed, roots),
        "learner": lambda config: learner_step(config, shapes, args.seed, replay),
    }
    by_round: dict[str, dict[str, list[float]]] = {}
    for part, (_, names) in PARTS.items():
        steps = {name: builders[part](configs[name]) for name in names}
        by_round[part] = interleaved(part, steps, args.rounds, args.seconds, args.warmup)

    rates = {
        part: {name: statistics.median(values) for name, values in runs.items()} for part, runs in by_round.items()
    }
    ratios: dict[str, dict[str, float]] = {}
    for part, runs in by_round.items():
        baseline = runs[PARTS[part][1][0]]
        ratios[part] = {
            name: statistics.median(on / off for on, off in zip(values, baseline))
            for name, values in runs.items()
            if name != PARTS[part][1][0]
        }
    slowdown = {part: {name: 100.0 * (1.0 - r) for name, r in by.items()} for part, by in ratios.items()}
    within = {part: {name: pct <= BAR_PCT for name, pct in slowdown[part].items()} for part in BARRED}

    print(
        f"{base.name} ({base.env.id}): {base.env.num_envs} envs, {base.search.num_simulations} simulations, "
        f"batch {training.batch_size}; {args.rounds} rounds x {args.seconds:g} s, {args.threads} torch threads"
    )
    print(f"{'part':9s} {'variant':12s} {'median rate':>23s} {'on/off':>7s} {'slowdown':>9s}  within {BAR_PCT:g}%")
    for part, (unit, names) in PARTS.items():
        for name in names:
            line = f"{part:9s} {name:12s} {rates[part][name]:>11,.1f} {unit:<11s}"
            if name in ratios[part]:
                verdict = ("yes" if within[part][name] else "NO") if part in within else "-"
                line += f" {ratios[part][name]:7.3f} {slowdown[part][name]:+8.1f}%  {verdict}"
            print(line)
    print(
        json.dumps(
            {
                "preset": base.name,
                "env_id": base.env.id,
                "overrides": args.set,
                "num_envs": base.env.num_envs,
                "simulations": base.search.num_simulations,
                "batch_size": training.batch_size,
                "consistency_loss_weight": CONSISTENCY_WEIGHT,
                "rounds": args.rounds,
                "seconds": args.seconds,
                "selfplay_env_steps_per_s": rates["selfplay"],
                "search_sims_per_s": rates["search"],
                "learner_updates_per_s": rates["learner"],
                "ratio_to_off": ratios,
                "slowdown_pct": slowdown,
                "bar_pct": BAR_PCT,
                "within_bar": within,
                "by_round": by_round,
                "machine": platform.machine(),
                "python": platform.python_version(),
                "torch_threads": torch.get_num_threads(),
                "date": time.strftime("%Y-%m-%d"),
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
