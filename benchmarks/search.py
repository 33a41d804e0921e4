"""Search speed: simulations per second of the batched pUCT search with a learned model.

The network is sized like LightZero 0.2.0's CartPole MuZero MLP (137,044
parameters; ours 136,596): observation 4, 2 actions, latent 128, representation
and dynamics MLPs with two hidden layers of width 128, heads with a hidden layer
of 32, 601-bin value and reward supports (support_scale 300).
`--lightzero-python` runs LightZero's own ctree search with its own MLP in that
interpreter (set one up with benchmarks/setup_lightzero.sh).
A "simulation" counts one root's descent-expand-backup, so a search of B roots
x S simulations is B * S simulations.

Also reported: the search's own cost per batched simulation (all B roots) with a
step function that returns precomputed arrays (no network), i.e. the tree work.

    python benchmarks/search.py --batch-sizes 1,16,256 --simulations 50 --repeats 5

The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time

import numpy as np
import torch

from muzero.config import NetworkConfig, SearchConfig
from muzero.nn.networks import build_network
from muzero.search import RootInput, StepOutput, make_search
from muzero.search.step_fns import LearnedModel

OBSERVATION_SIZE = 4
NUM_ACTIONS = 2
NETWORK = NetworkConfig(
    kind="mlp", hidden_size=128, num_layers=2, head_hidden_size=32, value_support=300, reward_support=300
)
DISCOUNT = 0.997


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: numba cache load, torch allocator, torch.compile
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def learned_model_sims_per_s(
    device: str, batch_sizes: list[int], simulations: int, repeats: int, compile: bool = False
) -> dict[str, float]:
    torch.manual_seed(0)
    network = build_network(NETWORK, (OBSERVATION_SIZE,), NUM_ACTIONS).to(device).eval()
    model = LearnedModel(network, device, compile=compile)
    rng = np.random.default_rng(0)
    results = {}
    for batch in batch_sizes:
        search = make_search(SearchConfig(num_simulations=simulations), NUM_ACTIONS, batch, DISCOUNT)
        observations = rng.normal(size=(batch, OBSERVATION_SIZE)).astype(np.float32)

        def one_search():
            root = model.initial(observations)
            search.run(root, model, rng, temperature=1.0, add_noise=True)

        results[str(batch)] = batch * simulations / median_seconds(one_search, repeats)
    return results


def tree_only_us_per_simulation(batch_sizes: list[int], simulations: int, repeats: int) -> dict[str, float]:
    """Microseconds per batched simulation (all B roots) with a step function that cycles
    through a few precomputed random outputs instead of running a network."""
    rng = np.random.default_rng(0)
    results = {}
    for batch in batch_sizes:
        outputs = [
            StepOutput(
                reward=rng.normal(size=batch).astype(np.float32),
                value=rng.normal(size=batch).astype(np.float32),
                prior_logits=rng.normal(size=(batch, NUM_ACTIONS)).astype(np.float32),
                embedding=rng.random((batch, NETWORK.hidden_size), dtype=np.float32),
                to_play=np.zeros(batch, np.int8),
                legal_mask=np.ones((batch, NUM_ACTIONS), bool),
                terminal=np.zeros(batch, bool),
            )
            for _ in range(8)
        ]
        first = outputs[0]
        root = RootInput(first.prior_logits, first.value, first.embedding, first.legal_mask, first.to_play)
        calls = itertools.count()

        def step_fn(embedding, action, to_play):
            return outputs[next(calls) % len(outputs)]

        search = make_search(SearchConfig(num_simulations=simulations), NUM_ACTIONS, batch, DISCOUNT)
        seconds = median_seconds(lambda: search.run(root, step_fn, rng), repeats)
        results[str(batch)] = seconds / simulations * 1e6
    return results


LIGHTZERO_SCRIPT = textwrap.dedent(
    """
    # LightZero 0.2's MuZero collect-mode search (lzero/policy/muzero.py, _forward_collect): initial inference,
    # ctree roots with Dirichlet noise, then MuZeroMCTSCtree.search, which runs recurrent_inference every simulation.
    import json, statistics, sys, time
    try:
        import numpy as np, torch
        from easydict import EasyDict
        from lzero.mcts import MuZeroMCTSCtree
        from lzero.model.muzero_model_mlp import MuZeroModelMLP
    except ImportError as error:
        print(json.dumps({"error": f"LightZero is not importable here: {error}"}))
        sys.exit(0)
    batch_sizes, simulations, repeats, threads = json.loads(sys.argv[1])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    np.random.seed(0)
    # As zoo/classic_control/cartpole/config/cartpole_muzero_config.py (601-bin supports are the model's default).
    model = MuZeroModelMLP(observation_shape=4, action_space_size=2, latent_state_dim=128,
                           reward_support_size=601, value_support_size=601, norm_type="BN").eval()
    mcts = MuZeroMCTSCtree(EasyDict(
        num_simulations=simulations, discount_factor=0.997, root_dirichlet_alpha=0.3, root_noise_weight=0.25,
        pb_c_base=19652, pb_c_init=1.25, value_delta_max=0.01, env_type="not_board_games", device="cpu",
        model=EasyDict(support_scale=300, categorical_distribution=True)))
    out = {}
    for batch in batch_sizes:
        obs = torch.randn(batch, 4)
        to_play = [-1] * batch
        def one_search():
            with torch.no_grad():
                root = model.initial_inference(obs)
            latent = root.latent_state.numpy()
            logits = root.policy_logits.numpy().tolist()
            roots = MuZeroMCTSCtree.roots(batch, [[0, 1]] * batch)
            noises = [np.random.dirichlet([0.3] * 2).astype(np.float32).tolist() for _ in range(batch)]
            roots.prepare(0.25, noises, root.reward, logits, to_play)
            mcts.search(roots, model, latent, to_play)
        one_search()  # warm-up, as for ours
        one_search()
        times = []
        for _ in range(repeats):
            start = time.perf_counter(); one_search(); times.append(time.perf_counter() - start)
        out[str(batch)] = batch * simulations / statistics.median(times)
    print(json.dumps(out))
    """
)


def lightzero_sims_per_s(python: str, batch_sizes: list[int], simulations: int, repeats: int, threads: int):
    """Run LightZero's C++-tree MuZero search in ``python``; None (with a message) if unavailable."""
    arguments = json.dumps([batch_sizes, simulations, repeats, threads])
    try:
        completed = subprocess.run(
            [python, "-c", LIGHTZERO_SCRIPT, arguments], capture_output=True, text=True, timeout=1800
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"LightZero comparison skipped: could not run {python}: {error}")
        return None
    lines = completed.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if completed.returncode != 0 or not isinstance(result, dict) or "error" in result:
        reason = result["error"] if isinstance(result, dict) and "error" in result else completed.stderr.strip()[-500:]
        print(f"LightZero comparison skipped: {reason}")
        return None
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="1,16,256", help="comma-separated numbers of roots")
    parser.add_argument("--simulations", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5, help="timed searches per setting; the median is reported")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--lightzero-python", default=None, help="interpreter with LightZero installed (optional)")
    parser.add_argument(
        "--no-compile",
        dest="compile",
        action="store_false",
        help="skip the torch.compile'd network (reported as sims_per_s; eager is reported too)",
    )
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    torch.set_num_threads(args.threads)

    eager = {"cpu": learned_model_sims_per_s("cpu", batch_sizes, args.simulations, args.repeats), "cuda": None}
    if torch.cuda.is_available():
        eager["cuda"] = learned_model_sims_per_s("cuda", batch_sizes, args.simulations, args.repeats)
    compiled = {"cpu": None, "cuda": None}
    if args.compile:
        compiled["cpu"] = learned_model_sims_per_s("cpu", batch_sizes, args.simulations, args.repeats, compile=True)
        if torch.cuda.is_available():
            compiled["cuda"] = learned_model_sims_per_s(
                "cuda", batch_sizes, args.simulations, args.repeats, compile=True
            )
    for mode, rates in (("eager", eager), ("compiled", compiled)):
        for device, by_batch in rates.items():
            for batch, rate in (by_batch or {}).items():
                print(f"{device:4s} {mode:8s} B={batch:>4}: {rate:12,.0f} sims/s")
    best = compiled if args.compile else eager
    cpu, cuda = best["cpu"], best["cuda"]
    tree = tree_only_us_per_simulation(batch_sizes, args.simulations, args.repeats)
    for batch, micros in tree.items():
        print(f"tree only B={batch:>4}: {micros:8.1f} us per simulation (all roots)")
    lightzero = None
    if args.lightzero_python:
        lightzero = lightzero_sims_per_s(
            args.lightzero_python, batch_sizes, args.simulations, args.repeats, args.threads
        )
        if lightzero:
            for batch, rate in lightzero.items():
                print(f"lightzero ctree B={batch:>4}: {rate:12,.0f} sims/s")
    print(
        json.dumps(
            {
                "sims_per_s": {"cpu": cpu, "cuda": cuda},
                "lightzero_ctree_sims_per_s": lightzero,
                "network": "compiled" if args.compile else "eager",
                "eager_sims_per_s": eager,
                "tree_only_us_per_simulation": tree,
                "threads": args.threads,
                "machine": f"{platform.machine()} {os.cpu_count()} cores",
                "date": time.strftime("%Y-%m-%d"),
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
