"""Load: many writers at full rate into a replay store that evicts, a learner sampling, for minutes.

    python benchmarks/load.py [--seconds 600] [--writers 32] [--writer-processes 4] [--fronts 2]
                              [--shards 2] [--capacity 1000000] [--maxmemory SIZE] [--window 30]

Starts ``--shards`` redis-server processes (noeviction, ``--maxmemory`` each, no
persistence), ``--fronts`` replay fronts (``python -m services.replay`` over all the
shards, CartPole config, ``replay.capacity=--capacity``, ``replay.cache_bytes=--cache-bytes``),
``--writer-processes`` processes holding ``--writers`` writer threads in all, each with
its own :class:`~muzero.transport.replay_client.SegmentWriter` to one front (writers
alternate fronts), appending CartPole-shaped segments (200 owned steps + 15 of context,
a quarter of them shorter episode ends, every frame distinct) as fast as the fronts take
them, and one learner process calling ``ReplayClient.sample`` (one batch of 128 per call,
the fronts in turn) and pushing new priorities for what it drew. After ``--seconds`` the
writers stop, flush and close; then the learner, the fronts and the shards stop. Nothing
outlives the run (children also get SIGTERM if this process dies).

Sizes. The store fills within the first minute (1M transitions at 20-40k/s here) and
evicts from then on. A shard takes about 400 B of Redis memory per stored CartPole
transition (frame keys, reference counts, segment blobs, frame lists), its two sum trees
(2 x leaves doubles each) and up to 100,000 eviction tombstones of about 220 B; the
default ``--maxmemory`` is that peak plus 20% (295 MB per shard for 1M on 2 shards), so
a store that did not evict, or evicted too late, would run into Redis' limit. Each front's
cache is 32 MiB (not the 256 MiB default), so that it fills before warm-up ends: a cache
filling up is bounded growth, not a leak.

Every ``--sample-every`` s (1): each shard's INFO memory, the store's Stats (through a
front), each front's RSS (/proc/PID/status). Per ``--window`` s (30), on stderr and in
the JSON: insert throughput (transitions/s the store counted; ``evicting_median`` over
the windows after it was full), sample latency p50/p99 (one ``sample`` call, as the
learner sees it), Redis memory, front RSS, the share of writer time blocked in ``append``.
Warm-up ends at ``--warmup-fraction`` (20%) of the run once the store is full and each
front's cache holds 90% of its bound, and at half the run whatever they hold.

Bars (exit 1 when one fails):

- ``redis_within_maxmemory``: used_memory <= maxmemory in every sample of every shard,
  no OOM error and no key evicted by Redis (``errorstat_OOM``, ``evicted_keys``);
- ``store_within_capacity``: every shard's transitions <= its share of the capacity
  (``ceil(capacity / shards)``), in every sample;
- ``eviction``: the store evicted segments (``evicted_segments_total`` > 0);
- ``no_writer_errors``: 0 refused segments, broken streams, timed-out appends (60 s),
  exceptions or segments left unacknowledged at close, over all writers: when the
  fronts are busy, writers wait (backpressure: ``backpressure.blocked_fraction``);
- ``no_sample_errors``: every sample call and priority update of the learner succeeded
  (30 s deadline);
- ``front_rss_flat``: each front's RSS at the end is within 10% (``--rss-tolerance``) of
  its RSS when warm-up ended;
- ``fsck_clean``: the store is consistent after the run.

Progress goes to stderr; the last line of stdout is one JSON object with ``seconds``,
``writers``, ``fronts``, ``shards``, ``insert_tps``, ``sample_latency_ms``,
``redis_within_maxmemory``, ``store_within_capacity``, ``evicted_segments``,
``writer_errors``, ``front_rss_growth``, ``bars``, ``bars_met``, ``machine``, ``date``
and details. Logs of every process stay in a temporary folder when a bar fails (or with
``--keep``). ``--role writer|learner`` is internal: the processes this run starts.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # we fork children while calls are live (cluster.py)

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from muzero import config as config_module  # noqa: E402
from muzero.learning.segment import Segment  # noqa: E402
from muzero.operations.metrics_text import scrape  # noqa: E402
from muzero.operations.redis_process import RedisServer, _die_with_parent, free_port  # noqa: E402
from muzero.storage.replay.factory import build_store, redis_overrides  # noqa: E402
from muzero.transport.grpc_util import check_health  # noqa: E402
from muzero.transport.replay_client import ReplayClient, SegmentWriter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "cartpole"  # the preset: 4 float32 per frame, 2 actions, frame stack 1
NUM_ACTIONS, FRAME_SHAPE = 2, (4,)
OWNED, CONTEXT = 200, 15  # replay.segment_length; K + n of the preset
BATCH = 128
MIN_SIZE = 1_000
APPEND_TIMEOUT_S = 60.0  # an append blocked this long is a stall, not backpressure
REPORT_EVERY_S = 1.0
TOMBSTONES = 100_000  # ids of evicted segments each shard remembers (lua/common.lua)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(record: dict) -> None:
    """A child's report to the run: one JSON line on stdout."""
    print(json.dumps(record), flush=True)


