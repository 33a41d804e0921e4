"""Learning benchmark: does MuZero learn, and how fast, on this machine?

    python benchmarks/learn.py cartpole [--seeds 3]
        Trains each seed until the greedy evaluation (100 episodes) reaches a mean
        return of 475, then for four more evaluations (does the level hold?), or until
        40,000 env steps, or 20 minutes. Reports per seed the env steps and wall seconds
        at which 475 was first reached (null if never), the four evaluations after it,
        and "held_after_475": all four at or above 450 (null: the budget ended first).
    python benchmarks/learn.py tictactoe [--seeds 3]
        Trains each seed for the preset's budget (at most 20 minutes), then plays 200
        games against the perfect minimax player (random among its optimal moves; 100
        as first player, 100 as second) and reports wins, draws and losses per seed;
        then the same 200 games with the same checkpoint at each of --simulations
        (default 25,100,400): "losses_by_simulations", one entry per seed.
        `tictactoe-learned` does the same for the learned-model preset.
    python benchmarks/learn.py gym --env-id Acrobot-v1 [--seeds 3] [--max-env-steps N]
        Generality: the default preset (cartpole) with only env.id changed, trained for
        the env-step budget of the tuned DQN reference (rl-baselines3-zoo, below) unless
        --max-env-steps says otherwise, no wall-time limit unless --max-wall-s, ten
        evaluations of --eval-episodes (default 100) over the budget. Reports
        per seed every evaluation (env steps, mean, standard error) and the last one's
        mean against the reference's ("at_least_dqn").

Each seed trains in a temporary run folder, removed afterwards; ``--keep-runs DIR``
keeps them as DIR/<preset>-seed<N> (checkpoints, curves, TensorBoard scalars), for
``benchmarks/model_quality.py`` or ``tensorboard --logdir DIR``.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from muzero import config as config_module
from muzero.acting.evaluation import evaluate_board
from muzero.nn.networks import build_network
from muzero.operations.local import train
from muzero.operations.progress import Progress
from muzero.storage.checkpoint import load_checkpoint

HOLD_EVALS = 4
"""cartpole: evaluations after 475 is first reached that must all stay at or above HOLD_LEVEL."""
HOLD_LEVEL = 450.0

DQN_REFERENCE = {
    # env id: (mean return, its std over the evaluation episodes, env steps of training): one
    # trained run of a tuned DQN in rl-baselines3-zoo's benchmark.md, evaluated greedily
    # (https://github.com/DLR-RM/rl-baselines3-zoo/blob/master/benchmark.md).
    # LunarLander-v2 there; gymnasium 1.x has v3 (the same task, bug fixes in the physics).
    "Acrobot-v1": (-76.6, 11.8, 100_000),
    "MountainCar-v0": (-100.8, 9.9, 120_000),
    "LunarLander-v3": (154.4, 79.2, 100_000),
}


def _run_folder(args: argparse.Namespace, seed: int, name: str | None = None) -> contextlib.AbstractContextManager[str]:
    """The seed's run folder: a temporary one, or DIR/<preset>-seed<N> with --keep-runs
    (refused if it already holds a run, so no earlier result is overwritten)."""
    if args.keep_runs is None:
        return tempfile.TemporaryDirectory()
    folder = Path(args.keep_runs) / f"{name or args.preset}-seed{seed}"
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"--keep-runs: {folder} already holds a run; choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    return contextlib.nullcontext(str(folder))


def run_cartpole(seeds: list[int], args: argparse.Namespace) -> dict:
    env_steps, wall, final = [], [], []
    after_475: list[list[float]] = []
    held: list[bool | None] = []
    for seed in seeds:
        config = config_module.load(
            "cartpole",
            [
                f"training.seed={seed}",
                f"training.max_env_steps={args.max_env_steps}",
                f"training.max_wall_s={args.max_wall_s}",
                f"training.eval_episodes={args.eval_episodes}",
                "training.target_return=475.0",
                f"training.evals_after_target={HOLD_EVALS}",
                *args.set,
            ],
        )
        with _run_folder(args, seed) as run_dir:
            result = train(config, Path(run_dir), Progress(f"cartpole seed {seed}", interval_s=30, live=False))
        reached = result.reached_target_at
        env_steps.append(reached.env_steps if reached else None)
        wall.append(round(reached.wall_s, 1) if reached else None)
        final.append(round(result.curve[-1].eval_mean_return, 1) if result.curve else None)
        after = [p.eval_mean_return for p in result.curve if reached and p.env_steps > reached.env_steps]
        after_475.append([round(value, 1) for value in after])
        held.append(None if reached is None or len(after) < HOLD_EVALS else all(v >= HOLD_LEVEL for v in after))
        print(
            f"seed {seed}: reached 475 at {env_steps[-1]} env steps, {wall[-1]} s; "
            f"then {after_475[-1]} (held: {held[-1]}); final {final[-1]}",
            file=sys.stderr,
            flush=True,
        )
    return {
        "preset": "cartpole",
        "seeds": seeds,
        "env_steps_to_475": env_steps,
        "wall_s_to_475": wall,
        "final_mean_return": final,
        "evals_after_475": after_475,
        "held_after_475": held,
    }


def run_gym(seeds: list[int], args: argparse.Namespace) -> dict:
    reference = DQN_REFERENCE.get(args.env_id)
    budget = args.max_env_steps if args.max_env_steps is not None else (reference[2] if reference else 100_000)
    curves: list[list[list[float]]] = []
    final: list[float | None] = []
    wall: list[float] = []
    for seed in seeds:
        config = config_module.load(
            "cartpole",
            [
                f"env.id={args.env_id}",
                f"training.seed={seed}",
                f"training.max_env_steps={budget}",
                f"training.max_wall_s={args.max_wall_s or 0}",
                f"training.eval_episodes={args.eval_episodes}",
                # How often the benchmark measures: ten points over the budget (the preset's
                # 2,500 steps x 100 episodes of up to 500 steps would be mostly evaluation).
                f"training.eval_interval={max(1, budget // 10)}",
                "training.target_return=0",  # the benchmark's stop, not a learning setting
                *args.set,
            ],
        )
        with _run_folder(args, seed, f"gym-{args.env_id}") as run_dir:
            result = train(config, Path(run_dir), Progress(f"{args.env_id} seed {seed}", interval_s=30, live=False))
        curves.append(
            [
                [p.env_steps, round(float(p.eval_mean_return), 1), round(float(p.eval_stderr_return), 1)]
                for p in result.curve
            ]
        )
        final.append(round(result.curve[-1].eval_mean_return, 1) if result.curve else None)
        wall.append(round(result.wall_s, 1))
        print(f"seed {seed}: evaluations {curves[-1]}; final {final[-1]}", file=sys.stderr, flush=True)
    reported = [v for v in final if v is not None]
    return {
        "preset": "cartpole",
        "env_id": args.env_id,
        "seeds": seeds,
        "max_env_steps": budget,
        "evaluations": curves,
        "final_mean_return": final,
        "median_final_mean_return": statistics.median(reported) if reported else None,
        "train_wall_s": wall,
        "dqn_reference": None
        if reference is None
        else {
            "mean_return": reference[0],
            "std": reference[1],
            "env_steps": reference[2],
            "source": "rl-baselines3-zoo",
        },
        "at_least_dqn": None if reference is None else [v is not None and v >= reference[0] for v in final],
    }


def run_tictactoe(seeds: list[int], args: argparse.Namespace) -> dict:
    train_wall, wins, draws, losses = [], [], [], []
    by_simulations: dict[str, list[int]] = {str(count): [] for count in args.simulations}
    for seed in seeds:
        config = config_module.load(
            args.preset,
            [
                f"training.seed={seed}",
                *([f"training.max_wall_s={args.max_wall_s}"] if args.max_wall_s else []),
                *args.set,
            ],
        )
        if not 0 < config.training.max_wall_s <= 1200:
            raise SystemExit(
                f"training.max_wall_s is {config.training.max_wall_s}: this benchmark allows "
                "at most 20 minutes of training"
            )
        with _run_folder(args, seed) as run_dir:
            result = train(config, Path(run_dir), Progress(f"{args.preset} seed {seed}", interval_s=30, live=False))
            checkpoint = load_checkpoint(sorted((Path(run_dir) / "checkpoints").glob("*.safetensors"))[-1])
        from muzero.envs.games.tictactoe import TicTacToe

        game = TicTacToe()
        network = build_network(config.network, game.observation_shape, game.num_actions)
        network.load_state_dict(checkpoint.state_dict)
        report = evaluate_board(config, game, network, games=200, seed=seed + 777, opponents=("minimax",))["minimax"]
        train_wall.append(round(result.wall_s, 1))
        wins.append(report["wins"])
        draws.append(report["draws"])
        losses.append(report["losses"])
        print(f"seed {seed}: {report} after {result.wall_s:.0f} s of training", file=sys.stderr, flush=True)
        for count in args.simulations:  # the same checkpoint and games' seed, only the search's budget changes
            at_count = replace(config, search=replace(config.search, num_simulations=count))
            games = evaluate_board(at_count, game, network, games=200, seed=seed + 777, opponents=("minimax",))
            by_simulations[str(count)].append(games["minimax"]["losses"])
            print(f"seed {seed}, {count} simulations: {games['minimax']}", file=sys.stderr, flush=True)
    one = len(seeds) == 1
    return {
        "preset": args.preset,
        "seeds": seeds,
        "train_wall_s": train_wall[0] if one else train_wall,
        "wins": wins[0] if one else wins,
        "draws": draws[0] if one else draws,
        "losses": losses[0] if one else losses,
        "losses_by_simulations": by_simulations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", choices=["cartpole", "tictactoe", "tictactoe-learned", "gym"])
    parser.add_argument("--env-id", help="gym: the gymnasium id (e.g. Acrobot-v1, MountainCar-v0, LunarLander-v3)")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (F, F+1, ..., F+N-1)")
    parser.add_argument("--first-seed", type=int, default=0, help="F, the first seed (default 0)")
    parser.add_argument(
        "--max-wall-s",
        type=float,
        default=None,
        help="training wall-time budget per seed (cartpole: 1200; tictactoe: the preset's)",
    )
    parser.add_argument(
        "--max-env-steps",
        type=int,
        default=None,
        help="env-step budget per seed (cartpole: 40,000; gym: the DQN reference's)",
    )
    parser.add_argument("--eval-episodes", type=int, default=100, help="cartpole: evaluation episodes")
    parser.add_argument("--keep-runs", metavar="DIR", help="keep each seed's run folder under DIR")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config overrides")
    parser.add_argument(
        "--simulations",
        default="25,100,400",
        help="tictactoe: also play the 200 games at each of these simulation counts ('' for none)",
    )
    args = parser.parse_args()
    try:
        args.simulations = [int(text) for text in args.simulations.split(",") if text.strip()]
    except ValueError:
        parser.error(f"--simulations must be comma-separated integers, got {args.simulations!r}")
    if any(count < 1 for count in args.simulations):
        parser.error("--simulations counts must be >= 1")
    if args.seeds < 1 or args.first_seed < 0:
        parser.error("--seeds must be >= 1 and --first-seed >= 0")
    if args.preset == "cartpole" and args.max_wall_s is None:
        args.max_wall_s = 1200.0
    if args.preset == "cartpole" and args.max_env_steps is None:
        args.max_env_steps = 40_000
    if (args.preset == "gym") != (args.env_id is not None):
        parser.error("--env-id goes with the gym mode, and the gym mode needs it")
    if args.max_env_steps is not None and args.max_env_steps < 1:
        parser.error("--max-env-steps must be >= 1")
    torch.set_num_threads(2)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    started = time.time()
    runs = {"cartpole": run_cartpole, "gym": run_gym}
    result = runs.get(args.preset, run_tictactoe)(seeds, args)
    result["machine"] = f"{platform.machine()} {torch.get_num_threads()} threads, {platform.python_version()}"
    result["date"] = time.strftime("%Y-%m-%d")
    result["bench_wall_s"] = round(time.time() - started, 1)
    if args.preset == "cartpole":
        # Median with "never reached" counted as infinitely late.
        for key in ("env_steps_to_475", "wall_s_to_475"):
            ordered = sorted(result[key], key=lambda v: float("inf") if v is None else v)
            result[f"median_{key}"] = (
                ordered[(len(ordered) - 1) // 2]
                if len(ordered) % 2
                else (
                    None
                    if ordered[len(ordered) // 2] is None
                    else statistics.median(ordered[len(ordered) // 2 - 1 : len(ordered) // 2 + 1])
                )
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
