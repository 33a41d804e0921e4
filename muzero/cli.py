"""The ``muzero`` command: train, eval, play, presets."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

from muzero import config as config_module
from muzero.config import ConfigError

# Before anything imports grpc: `muzero cluster up` forks services while its own gRPC calls are
# live, and gRPC's fork support can abort such a child before exec (see muzero/operations/cluster.py).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


def _load_network(checkpoint_path: str):
    """(config, network, checkpoint) from a checkpoint file, or exit with the reason."""
    from muzero.envs.vector import make_vector_env
    from muzero.learning.segment import stacked_observation_shape
    from muzero.nn.networks import build_network
    from muzero.storage.checkpoint import CheckpointError, load_checkpoint

    path = Path(checkpoint_path)
    if path.is_dir() or path.name == "latest":
        # A run folder, its checkpoints folder, or the latest pointer: take the newest valid checkpoint.
        from muzero.storage.checkpoint import CheckpointManager

        run_dir = path.parent.parent if path.name == "latest" else (path.parent if path.name == "checkpoints" else path)
        newest = CheckpointManager(run_dir).latest()
        if newest is None:
            raise SystemExit(f"muzero: no valid checkpoint under {run_dir}")
        path = newest
    try:
        checkpoint = load_checkpoint(path)
    except (CheckpointError, FileNotFoundError) as error:
        raise SystemExit(f"muzero: cannot load checkpoint: {error}")
    config = checkpoint.config
    env = make_vector_env(config.env.id, 1, 0, config.env.max_episode_steps, config.env.wrappers)
    network = build_network(
        config.network, stacked_observation_shape(env.observation_shape, config.env.frame_stack), env.num_actions
    )
    network.load_state_dict(checkpoint.state_dict)
    network.eval()
    return config, network, checkpoint, env


def cmd_train(args: argparse.Namespace) -> int:
    from muzero.operations.local import train

    overrides = list(args.set or [])
    if args.seed is not None:
        overrides.append(f"training.seed={args.seed}")
    if args.max_env_steps is not None:
        overrides.append(f"training.max_env_steps={args.max_env_steps}")
    config = config_module.load(args.preset, overrides)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"muzero: training {config.name} on {config.env.id}; run folder {run_dir}", file=sys.stderr)
    result = train(config, run_dir)
    last = result.curve[-1] if result.curve else None
    summary = f"muzero: {result.env_steps:,} env steps, {result.learner_steps:,} learner steps in {result.wall_s:.0f} s"
    if last is not None:
        summary += (
            f"; last evaluation {last.eval_mean_return:.2f} (standard error {last.eval_stderr_return:.2f} "
            f"over {last.eval_episodes} episodes)"
        )
    print(summary, file=sys.stderr)
    curve = f"{run_dir / 'curve.csv'}, {run_dir / 'curve.png'} and TensorBoard's {run_dir / 'tensorboard'}"
    print(f"muzero: checkpoints in {run_dir / 'checkpoints'}, curve in {curve}", file=sys.stderr)
    return 130 if result.interrupted else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from muzero.acting.evaluation import evaluate_board, evaluate_returns

    config, network, checkpoint, env = _load_network(args.checkpoint)
    if args.simulations is not None:
        config = config_module.replace(config, [f"search.num_simulations={args.simulations}"])
    print(f"muzero: checkpoint step {checkpoint.step} of {config.name} ({config.env.id})", file=sys.stderr)
    if env.num_players == 1:
        report = evaluate_returns(config, network, args.episodes, args.seed)
        print(f"mean return {report.mean:.2f} ± {report.std:.2f} over {args.episodes} episodes")
        return 0
    from muzero.transport.gtp_players import register_gnugo

    register_gnugo()  # Go games get "gnugo" where GNU Go is installed
    # No --opponents: every opponent the game's spec offers (muzero/envs/registry.py).
    opponents = None if args.opponents is None else tuple(name.strip() for name in args.opponents.split(","))
    try:
        results = evaluate_board(config, env.game, network, args.episodes, args.seed, opponents=opponents)
    except ValueError as error:
        raise SystemExit(f"muzero: {error}")
    for name, result in results.items():
        print(
            f"vs {name}: {result['wins']} wins, {result['draws']} draws, {result['losses']} losses "
            f"over {args.episodes} games (half as first player)"
        )
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from muzero.acting.evaluation import SearchPlayer
    from muzero.envs.registry import get_game

    config, network, _, env = _load_network(args.checkpoint)
    game = env.game
    if game is None:
        raise SystemExit(f"muzero: play needs a board game; this checkpoint plays {config.env.id}")
    spec = get_game(config.env.id)  # move names: what the board shows is what the player types
    agent = SearchPlayer(config, game, network, batch_size=1)
    rng = np.random.default_rng(args.seed)
    human = 0 if args.first else 1
    state = game.initial_states(1)
    can_pass = ", or pass" if spec.pass_action is not None else ""
    print(
        f"{spec.id}: you move {'first' if human == 0 else 'second'}. "
        f"Type a move as the board labels it{can_pass}; q quits."
    )
    while True:
        print(game.render(state[0]))
        mover = int(game.to_play(state)[0])
        if mover == human:
            try:
                move = _read_move(spec, np.flatnonzero(game.legal_mask(state)[0]))
            except EOFError:
                return 1  # the input ended mid-game
            if move is None:
                return 0
            action = np.array([move])
        else:
            action = agent.act(state, rng)
            print(f"muzero plays {spec.format_move(int(action[0]))}")
        state, reward, terminal = game.step(state, action)
        if terminal[0]:
            print(game.render(state[0]))
            if reward[0] == 0:
                print("Draw.")
            else:
                human_won = (mover == human) == (reward[0] > 0)  # the reward is the mover's
                print("You win!" if human_won else "muzero wins.")
            return 0


def _read_move(spec, legal: np.ndarray) -> int | None:
    """Ask until the player names a legal move (by the game's move names); None when they quit."""
    from muzero.envs.registry import summarize

    names = [spec.format_move(action) for action in legal]
    while True:
        text = input(f"your move ({summarize(names)}): ").strip()
        if text.lower() in ("q", "quit", "exit"):
            return None
        try:
            move = spec.parse_move(text)
        except ValueError as error:
            print(f"not a move: {error}")
            continue
        if move in legal:
            return move
        print(f"not a legal move now: {spec.format_move(move)}; legal moves: {', '.join(names)}")


def cmd_gtp(args: argparse.Namespace) -> int:
    """A GTP engine on stdin/stdout; everything else (logs, errors) goes to stderr."""
    import torch

    from muzero.acting.analysis import NetworkGoSearcher
    from muzero.envs.go import GoRules
    from muzero.transport.gtp_engine import GtpEngine, serve

    stdout, sys.stdout = sys.stdout, sys.stderr  # nothing but GTP answers may reach the controller
    if args.threads < 1:
        raise SystemExit(f"muzero: --threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    config, network, _, env = _load_network(args.checkpoint)
    if not isinstance(env.game, GoRules):
        raise SystemExit(f"muzero: gtp needs a Go checkpoint; this one plays {config.env.id}")
    if args.simulations < 1:
        raise SystemExit(f"muzero: --simulations must be >= 1, got {args.simulations}")
    size = args.board_size or env.game.size
    searcher = NetworkGoSearcher(
        network, env.game.size, model=args.model or config.search.model, tree_simulations=max(args.simulations, 4096)
    )
    try:
        engine = GtpEngine(
            searcher,
            size,
            env.game.komi if args.komi is None else args.komi,
            simulations=args.simulations,
            resign_threshold=args.resign_threshold,
        )
    except ValueError as error:
        raise SystemExit(f"muzero: {error}")
    print(f"muzero gtp: {config.env.id} checkpoint {args.checkpoint}, {args.simulations} simulations per move")
    return serve(engine, sys.stdin, stdout)


def cmd_presets(args: argparse.Namespace) -> int:
    for name in config_module.preset_names():
        config = config_module.load(name)
        print(
            f"{name:12s} {config.env.id:24s} {config.search.algorithm}/{config.search.model} "
            f"{config.search.num_simulations} simulations, {config.training.max_env_steps:,} env steps"
        )
    return 0


def cmd_checkpoint(args: argparse.Namespace) -> int:
    import grpc

    from muzero.storage.checkpoint import CheckpointError
    from muzero.transport.checkpoint_client import CheckpointClient
    from muzero.transport.security import ClientSecurity, SecurityError

    try:
        security = ClientSecurity.from_env().with_overrides(ca_file=args.ca, token=args.token)
        if args.server_name:
            security = dataclasses.replace(security, server_name=args.server_name)
        client = CheckpointClient(args.server, timeout_s=args.timeout, security=security)
    except SecurityError as error:
        print(f"muzero: {error}", file=sys.stderr)
        return 2
    started = time.monotonic()
    with client:
        try:
            path = client.pull(args.out, version=args.version)
        except CheckpointError as error:
            print(f"muzero: {error}", file=sys.stderr)
            return 1
        except grpc.RpcError as error:
            print(f"muzero: {args.server}: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    size = path.stat().st_size
    print(f"{path} ({size / 2**20:.1f} MiB, verified) in {time.monotonic() - started:.2f} s")
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from muzero.operations.cluster import Cluster, status

    if args.action == "status":
        run_dir = args.run_dir or _latest_cluster_dir()
        if run_dir is None:
            print("muzero: no cluster run folder found (runs/cluster-*); pass --run-dir", file=sys.stderr)
            return 1
        rows = status(run_dir)
        print(f"{'service':14s} {'pid':>7s} {'alive':5s} {'health':11s} {'version':>7s}  rate")
        for row in rows:
            rate = "-" if row["rate_per_s"] is None else f"{row['rate_per_s']:,.1f}/s ({row['rate_name']})"
            version = "-" if row["model_version"] is None else str(row["model_version"])
            print(
                f"{row['name']:14s} {row['pid'] or '-':>7} {str(row['alive']):5s} {row['health']:11s} "
                f"{version:>7s}  {rate}"
            )
        return 0 if all(row["alive"] for row in rows) else 1
    config_module.load(args.preset, args.set or [])  # a bad config fails here, before anything starts
    import signal

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # `kill` and `timeout` stop the cluster as Ctrl-C does
    run_dir = args.run_dir or f"runs/cluster-{time.strftime('%Y%m%d-%H%M%S')}"
    cluster = Cluster(
        args.preset,
        args.set or [],
        run_dir,
        actors=args.actors,
        reanalyze=args.reanalyze,
        shards=args.shards,
        redis_persistence=args.redis_persistence,
    )
    print(
        f"starting {args.shards} redis shards, replay, learner, {args.actors} actors, {args.reanalyze} reanalyze "
        f"in {cluster.run_dir}"
    )
    try:
        cluster.start()
        print(f"checkpoint service: {cluster.checkpoint_target}   replay service: {cluster.replay_target}")
        for service in cluster.layout.services:
            print(f"  {service.name:14s} metrics {service.metrics_url}   log {service.log}")
        print("Ctrl-C stops everything; `muzero cluster status` shows health, versions and rates.", flush=True)
        while all(p.poll() is None for p in cluster.processes.values()):
            time.sleep(0.5)
        dead = [name for name, p in cluster.processes.items() if p.poll() is not None]
        print(f"muzero: {', '.join(dead)} exited; stopping the cluster", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping...", flush=True)
        return 0
    finally:
        codes = cluster.stop()
        print("stopped: " + ", ".join(f"{name} {code}" for name, code in codes.items()))


def _latest_cluster_dir() -> str | None:
    from pathlib import Path

    found = sorted(Path("runs").glob("cluster-*/cluster.json"))
    return str(found[-1].parent) if found else None


SERVICES_GROUP = "muzero.services"
"""Entry-point group naming each service's main (pyproject.toml): the library finds the
services' process mains through it instead of importing them, so the layering holds."""
SERVICE_NAMES = ("replay", "learner", "actor", "reanalyze")


def cmd_serve(args: argparse.Namespace) -> int:
    from importlib.metadata import entry_points

    found = {point.name: point for point in entry_points(group=SERVICES_GROUP)}
    if args.service not in found:
        raise SystemExit(
            f"muzero: no service {args.service!r} installed (entry points {SERVICES_GROUP}: "
            f"{', '.join(sorted(found)) or 'none'}); reinstall muzero (pip install -e .)"
        )
    return found[args.service].load()(args.options)


def _replay_store(args: argparse.Namespace):
    from muzero.storage.replay.factory import build_store, redis_overrides

    config = config_module.load(args.config, [*(args.set or []), *redis_overrides(args.redis_urls or "")])
    if config.replay.backend != "redis":
        raise ConfigError("replay.redis_urls: give the shards (--redis-urls or the config) to inspect a Redis store")
    return build_store(config)


def cmd_replay(args: argparse.Namespace) -> int:
    store = _replay_store(args)
    stats = store.stats()
    summary = (
        f"{stats['num_segments']:,} segments, {stats['num_transitions']:,} transitions, "
        f"{int(stats.get('frames', 0)):,} frames on {len(store.shards)} shards"
    )
    if args.action == "stats":
        raw, stored = stats.get("raw_stacked_bytes", 0), stats.get("bytes", 0)
        print(summary)
        print(
            f"stored {stored / 2**20:,.1f} MiB; stacked raw examples would take {raw / 2**20:,.1f} MiB "
            f"({raw / max(stored, 1):.1f}x)"
        )
        return 0
    problems = store.fsck()
    if problems:
        for problem in problems:
            print(problem)
        print(f"fsck: {len(problems)} problems ({summary})", file=sys.stderr)
        return 1
    print(f"fsck: clean ({summary})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from muzero.operations.k8s.status import run

    return run(args.namespace, args.release, args.kubeconfig, args.in_cluster, args.context, args.json, args.timeout)


def cmd_autoscale(args: argparse.Namespace) -> int:
    from muzero.operations.k8s.autoscaler import main

    return main(args.options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="muzero", description="MuZero training system")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train locally: self-play, training and evaluation in one process")
    train.add_argument("preset", help="preset name (see `muzero presets`) or a TOML config file")
    train.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. search.num_simulations=50"
    )
    train.add_argument("--run-dir", help="run folder (default runs/<name>-<time>)")
    train.add_argument("--seed", type=int, help="shorthand for --set training.seed=N")
    train.add_argument("--max-env-steps", type=int, help="shorthand for --set training.max_env_steps=N")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser("eval", help="evaluate a checkpoint: mean return, or win/draw/loss for board games")
    evaluate.add_argument("checkpoint", help="a .safetensors checkpoint written by training")
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes (games for board games)")
    evaluate.add_argument(
        "--opponents",
        help="board games: comma-separated opponents, uct:N for UCT with N playouts (default: all the game "
        "has, e.g. minimax,uct,random for tic-tac-toe, uct,random for connect4)",
    )
    evaluate.add_argument("--simulations", type=int, help="override search.num_simulations")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.set_defaults(func=cmd_eval)

    play = commands.add_parser(
        "play", help="play a board game (tic-tac-toe, connect4, ...) against a checkpoint in the terminal"
    )
    play.add_argument("checkpoint")
    side = play.add_mutually_exclusive_group()
    side.add_argument("--first", action="store_true", default=True, help="you move first (default)")
    side.add_argument("--second", dest="first", action="store_false", help="muzero moves first")
    play.add_argument("--seed", type=int, default=0)
    play.set_defaults(func=cmd_play)

    gtp = commands.add_parser(
        "gtp", help="a Go engine speaking GTP on stdin/stdout (for GoGui, Sabaki, match runners, KGS/OGS bridges)"
    )
    gtp.add_argument("checkpoint", help="a Go checkpoint (a file, its run folder or checkpoints/latest)")
    gtp.add_argument("--simulations", type=int, default=400, help="simulations per move at most (default 400)")
    gtp.add_argument("--board-size", type=int, help="the board to start on (default: the checkpoint's)")
    gtp.add_argument("--komi", type=float, help="komi to start with (default: the checkpoint's rules)")
    gtp.add_argument(
        "--resign-threshold",
        type=float,
        default=0.05,
        help="resign when the search's win rate falls below this (default 0.05; 0 never resigns)",
    )
    gtp.add_argument("--model", choices=("simulator", "learned"), help="search the true rules or the learned model")
    gtp.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: one position at a time gains little from more, and an engine "
        "sharing cores with its opponent or GUI loses much when threads wait on each other)",
    )
    gtp.set_defaults(func=cmd_gtp)

    serve = commands.add_parser("serve", help="run a service (the same as python -m services.<name>)", add_help=False)
    serve.add_argument("service", choices=SERVICE_NAMES)
    serve.add_argument("options", nargs=argparse.REMAINDER, help="the service's own options (see --help)")
    serve.set_defaults(func=cmd_serve)

    checkpoint = commands.add_parser("checkpoint", help="pull a checkpoint from a learner's checkpoint service")
    checkpoint.add_argument("action", choices=["pull"])
    checkpoint.add_argument("--server", required=True, metavar="HOST:PORT", help="the learner's checkpoint service")
    checkpoint.add_argument("--version", type=int, default=0, help="version to pull (default: the latest)")
    checkpoint.add_argument("--out", required=True, help="folder to write step_N.safetensors and .json into")
    checkpoint.add_argument("--timeout", type=float, default=30.0, help="seconds per call before retrying")
    checkpoint.add_argument(
        "--ca",
        metavar="PEM",
        help="verify the server's TLS certificate against this CA (turns TLS on; env MUZERO_TLS_CA)",
    )
    checkpoint.add_argument(
        "--server-name",
        metavar="NAME",
        help="the name the certificate must carry, if not HOST (env MUZERO_TLS_SERVER_NAME)",
    )
    checkpoint.add_argument(
        "--token", help="bearer token, e.g. a read-only one (env MUZERO_TOKEN; prefer the env: argv is visible in ps)"
    )
    checkpoint.set_defaults(func=cmd_checkpoint)

    cluster = commands.add_parser("cluster", help="run every service as processes on this machine, or check them")
    cluster.add_argument("action", choices=["up", "status"])
    cluster.add_argument("preset", nargs="?", default="cartpole", help="up: preset name or TOML file")
    cluster.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override, repeatable")
    cluster.add_argument("--actors", type=int, default=2)
    cluster.add_argument("--reanalyze", type=int, default=1)
    cluster.add_argument("--shards", type=int, default=2, help="Redis shards")
    cluster.add_argument("--redis-persistence", action="store_true", help="append-only files for the shards")
    cluster.add_argument("--run-dir", help="up: where logs, checkpoints and shards go; status: the run to check")
    cluster.set_defaults(func=cmd_cluster)

    replay = commands.add_parser("replay", help="inspect a Redis replay store: fsck (consistency) or stats")
    replay.add_argument("action", choices=["fsck", "stats"])
    replay.add_argument("--config", default="cartpole", help="preset or TOML file of the experiment")
    replay.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override, repeatable")
    replay.add_argument("--redis-urls", help="comma-separated shard URLs (default: the config's)")
    replay.set_defaults(func=cmd_replay)

    status = commands.add_parser(
        "status", help="on Kubernetes: the release's pods per component, ready, restarts, model version"
    )
    status.add_argument("--namespace", help="default: the kubeconfig context's (in a pod: its own)")
    status.add_argument("--release", default="muzero", help="Helm release name (default muzero)")
    credentials = status.add_mutually_exclusive_group()
    credentials.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, ~/.kube/config)")
    credentials.add_argument("--in-cluster", action="store_true", help="use the pod's service account")
    status.add_argument("--context", help="kubeconfig context (default: the current one)")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--timeout", type=float, default=3.0, help="seconds per request to the API server")
    status.set_defaults(func=cmd_status)

    autoscale = commands.add_parser(
        "autoscale",
        add_help=False,
        help="on Kubernetes: scale the actor Deployment to keep samples per insert in a band",
    )
    autoscale.add_argument("options", nargs=argparse.REMAINDER, help="its own options (see --help)")
    autoscale.set_defaults(func=cmd_autoscale)

    presets = commands.add_parser("presets", help="list the bundled presets")
    presets.set_defaults(func=cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["autoscale"]:  # its options start with "--", which argparse's REMAINDER would refuse
        return cmd_autoscale(argparse.Namespace(options=argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as error:
        print(f"muzero: config error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