# --- children: writers and the learner --------------------------------------------------------


def cartpole_segment(rng: np.random.Generator):
    """A segment as a CartPole actor cuts one: 200 owned steps and their context, or (one in
    four) the shorter end of an episode; every frame distinct, as in play."""
    if rng.random() < 0.25:
        steps = length = int(rng.integers(10, OWNED + 1))
        terminated = True
    else:
        steps, length, terminated = OWNED + CONTEXT, OWNED, False
    policies = rng.random((steps, NUM_ACTIONS), dtype=np.float32) + 0.1
    return Segment(
        observations=rng.normal(0.0, 0.5, (steps, *FRAME_SHAPE)).astype(np.float32),
        actions=rng.integers(0, NUM_ACTIONS, steps),
        rewards=np.ones(steps, np.float32),
        to_play=np.zeros(steps, np.int8),
        legal_masks=np.ones((steps, NUM_ACTIONS), bool),
        policies=policies / policies.sum(axis=1, keepdims=True),
        root_values=rng.normal(20.0, 5.0, steps).astype(np.float32),
        length=length,
        terminated=terminated,
        bootstrap_value=0.0 if terminated else 20.0,
        bootstrap_to_play=0,
        priorities=rng.random(length, dtype=np.float32) + 0.01,
        model_version=0,
    )


def wait_for_go() -> threading.Event:
    """Block until the run writes "go" on stdin; the returned event is set by the next line or
    EOF (the run says stop, or died)."""
    if sys.stdin.readline().strip() != "go":
        raise SystemExit(0)
    stop = threading.Event()

    def watch() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    return stop


@dataclass
class WriterTally:
    front: str
    appended_segments: int = 0
    appended_transitions: int = 0
    append_s: float = 0.0  # time inside append: encoding (~0.1 ms) plus waiting for acknowledgements
    max_append_s: float = 0.0
    timeouts: int = 0
    exceptions: int = 0
    acknowledged: int = 0
    rejected: int = 0
    reconnects: int = 0
    unacknowledged: int = 0
    first_error: str = ""
    in_append_since: float = 0.0  # perf_counter at the start of the append in progress, 0: none

    def report(self) -> dict:
        """The tally, with the append in progress counted as blocked so far."""
        record = vars(self).copy()
        since = record.pop("in_append_since")
        record["blocked_s"] = self.append_s + (time.perf_counter() - since if since else 0.0)
        return record


def write_until(stop: threading.Event, tally: WriterTally, seed: int, max_inflight: int) -> None:
    rng = np.random.default_rng(seed)
    writer = SegmentWriter(tally.front, EXPERIMENT, max_inflight=max_inflight)
    try:
        while not stop.is_set():
            segment = cartpole_segment(rng)
            start = tally.in_append_since = time.perf_counter()
            try:
                writer.append(segment, timeout_s=APPEND_TIMEOUT_S)
            except TimeoutError as error:
                tally.timeouts += 1
                tally.first_error = tally.first_error or str(error)
                continue
            finally:
                tally.in_append_since = 0.0
            spent = time.perf_counter() - start
            tally.append_s += spent
            tally.max_append_s = max(tally.max_append_s, spent)
            tally.appended_segments += 1
            tally.appended_transitions += segment.length
            tally.acknowledged, tally.reconnects = writer.acknowledged, writer.reconnects
    except Exception as error:  # anything else is an error the bar counts
        tally.exceptions += 1
        tally.first_error = tally.first_error or f"{type(error).__name__}: {error}"
    finally:
        tally.unacknowledged = writer.close(timeout_s=30.0)
        tally.acknowledged, tally.reconnects = writer.acknowledged, writer.reconnects
        tally.rejected = len(writer.rejected)
        if writer.rejected:
            tally.first_error = tally.first_error or writer.rejected[0].message


class BrokenStreams(logging.Handler):
    """Counts the writers' "stream broke (CODE)" warnings by status code."""

    PATTERN = re.compile(r"broke \((\w+)\)")

    def __init__(self):
        super().__init__(logging.WARNING)
        self.codes: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = self.PATTERN.search(record.getMessage())
        code = match.group(1) if match else record.levelname
        self.codes[code] = self.codes.get(code, 0) + 1


