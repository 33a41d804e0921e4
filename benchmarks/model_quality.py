"""How far search can trust a board game checkpoint's learned model (muzero/acting/model_quality.py).

    python benchmarks/model_quality.py CHECKPOINT [--games 200] [--depth D] [--simulations 25,100,400] [--seed S]

Along random games of the checkpoint's game: for each unroll depth 1..D (default
twice the checkpoint's training.unroll_steps) the reward and value errors inside
the game and past its end, how often the model's policy prefers an illegal move,
how often it misses a terminal state; with tic-tac-toe's minimax, how often the
prior's and the search's moves are optimal at each simulation count. A table goes
to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a checkpoint file, run folder or checkpoints/latest")
    parser.add_argument("--games", type=int, default=200)
    parser.add_argument("--depth", type=int, help="deepest unroll measured (default 2 x training.unroll_steps)")
    parser.add_argument("--simulations", default="25,100,400", help="comma-separated simulation counts ('' for none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        simulations = tuple(int(s) for s in args.simulations.split(",") if s.strip())
    except ValueError:
        parser.error(f"--simulations: expected comma-separated integers, got {args.simulations!r}")
    if args.games < 1 or any(s < 1 for s in simulations) or (args.depth is not None and args.depth < 1):
        parser.error("--games, --depth and --simulations must be >= 1")

    import torch

    from muzero.acting.model_quality import model_quality
    from muzero.cli import _load_network
    from muzero.envs.registry import get_game

    torch.set_num_threads(1)
    config, network, checkpoint, env = _load_network(args.checkpoint)
    game = getattr(env, "game", None)
    if game is None:
        raise SystemExit(f"model_quality: {config.env.id} is not a board game")
    oracle = None
    if config.env.id == "tictactoe":
        from muzero.envs.games.tictactoe import MinimaxPlayer

        oracle = MinimaxPlayer(game)
    get_game(config.env.id)  # a known game
    start = time.perf_counter()
    quality = model_quality(
        config,
        game,
        network,
        games=args.games,
        depth=args.depth,
        oracle=oracle,
        simulations=simulations,
        seed=args.seed,
    )
    print(
        f"{config.name} at learner step {checkpoint.step}, {quality.positions} positions of {args.games} random games",
        file=sys.stderr,
    )
    print("depth  reward err  value err  | past the end: reward err  value err  | illegal top move", file=sys.stderr)
    for d in quality.depths:
        print(
            f"{d.depth:5d}  {d.reward_mae:10.3f}  {d.value_mae:9.3f}  |  {d.reward_mae_past_end:22.3f}  "
            f"{d.value_mae_past_end:9.3f}  |  {d.illegal_preferred:16.1%}",
            file=sys.stderr,
        )
    print(
        f"root: illegal top move {quality.root_illegal_preferred:.1%}; terminal states missed "
        f"{quality.terminal_missed:.1%} of {quality.terminals}",
        file=sys.stderr,
    )
    if oracle is not None:
        searched = ", ".join(f"{k} simulations {v:.1%}" for k, v in quality.search_optimal.items())
        print(f"optimal moves: prior {quality.prior_optimal:.1%}; search: {searched}", file=sys.stderr)
    summary = {
        "checkpoint_step": checkpoint.step,
        "env": config.env.id,
        **quality.to_json(),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "bench_wall_s": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