def writer_role(args: argparse.Namespace) -> int:
    fronts = args.front_targets.split(",")
    first = args.first
    tallies = [WriterTally(fronts[(first + i) % len(fronts)]) for i in range(args.threads)]
    broken = BrokenStreams()
    logging.getLogger("muzero.transport.replay_client").addHandler(broken)
    emit({"kind": "writer", "ready": True})
    stop = wait_for_go()
    threads = [
        threading.Thread(target=write_until, args=(stop, t, args.seed * 1000 + first + i, args.max_inflight))
        for i, t in enumerate(tallies)
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        emit({"kind": "writer", "t": time.monotonic(), "threads": [t.report() for t in tallies], "codes": broken.codes})
        for thread in threads:
            thread.join(timeout=REPORT_EVERY_S / len(threads))
    emit({"kind": "writer", "final": True, "threads": [t.report() for t in tallies], "codes": broken.codes})
    return 0


def stored(client: ReplayClient) -> float:
    try:
        return client.stats().totals.get("transitions", 0.0)
    except grpc.RpcError:
        return 0.0


def learner_role(args: argparse.Namespace) -> int:
    clients = [ReplayClient(target, timeout_s=30.0) for target in args.front_targets.split(",")]
    emit({"kind": "learner", "ready": True})
    stop = wait_for_go()
    while not stop.is_set() and stored(clients[0]) < MIN_SIZE:
        time.sleep(0.05)  # the fronts hold sample calls until min_size: not a latency to report
    rng = np.random.default_rng(args.seed)
    samples: list[list[float]] = []
    errors: dict[str, int] = {}
    last_report = time.monotonic()
    for client in itertools.cycle(clients):
        if stop.is_set():
            break
        start = time.perf_counter()
        try:
            batch = list(client.sample(BATCH, 1))[0]
            samples.append([time.monotonic(), (time.perf_counter() - start) * 1000])
            client.update_priorities(batch.keys, rng.random(BATCH).astype(np.float32) + 0.01)
        except grpc.RpcError as error:
            errors[error.code().name] = errors.get(error.code().name, 0) + 1
            time.sleep(0.1)
        if time.monotonic() - last_report >= REPORT_EVERY_S:
            emit({"kind": "learner", "samples": samples, "errors": errors})
            samples, last_report = [], time.monotonic()
    emit({"kind": "learner", "samples": samples, "errors": errors, "final": True})
    return 0


# --- the run: shards, fronts, children ----------------------------------------------------------


def size_bytes(text: str) -> int:
    """Redis' memory notation (32mb, 1gb, 500kb, 1048576) in bytes."""
    match = re.fullmatch(r"(\d+)\s*(b|kb|mb|gb)?", text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a size like 32mb, got {text!r}")
    return int(match.group(1)) * {None: 1, "b": 1, "kb": 1024, "mb": 2**20, "gb": 2**30}[match.group(2)]


def auto_maxmemory(capacity: int, shards: int, headroom: float = 1.2) -> int:
    """A shard's maxmemory: its expected peak used_memory, measured for these segments, plus
    ``headroom``. Baseline ~2 MB, two sum trees of 2 x leaves doubles, ~400 B per stored
    transition (frame keys, reference counts, segment blobs and frame lists), ~220 B per
    eviction tombstone once the shard has evicted TOMBSTONES segments."""
    shard_capacity = math.ceil(capacity / shards)
    leaves = 1 << (2 * shard_capacity - 1).bit_length()
    peak = 2 * 2**20 + 2 * 2 * leaves * 8 + 400 * shard_capacity + 220 * TOMBSTONES
    return math.ceil(headroom * peak / 2**20) * 2**20


def front_overrides(args: argparse.Namespace) -> list[str]:
    return [
        f"replay.capacity={args.capacity}",
        f"replay.min_size={MIN_SIZE}",
        f"replay.cache_bytes={args.cache_bytes}",
    ]


@dataclass
class Child:
    """A process of the run and what its report lines said so far."""

    name: str
    process: subprocess.Popen
    lines: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, on_line) -> None:
        for raw in self.process.stdout:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            with self.lock:
                self.lines.append(record)
            on_line(self, record)

    def latest(self) -> dict | None:
        with self.lock:
            return self.lines[-1] if self.lines else None


class Run:
    """Everything the load run starts; :meth:`stop` ends it all (children, fronts, shards)."""

    def __init__(self, args: argparse.Namespace, run_dir: Path):
        self.args = args
        self.run_dir = run_dir
        self.shards: list = []
        self.fronts: list[subprocess.Popen] = []
        self.front_targets: list[str] = []
        self.front_metrics: list[str] = []
        self.children: list[Child] = []
        self.samples: list[list[float]] = []  # [monotonic t, latency ms] of every sample call
        self.sample_errors: dict[str, int] = {}
        self.t0 = 0.0  # monotonic time the writers were told to go
        self.loadavg_start: list[float] = []
        self._lock = threading.Lock()

    # starting

    def start_shards(self) -> None:
        for i in range(self.args.shards):
            folder = self.run_dir / f"redis-{i}"
            folder.mkdir(parents=True, exist_ok=True)
            self.shards.append(RedisServer(maxmemory=str(self.args.maxmemory), directory=folder).start())

    def start_fronts(self) -> None:
        for i in range(self.args.fronts):
            port, metrics = free_port(), free_port()
            env = {
                **os.environ,
                "MUZERO_CONFIG": EXPERIMENT,
                "MUZERO_SET": ";".join(front_overrides(self.args)),
                "MUZERO_REDIS_URLS": ",".join(s.url for s in self.shards),
                "MUZERO_REPLAY_PORT": str(port),
                "MUZERO_METRICS_PORT": str(metrics),
                "MUZERO_HOST": "127.0.0.1",
                "MUZERO_TORCH_THREADS": "1",
                "PYTHONUNBUFFERED": "1",
            }
            with open(self.run_dir / f"front-{i}.log", "ab") as out:
                self.fronts.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "services.replay"],
                        env=env,
                        cwd=ROOT,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        preexec_fn=_die_with_parent,
                    )
                )
            self.front_targets.append(f"127.0.0.1:{port}")
            self.front_metrics.append(f"http://127.0.0.1:{metrics}/metrics")
        self.wait_fronts_ready()

    def wait_fronts_ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        for i, (process, target) in enumerate(zip(self.fronts, self.front_targets)):
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"front-{i} exited with {process.returncode}: see {self.run_dir}/front-{i}.log")
                try:
                    if check_health(target, timeout_s=2.0) == "SERVING":
                        break
                except Exception:  # not listening yet
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"front-{i} not serving after {timeout_s:.0f} s")
                time.sleep(0.2)

    def start_children(self) -> None:
        args, processes = self.args, min(self.args.writer_processes, self.args.writers)
        roles, first = [], 0
        for index in range(processes):  # the writers spread evenly: 32 over 4 is 8 each
            threads = args.writers // processes + (index < args.writers % processes)
            roles.append((f"writers-{index}", ["--role", "writer", "--first", str(first), "--threads", str(threads)]))
            first += threads
        roles.append(("learner", ["--role", "learner"]))
        common = ["--front-targets", ",".join(self.front_targets), "--seed", str(args.seed)]
        common += ["--max-inflight", str(args.max_inflight)]
        for name, role in roles:
            with open(self.run_dir / f"{name}.log", "ab") as log_file:
                process = subprocess.Popen(
                    [sys.executable, str(Path(__file__).resolve()), *role, *common],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log_file,
                    text=True,
                    preexec_fn=_die_with_parent,
                )
            child = Child(name, process)
            threading.Thread(target=child.read, args=(self._on_line,), daemon=True).start()
            self.children.append(child)
        self.wait_children_ready()

    def _on_line(self, child: Child, record: dict) -> None:
        if record.get("kind") == "learner" and "samples" in record:
            with self._lock:
                self.samples += record["samples"]
                self.sample_errors = record["errors"]

    def wait_children_ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        for child in self.children:
            while child.latest() is None:
                if child.process.poll() is not None:
                    raise RuntimeError(f"{child.name} exited with {child.process.returncode}: see its log")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{child.name} not ready after {timeout_s:.0f} s")
                time.sleep(0.1)

    def tell_children(self, word: str, names: str = "") -> None:
        for child in self.children:
            if child.name.startswith(names) and child.process.poll() is None:
                try:
                    child.process.stdin.write(word + "\n")
                    child.process.stdin.flush()
                except (BrokenPipeError, ValueError):
                    pass

    def wait_children(self, names: str, timeout_s: float) -> list[str]:
        """Wait for the named children to exit; the names of those that had to be killed."""
        deadline, killed = time.monotonic() + timeout_s, []
        for child in self.children:
            if not child.name.startswith(names):
                continue
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
                killed.append(child.name)
        return killed

    def pids(self) -> dict[str, list[int]]:
        """Every process this run started, by kind (all stopped when the run ends)."""
        return {
            "shards": [s.process.pid for s in self.shards if s.process],
            "fronts": [p.pid for p in self.fronts],
            "children": [c.process.pid for c in self.children],
        }

    # stopping

    def stop(self) -> None:
        for child in self.children:
            if child.process.poll() is None:
                child.process.kill()
                child.process.wait()
        for process in self.fronts:
            if process.poll() is None:
                process.terminate()
        for process in self.fronts:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for shard in self.shards:
            shard.stop()


# --- watching -----------------------------------------------------------------------------------


@dataclass
class Look:
    """One look at the whole run."""

    t: float
    used: list[int]  # used_memory per shard
    transitions: list[int] | None  # per shard (None: Stats did not answer)
    shard_capacity: list[int] | None
    inserted: float | None  # the store's inserted_transitions_total
    evicted: float | None  # the store's evicted_segments_total
    rss: list[int]  # per front, bytes
    blocked_s: float  # all writers' time inside append so far
    written: int  # transitions the writers appended so far


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def writer_totals(run: Run) -> tuple[float, int]:
    blocked_s, written = 0.0, 0
    for child in run.children:
        latest = child.latest()
        if child.name.startswith("writers") and latest and "threads" in latest:
            blocked_s += sum(t["blocked_s"] for t in latest["threads"])
            written += sum(t["appended_transitions"] for t in latest["threads"])
    return blocked_s, written


def look(run: Run, stats_client, redis_clients) -> Look:
    used = [int(c.info("memory")["used_memory"]) for c in redis_clients]
    transitions = capacity = inserted = evicted = None
    try:
        stats = stats_client.stats()
        transitions = [int(s.values.get("transitions", 0)) for s in stats.shards]
        capacity = [int(s.values.get("capacity", 0)) for s in stats.shards]
        inserted = stats.totals.get("inserted_transitions_total", 0.0)
        evicted = stats.totals.get("evicted_segments_total", 0.0)
    except Exception as error:  # a slow front: this look has no store figures, the next will
        log(f"Stats failed: {error}")
    rss = [rss_bytes(p.pid) if p.poll() is None else 0 for p in run.fronts]
    return Look(time.monotonic(), used, transitions, capacity, inserted, evicted, rss, *writer_totals(run))


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def window_figures(run: Run, start: Look, end: Look, t0: float) -> dict:
    """The figures of the window between two looks."""
    dt = max(end.t - start.t, 1e-9)
    with run._lock:
        latencies = [ms for t, ms in run.samples if start.t < t <= end.t]
    inserted = None if start.inserted is None or end.inserted is None else (end.inserted - start.inserted) / dt
    return {
        "start": round(start.t - t0, 1),
        "t": round(end.t - t0, 1),
        "tps": None if inserted is None else round(inserted, 1),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "batches": len(latencies),
        "redis_used_mb": [round(u / 2**20, 2) for u in end.used],
        "front_rss_mb": [round(r / 2**20, 1) for r in end.rss],
        # Reports lag a look by up to a second: clip the noise that puts this a hair over 1.
        "blocked_fraction": round(min((end.blocked_s - start.blocked_s) / (run.args.writers * dt), 1.0), 3),
        "writer_tps": round((end.written - start.written) / dt, 1),
    }


def progress(figures: dict, end: Look, maxmemory: int) -> str:
    redis = ", ".join(f"{u:.1f}" for u in figures["redis_used_mb"])
    stored = "?" if end.transitions is None else f"{sum(end.transitions):,}/{sum(end.shard_capacity):,}"
    latency = "-" if figures["p50"] is None else f"p50 {figures['p50']:.1f} ms p99 {figures['p99']:.1f} ms"
    return (
        f"[{figures['t']:6.0f} s] insert {figures['tps'] or 0:>9,.0f} tr/s  sample {latency} "
        f"({figures['batches']} batches)  store {stored}  evicted {int(end.evicted or 0):,}  "
        f"redis {redis} of {maxmemory / 2**20:.0f} MB  front RSS "
        f"{', '.join(str(r) for r in figures['front_rss_mb'])} MB  blocked {figures['blocked_fraction']:.0%}"
    )


def scrape_cache(run: Run) -> list[dict | None]:
    """Each front's cache: bytes held, hits and misses so far (None: /metrics did not answer)."""
    caches = []
    for url in run.front_metrics:
        try:
            values = scrape(url, timeout_s=5.0)
        except Exception:
            caches.append(None)
            continue
        caches.append(
            {
                "bytes": values.get("muzero_replay_cache_bytes", 0.0),
                "hits": values.get("muzero_replay_cache_hits_total", values.get("muzero_replay_cache_hits", 0.0)),
                "misses": values.get("muzero_replay_cache_misses_total", values.get("muzero_replay_cache_misses", 0.0)),
            }
        )
    return caches


def rpc_means_ms(run: Run) -> list[dict[str, float]]:
    """Each front's own mean time per unit of work, by method (muzero_replay_rpc_duration_seconds):
    against the learner's latency, it tells serving time from waiting for a thread and the GIL."""
    means = []
    for url in run.front_metrics:
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        try:
            with urllib.request.urlopen(url, timeout=5.0) as response:
                text = response.read().decode()
        except Exception:
            means.append({})
            continue
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                method = sample.labels.get("method")
                if sample.name == "muzero_replay_rpc_duration_seconds_sum":
                    sums[method] = sample.value
                elif sample.name == "muzero_replay_rpc_duration_seconds_count":
                    counts[method] = sample.value
        means.append({m: round(1000 * sums[m] / counts[m], 2) for m in sums if counts.get(m)})
    return means


def store_full(look: Look) -> bool:
    """Every shard within one segment of its share (a segment that does not fit evicts)."""
    return look.transitions is not None and all(t > c - OWNED for t, c in zip(look.transitions, look.shard_capacity))


def warmed_up(run: Run, current: Look, t0: float) -> tuple[bool, list, str]:
    """Whether warm-up is over at ``current``: past --warmup-fraction of the run with the store
    full and every front's cache at 90% of its bound (a cache filling up is bounded growth,
    not a leak), or half the run gone whatever they hold. (over, caches' bytes, why)."""
    args = run.args
    elapsed = current.t - t0
    if elapsed < args.warmup_fraction * args.seconds:
        return False, [], ""
    caches = scrape_cache(run)
    if elapsed >= 0.5 * args.seconds:
        return True, caches, "half the run"
    filled = all(c is not None and c["bytes"] >= 0.9 * args.cache_bytes for c in caches)
    return store_full(current) and filled, caches, "store and caches full"


def watch(run: Run, t0: float) -> tuple[list[Look], list[dict], Look, list, str]:
    """Look every --sample-every s until the run's end; (looks, windows, the warm-up look, the
    fronts' cache bytes at warm-up, why warm-up ended there)."""
    args = run.args
    stats_client = ReplayClient(run.front_targets[0], timeout_s=10.0)
    redis_clients = [s.client() for s in run.shards]
    looks = [look(run, stats_client, redis_clients)]
    windows: list[dict] = []
    window_start, warm, warm_cache, reason = looks[0], None, [], "never (run too short)"
    end = t0 + args.seconds
    while time.monotonic() < end:
        time.sleep(min(args.sample_every, max(end - time.monotonic(), 0)))
        current = look(run, stats_client, redis_clients)
        looks.append(current)
        if warm is None:
            over, caches, why = warmed_up(run, current, t0)
            if over:
                warm, warm_cache, reason = current, caches, why
                log(f"warm-up over after {current.t - t0:.0f} s ({why})")
        last = current.t >= end - 1e-3
        if current.t - window_start.t >= args.window - 1e-3 or (last and current.t - window_start.t >= 1.0):
            windows.append(window_figures(run, window_start, current, t0))
            log(progress(windows[-1], current, args.maxmemory))
            window_start = current
    stats_client.close()
    return looks, windows, warm or looks[-1], warm_cache, reason


# --- judging ------------------------------------------------------------------------------------


def redis_figures(run: Run, looks: list[Look]) -> dict:
    peaks = [max(look.used[i] for look in looks) for i in range(len(run.shards))]
    oom, evicted_keys = [], []
    for shard in run.shards:
        client = shard.client()
        oom.append(int(client.info("errorstats").get("errorstat_OOM", {}).get("count", 0)))
        evicted_keys.append(int(client.info("stats")["evicted_keys"]))
    within = all(p <= run.args.maxmemory for p in peaks) and not any(oom) and not any(evicted_keys)
    return {
        "redis_within_maxmemory": within,
        "redis": {
            "maxmemory_bytes": run.args.maxmemory,
            "peak_used_bytes": peaks,
            "peak_fraction": [round(p / run.args.maxmemory, 3) for p in peaks],
            "oom_errors": oom,
            "evicted_keys": evicted_keys,
        },
    }


def store_figures(looks: list[Look], t0: float) -> dict:
    seen = [look for look in looks if look.transitions is not None]
    if not seen:
        return {"store_within_capacity": False, "store": {"looks_without_stats": len(looks)}, "evicted_segments": 0}
    within = all(all(t <= c for t, c in zip(look.transitions, look.shard_capacity)) for look in seen)
    capacity = seen[-1].shard_capacity
    full = next((look for look in seen if store_full(look)), None)
    return {
        "store_within_capacity": within,
        "store": {
            "capacity": sum(capacity),
            "shard_capacity": capacity,
            "peak_shard_transitions": [max(look.transitions[i] for look in seen) for i in range(len(capacity))],
            "full_after_s": None if full is None else round(full.t - t0, 1),
            "looks_without_stats": len(looks) - len(seen),
        },
        "evicted_segments": int(seen[-1].evicted),
    }


def writer_figures(run: Run, killed: list[str], seconds: float) -> dict:
    tallies, codes, unreported = [], {}, []
    for child in run.children:
        if not child.name.startswith("writers"):
            continue
        final = next((line for line in reversed(child.lines) if line.get("final")), None)
        if final is None:
            unreported.append(child.name)
            final = child.latest() or {"threads": []}
        tallies += final["threads"]
        for code, n in final.get("codes", {}).items():
            codes[code] = codes.get(code, 0) + n
    kinds = ("rejected", "reconnects", "timeouts", "exceptions", "unacknowledged")
    per_kind = {kind: sum(t[kind] for t in tallies) for kind in kinds}
    errors = sum(per_kind.values()) + len(killed) + len(unreported)
    append_s = sum(t["append_s"] for t in tallies)
    return {
        "writer_errors": errors,
        "writer_error_kinds": {**per_kind, "stream_codes": codes, "killed": killed, "unreported": unreported},
        "writer_first_errors": sorted({t["first_error"] for t in tallies if t["first_error"]})[:5],
        "acknowledged_segments": sum(t["acknowledged"] for t in tallies),
        "appended_transitions": sum(t["appended_transitions"] for t in tallies),
        "backpressure": {
            "max_inflight": run.args.max_inflight,
            "blocked_fraction": round(append_s / max(len(tallies) * seconds, 1e-9), 3),
            "max_append_s": round(max((t["max_append_s"] for t in tallies), default=0.0), 3),
        },
        "per_writer_segments": [t["appended_segments"] for t in tallies],
    }


def cache_mb(caches: list, i: int) -> float | None:
    return round(caches[i]["bytes"] / 2**20, 1) if caches and caches[i] else None


def hit_ratio(warm: list, end: list, i: int) -> float | None:
    """Hits per lookup of the front's cache after warm-up."""
    if not warm or not end or not warm[i] or not end[i]:
        return None
    hits, misses = end[i]["hits"] - warm[i]["hits"], end[i]["misses"] - warm[i]["misses"]
    return round(hits / (hits + misses), 3) if hits + misses else None


def rss_figures(run: Run, warm: Look, end: Look, warm_cache: list, end_cache: list, reason: str) -> dict:
    fronts = {}
    for i in range(len(run.fronts)):
        growth = end.rss[i] / warm.rss[i] - 1 if warm.rss[i] else None
        fronts[f"front-{i}"] = {
            "warm_mb": round(warm.rss[i] / 2**20, 1),
            "end_mb": round(end.rss[i] / 2**20, 1),
            "growth": None if growth is None else round(growth, 4),
            "cache_mb_warm": cache_mb(warm_cache, i),
            "cache_mb_end": cache_mb(end_cache, i),
            "cache_hit_ratio": hit_ratio(warm_cache, end_cache, i),
        }
    growths = [f["growth"] for f in fronts.values()]
    flat = all(g is not None and abs(g) <= run.args.rss_tolerance for g in growths)
    return {
        "front_rss_growth": {
            "warmup_s": round(warm.t - run.t0, 1),
            "warmup_ended": reason,
            "tolerance": run.args.rss_tolerance,
            "max": max((abs(g) for g in growths if g is not None), default=None),
            **fronts,
        },
        "front_rss_flat": flat,
    }


def fsck(run: Run) -> list[str]:
    config = config_module.load(EXPERIMENT, [*front_overrides(run.args), *redis_overrides([s.url for s in run.shards])])
    try:
        return build_store(config).fsck()
    except Exception as error:
        return [f"the store refused to open: {type(error).__name__}: {error}"]


def measure(run: Run) -> dict:
    args = run.args
    run.t0 = time.monotonic()
    run.tell_children("go")
    log(f"load: {args.writers} writers, {len(run.fronts)} fronts, {len(run.shards)} shards, {args.seconds:.0f} s")
    looks, windows, warm, warm_cache, warm_reason = watch(run, run.t0)
    end_cache, rpc_means = scrape_cache(run), rpc_means_ms(run)
    seconds = time.monotonic() - run.t0
    run.tell_children("stop")  # writers and learner together: no samples of a store at rest
    killed = run.wait_children("writers", 90.0) + run.wait_children("learner", 60.0)
    redis_clients = [s.client() for s in run.shards]
    with ReplayClient(run.front_targets[0], timeout_s=10.0) as client:
        final = look(run, client, redis_clients)
    started = time.monotonic()
    problems = fsck(run)  # one script per shard, holding it: other clients get BUSY past 5 s
    fsck_s = time.monotonic() - started
    with run._lock:
        latencies = [ms for t, ms in run.samples if t <= looks[-1].t]  # the run's, not its shutdown's
        sample_errors = dict(run.sample_errors)
    tps = [w["tps"] for w in windows if w["tps"] is not None]
    full_at = next((look.t - run.t0 for look in looks if store_full(look)), None)
    # Windows wholly after the store filled: inserts that evict, the steady state.
    steady = [w["tps"] for w in windows if w["tps"] is not None and full_at is not None and w["start"] >= full_at]
    result = {
        "seconds": round(seconds, 1),
        "writers": args.writers,
        "writer_processes": min(args.writer_processes, args.writers),
        "fronts": len(run.fronts),
        "shards": len(run.shards),
        "window_s": args.window,
        "insert_tps": {
            "median": percentile(tps, 50),
            "evicting_median": percentile(steady, 50),
            "series": [{"t": w["t"], "tps": w["tps"]} for w in windows],
        },
        "sample_latency_ms": {
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "batches": len(latencies),
            "batch_size": BATCH,
            "series": [{k: w[k] for k in ("t", "p50", "p99", "batches")} for w in windows],
        },
        "sample_errors": sample_errors,
        "front_rpc_mean_ms": rpc_means,
        **redis_figures(run, [*looks, final]),
        **store_figures([*looks, final], run.t0),
        **writer_figures(run, [k for k in killed if k.startswith("writers")], seconds),
        **rss_figures(run, warm, looks[-1], warm_cache, end_cache, warm_reason),
        "fsck_clean": not problems,
        "fsck_problems": problems[:10],
        "fsck_s": round(fsck_s, 1),
        "windows": windows,
        "loadavg_start": run.loadavg_start,
        "pids": run.pids(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    result["bars"] = {
        "redis_within_maxmemory": result["redis_within_maxmemory"],
        "store_within_capacity": result["store_within_capacity"],
        "eviction": result["evicted_segments"] > 0,
        "no_writer_errors": result["writer_errors"] == 0,
        "no_sample_errors": not sample_errors and bool(latencies) and "learner" not in killed,
        "front_rss_flat": result.pop("front_rss_flat"),
        "fsck_clean": result["fsck_clean"],
    }
    result["bars_met"] = all(result["bars"].values())
    return result


# --- the command --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600.0, help="how long the writers write")
    parser.add_argument("--writers", type=int, default=32, help="writer threads in all, each its own SegmentWriter")
    parser.add_argument("--writer-processes", type=int, default=4, help="processes the writers are spread over")
    parser.add_argument("--fronts", type=int, default=2, help="replay front processes")
    parser.add_argument("--shards", type=int, default=2, help="Redis shards")
    parser.add_argument("--capacity", type=int, default=1_000_000, help="replay.capacity, transitions in all")
    parser.add_argument(
        "--maxmemory", type=size_bytes, default=None, help="each shard's maxmemory (default: sized to --capacity)"
    )
    parser.add_argument("--cache-bytes", type=int, default=32 * 2**20, help="replay.cache_bytes of each front")
    parser.add_argument("--max-inflight", type=int, default=64, help="unacknowledged segments a writer may hold")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per reported window")
    parser.add_argument("--sample-every", type=float, default=1.0, help="seconds between looks at memory and Stats")
    parser.add_argument("--warmup-fraction", type=float, default=0.2, help="the part of the run that is warm-up")
    parser.add_argument("--rss-tolerance", type=float, default=0.10, help="front RSS change allowed after warm-up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs) even when every bar holds")
    parser.add_argument("--role", choices=["writer", "learner"], help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)  # a writer process's first writer
    parser.add_argument("--threads", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--front-targets", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writers < 1 or args.writer_processes < 1 or args.fronts < 1 or args.shards < 1:
        parser.error("--writers, --writer-processes, --fronts and --shards must be >= 1")
    if args.seconds <= 0 or args.window <= 0 or not 0 < args.warmup_fraction < 1:
        parser.error("--seconds and --window must be > 0, --warmup-fraction in (0, 1)")
    if args.maxmemory is None:
        args.maxmemory = auto_maxmemory(args.capacity, args.shards)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "writer":
        return writer_role(args)
    if args.role == "learner":
        return learner_role(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stop request still stops what we started
    run_dir = Path(tempfile.mkdtemp(prefix="muzero-load-"))
    run = Run(args, run_dir)
    run.loadavg_start = [round(x, 2) for x in os.getloadavg()]
    try:
        run.start_shards()
        run.start_fronts()
        run.start_children()
        result = measure(run)
    finally:
        run.stop()
    log(json.dumps(result["bars"]))
    for child in run.children:  # what each child reported, for a look after the run
        (run_dir / f"{child.name}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in child.lines))
    if result["bars_met"] and not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        result["logs"] = str(run_dir)
        log(f"logs: {run_dir}")
    print(json.dumps(result), flush=True)
    return 0 if result["bars_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
