"""Chaos: kill -9 any part of a training cluster at random, restart it as Kubernetes would, lose nothing.

    python benchmarks/chaos.py [--seconds 600] [--seed 0] [--no-kills] [--no-persistence]
                               [--appendfsync always|everysec] [--baseline RESULT.json]

Runs the loopback cluster of ``muzero cluster up`` (CartPole: 2 Redis shards with
append-only files, replay front, learner, 2 actors, 1 reanalyze worker). Once the
learner has published its first trained checkpoint, it sends SIGKILL to a random
process every 20-60 s for ``--seconds`` (intervals drawn from a triangular law on
[20, 60] s with its mode at 20 s, mean 33 s: 600 s hold about 17 kills) and starts
it again 2-5 s later with the same ports, environment and data folder (a shard on
its port and folder, reloading its append-only file; the learner from its run
folder). Victims come in rounds, each a seeded shuffle of every kind (replay,
learner, actor, reanalyze, redis), so every 5 kills cover every kind; the instance
of a kind is drawn too. The schedule depends only on ``--seed``, ``--seconds`` and
the options, and is printed first. ``--no-kills`` runs the same cluster with the
same seed for the same time without killing anything: the baseline for the
learning bar.

Then it stops the cluster (SIGTERM, actors first) and checks, each a bar:

- ``kills``: at least ``--min-kills`` (15 for 600 s, scaled for other lengths) and
  every kind at least once (when the schedule holds a whole round); every restarted
  process became ready again, and none died unasked;
- ``lost``: 0. Each actor logs the id of every segment the replay service
  acknowledged (MUZERO_ACK_LOG). Every one of them must be stored now (in its shard's
  FIFO) or evicted: the shard keeps a tombstone per evicted id (the ``seen`` zset,
  the last 100,000), so "evicted" is a per-id fact, not an inference from counters.
  An id that is neither is lost; where a shard evicted more ids than it keeps
  tombstones for (``evicted_segments_total`` above the tombstones), at most that
  many missing ids are taken as evicted. Tombstones on a shard that lost its
  bookkeeping (restarted empty, see below) are not evictions and count as lost;
- ``fsck_clean``: the Redis store's fsck finds nothing;
- ``published_monotone``: the checkpoint service's Latest, polled every 0.5 s
  across every learner restart, never answers a lower version than before; each
  learner restart resumes from the version published before its kill
  (``learner_resumes``);
- the learner keeps learning: it trained past the step it was last restarted at;
  the greedy CartPole evaluation of the last checkpoint (``--eval-episodes``, 30)
  is reported, and so is the mean over the last ``--recent-checkpoints`` (5: the
  learner keeps 5, 100 steps apart) with ``--recent-episodes`` (10) each for the
  earlier ones: the return of one CartPole checkpoint often differs by half from
  the next one's (seen: 155 to 302 within 400 steps), so one checkpoint says little.
  With ``--baseline`` (the output of a ``--no-kills`` run, same seed and length)
  that recent mean must reach the baseline's within noise: less by at most 2
  combined standard errors (of the checkpoints' means) or 10% of the baseline,
  whichever is larger.

Progress goes to stderr; the last line of stdout is one JSON object with
``kills``, ``acknowledged``, ``stored``, ``evicted``, ``lost``, ``fsck_clean``,
``published_monotone``, ``final_eval_mean_return`` and details. Exit status 1 when
a bar fails.

Persistence. Shards run ``--appendonly yes`` with ``--appendfsync always`` by
default: Redis writes and fsyncs the append-only file before it answers, so an
insert the store acknowledged is on disk when the shard is killed, and the
restarted shard reloads it (a Lua script's writes are one MULTI/EXEC in the file,
so a kill never leaves half an insert). ``--appendfsync everysec`` (the Helm
chart's default) fsyncs once a second; a kill -9 of Redis alone loses nothing the
kernel already has, but while a slow fsync is in flight Redis holds writes back in
its own memory for up to 2 s and still answers, so a kill then can lose
acknowledged segments; a crash of the machine loses about the last second.

``--no-persistence`` measures what is lost without append-only files: a killed
shard comes back empty, so every segment it held is gone (``shard_kills`` records
how many it held at each kill: all acknowledged, all lost). The store notices that the
shard lost its bookkeeping (its scripts refuse a shard without it), sets it up again
and goes on storing; the audit would count segments acknowledged and then dropped by a
shard without bookkeeping as ``evicted_on_uninitialised_shard`` (the bug this run
found: before the fix every later insert on such a shard evicted the one before).
Measured 2026-12-01 (2 cores, seed 0, ``--no-persistence --kinds redis --seconds 90
--interval 20 30``, two shard kills): of 1,332 acknowledged segments 1,062 were lost,
exactly what the two shards held when they died (452 and 610), and the 270
acknowledged after the restarts were all stored; training went on (version 3,300 at
the end). Before the fix the same run lost 1,268 of 1,269 (147 of them acknowledged
after the restarts) and training stopped at version 1,700. With
append-only files, ``--kinds redis --seconds 120 --interval 10 20`` (7 shard kills)
lost nothing and left fsck clean, with ``always`` (944 acknowledged: 125 stored, 819
evicted) and with ``everysec`` (1,095: 49 stored, 1,046 evicted).
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # before gRPC loads: see muzero/operations/cluster.py

import argparse
import json
import math
import random
import re
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import redis

from muzero import config as config_module
from muzero.acting.evaluation import evaluate_returns
from muzero.nn.networks import build_network
from muzero.operations.cluster import Cluster, scrape
from muzero.storage.checkpoint import CheckpointManager, load_checkpoint
from muzero.storage.replay.factory import EnvSpec, build_store, redis_overrides
from muzero.storage.replay.redis_store import shard_of
from muzero.transport.checkpoint_client import CheckpointClient

KINDS = ("replay", "learner", "actor", "reanalyze", "redis")
# The end-to-end test's settings: CartPole learns with them in a few thousand learner steps;
# frequent checkpoints make every learner kill land between several publications.
OVERRIDES = [
    "name=chaos",
    "env.num_envs=8",
    "replay.min_size=500",
    "training.checkpoint_interval=100",
    "replay.samples_per_insert=16",
    "reanalyze.fraction=0.25",
]
READY_TIMEOUT_S = 180.0
RESTART_ATTEMPTS = 3


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the schedule ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedKill:
    at_s: float  # after the chaos phase began
    kind: str
    index: int  # which actor, reanalyze worker or shard; 0 for replay and learner
    down_s: float  # dead this long before the restart

    @property
    def target(self) -> str:
        return self.kind if self.kind in ("replay", "learner") else f"{self.kind}-{self.index}"


def plan_kills(
    seed: int,
    seconds: float,
    counts: dict[str, int],
    interval_s: tuple[float, float] = (20.0, 60.0),
    down_s: tuple[float, float] = (2.0, 5.0),
    quiet_s: float = 15.0,
) -> list[PlannedKill]:
    """The seeded schedule: rounds of every kind in ``counts`` (kind -> instances), shuffled,
    at triangular(low, high, mode=low) intervals; none in the last ``quiet_s`` so the last
    restart settles before the audit."""
    rng = random.Random(seed)
    kinds = [kind for kind in KINDS if counts.get(kind, 0) > 0]
    kills: list[PlannedKill] = []
    order: list[str] = []
    at = 0.0
    while True:
        at += rng.triangular(interval_s[0], interval_s[1], interval_s[0])
        down = rng.uniform(*down_s)
        if at + down + quiet_s > seconds:
            return kills
        if not order:
            order = rng.sample(kinds, len(kinds))
        kind = order.pop()
        kills.append(PlannedKill(round(at, 1), kind, rng.randrange(counts[kind]), round(down, 1)))


# --- watching published versions --------------------------------------------------------------


class VersionWatch:
    """Polls the checkpoint service's Latest on a thread; keeps every answer."""

    def __init__(self, target: str, interval_s: float = 0.5):
        self.versions: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._client = CheckpointClient(target, timeout_s=2.0)
        self._interval_s = interval_s
        self._thread = threading.Thread(target=self._run, name="version-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                info = self._client.latest()
            except grpc.RpcError:
                info = None  # the learner is down: nothing published to read
            if info is not None:
                self.versions.append((time.monotonic(), int(info.version)))
            self._stop.wait(self._interval_s)

    @property
    def newest(self) -> int:
        return self.versions[-1][1] if self.versions else -1

    @property
    def highest(self) -> int:
        return max((v for _, v in self.versions), default=-1)

    def regressions(self) -> list[tuple[int, int]]:
        """(before, after) for every answer lower than the highest one before it."""
        found, highest = [], -1
        for _, version in self.versions:
            if version < highest:
                found.append((highest, version))
            highest = max(highest, version)
        return found

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._client.close()


# --- killing and restarting -------------------------------------------------------------------


@dataclass
class Chaos:
    """The cluster under test and what happened to it."""

    cluster: Cluster
    config: config_module.ExperimentConfig
    watch: VersionWatch
    kills: list[dict] = field(default_factory=list)
    unexpected_exits: list[dict] = field(default_factory=list)
    learner_resumes: list[dict] = field(default_factory=list)

    def shard_prefix(self, index: int) -> str:
        return f"{self.config.replay.key_prefix}:{{{self.config.name}.{index}}}:"

    def execute(self, kill: PlannedKill, started: float) -> None:
        record = {**asdict(kill), "target": kill.target, "late_s": round(time.monotonic() - started - kill.at_s, 1)}
        if kill.kind == "redis":
            record["segments_held"] = self._segments_held(kill.index)
            self.cluster.kill_shard(kill.index)
        else:
            if kill.kind == "learner":
                record["published_before"] = self.watch.highest
            log_offset = Path(self.cluster.layout.service(kill.target).log).stat().st_size
            self.cluster.kill(kill.target)
        log(f"killed {kill.target} (kill {len(self.kills) + 1}); restarting in {kill.down_s} s")
        time.sleep(kill.down_s)  # dead for a while, as a pod waits for its restart
        restarted = time.monotonic()
        record["ready"] = self._restart(kill.kind, kill.index, kill.target)
        record["ready_s"] = round(time.monotonic() - restarted, 1)
        if kill.kind == "learner":
            resumed = _resumed_step(self.cluster.layout.service("learner").log, log_offset)
            self.learner_resumes.append({"published_before": record["published_before"], "resumed_from": resumed})
        log(f"{kill.target} back ({'ready' if record['ready'] else 'NOT READY'}) after {record['ready_s']} s")
        self.kills.append(record)

    def _segments_held(self, index: int) -> int | None:
        try:
            return int(self.cluster.redis[index].client().llen(self.shard_prefix(index) + "fifo"))
        except redis.RedisError:
            return None

    def _restart(self, kind: str, index: int, target: str) -> bool:
        """Start it again (up to RESTART_ATTEMPTS times, as a pod restarts); True once it is ready."""
        for attempt in range(RESTART_ATTEMPTS):
            try:
                if kind == "redis":
                    self.cluster.start_shard(index)
                else:
                    self.cluster.start_service(target)
                    self.cluster.wait_ready(READY_TIMEOUT_S, names=[target])
                return True
            except (RuntimeError, TimeoutError) as error:
                log(f"{target} failed to come back (attempt {attempt + 1}): {error}")
                if kind != "redis" and self.cluster.processes[target].poll() is None:
                    self.cluster.kill(target)
        return False

    def check_alive(self) -> None:
        """A process that died without being killed is a finding; restart it as Kubernetes would."""
        for name, process in list(self.cluster.processes.items()):
            if process.poll() is not None:
                tail = Path(self.cluster.layout.service(name).log).read_text(errors="replace")[-1500:]
                self.unexpected_exits.append({"target": name, "code": process.returncode, "log_tail": tail})
                log(f"{name} DIED UNASKED with code {process.returncode}; restarting it\n{tail}")
                self._restart(self.cluster.layout.service(name).kind, 0, name)
        for index, server in enumerate(self.cluster.redis):
            if server.process is not None and server.process.poll() is not None:
                self.unexpected_exits.append({"target": f"redis-{index}", "code": server.process.returncode})
                log(f"redis-{index} DIED UNASKED; restarting it")
                self._restart("redis", index, f"redis-{index}")


def _resumed_step(log_path: str, offset: int) -> int | None:
    """The step a restarted learner says it resumed from (its log after ``offset``)."""
    with open(log_path, "rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    match = re.search(r"resumed from step (\d+)", text)
    return int(match.group(1)) if match else None


def acknowledged_count(ack_dir: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in ack_dir.glob("*.acks"))


def learner_step(cluster: Cluster) -> int:
    try:
        return int(scrape(cluster.layout.service("learner").metrics_url).get("muzero_learner_steps_total", 0))
    except OSError:
        return -1


def run_schedule(chaos: Chaos, plan: list[PlannedKill], seconds: float, ack_dir: Path) -> None:
    """Execute ``plan`` against the wall clock for ``seconds``, with a progress line now and then."""
    started = last_progress = time.monotonic()
    pending = list(plan)
    while True:
        now = time.monotonic() - started
        if pending and now >= pending[0].at_s:
            chaos.execute(pending.pop(0), started)
            continue
        if now >= seconds:
            return
        chaos.check_alive()
        if time.monotonic() - last_progress >= 30:
            last_progress = time.monotonic()
            log(
                f"t={now:.0f} s: published version {chaos.watch.newest}, {acknowledged_count(ack_dir)} segments "
                f"acknowledged, {len(chaos.kills)} kills"
            )
        next_at = pending[0].at_s if pending else seconds
        time.sleep(max(0.0, min(next_at - now, 5.0)))


# --- the audit --------------------------------------------------------------------------------


def read_acknowledged(ack_dir: Path) -> set[str]:
    acknowledged: set[str] = set()
    for path in ack_dir.glob("*.acks"):
        acknowledged.update(line.strip() for line in path.read_text().splitlines() if line.strip())
    return acknowledged


def audit_segments(chaos: Chaos, ack_dir: Path) -> dict:
    """Acknowledged ids against the shards, read raw (before anything re-initialises a shard)."""
    acknowledged = read_acknowledged(ack_dir)
    shards = len(chaos.cluster.redis)
    by_shard: dict[int, set[str]] = {i: set() for i in range(shards)}
    for segment_id in acknowledged:
        by_shard[shard_of(segment_id, shards)].add(segment_id)
    totals = {"stored": 0, "evicted": 0, "lost": 0, "evicted_on_uninitialised_shard": 0}
    store = {"segments": 0, "evicted_segments_total": 0, "duplicate_inserts_total": 0, "unacknowledged_stored": 0}
    lost_examples: list[str] = []
    for index, server in enumerate(chaos.cluster.redis):
        client, prefix = server.client(), chaos.shard_prefix(index)
        fifo = {i.decode() for i in client.lrange(prefix + "fifo", 0, -1)}
        tombstones = {i.decode() for i in client.zrange(prefix + "seen", 0, -1)}
        meta = {k.decode(): v.decode() for k, v in client.hgetall(prefix + "meta").items()}
        initialised = "capacity" in meta
        evicted_total = int(meta.get("evicted_segments_total", 0))
        mine = by_shard[index]
        stored = mine & fifo
        missing = mine - fifo
        evicted = missing & tombstones if initialised else set()
        if not initialised:
            totals["evicted_on_uninitialised_shard"] += len(missing & tombstones)
        unexplained = missing - evicted
        trimmed = max(0, evicted_total - len(tombstones)) if initialised else 0  # tombstones beyond the cap
        lost = max(0, len(unexplained) - trimmed)
        totals["stored"] += len(stored)
        totals["evicted"] += len(missing) - lost
        totals["lost"] += lost
        lost_examples += sorted(unexplained)[: max(0, 5 - len(lost_examples))] if lost else []
        store["segments"] += len(fifo)
        store["evicted_segments_total"] += evicted_total
        store["duplicate_inserts_total"] += int(meta.get("duplicate_inserts_total", 0))
        store["unacknowledged_stored"] += len(fifo - acknowledged)
    return {"acknowledged": len(acknowledged), **totals, "lost_examples": lost_examples, "store": store}


def fsck(config: config_module.ExperimentConfig) -> list[str]:
    try:
        store = build_store(config, EnvSpec.of(config))
    except Exception as error:  # e.g. a shard whose bookkeeping is gone: the store refuses it
        return [f"the store refused to open: {error}"]
    return store.fsck()


def evaluate(config: config_module.ExperimentConfig, run_dir: Path, args: argparse.Namespace) -> dict:
    """Greedy returns of the last checkpoint (``--eval-episodes``), and the mean over the last
    ``--recent-checkpoints`` kept ones (``--recent-episodes`` each, the last with its own): one
    CartPole checkpoint's return swings by half from the next one's, so the learning bar reads
    that mean, with its spread as the noise."""
    manager = CheckpointManager(run_dir / "learner")
    latest = manager.latest()
    result: dict = {"version": None, "mean": None, "std": None, "recent": []}
    if latest is None or args.eval_episodes < 1:
        result["version"] = None if latest is None else load_checkpoint(latest).version
        return result
    seed = 10_000 + args.seed  # the same episodes for every checkpoint and run
    version, final = _returns(config, latest, args.eval_episodes, seed)
    result.update(version=version, mean=final.mean, std=final.std)
    earlier = [path for path in manager.checkpoints() if path != latest][-(args.recent_checkpoints - 1) :]
    for path in earlier if args.recent_checkpoints > 1 else []:
        older, returns = _returns(config, path, args.recent_episodes, seed)
        result["recent"].append({"version": older, "mean": returns.mean})
    result["recent"].append({"version": version, "mean": final.mean})
    return result


def _returns(config: config_module.ExperimentConfig, path: Path, episodes: int, seed: int):
    checkpoint = load_checkpoint(path)
    spec = EnvSpec.of(config)
    network = build_network(config.network, spec.observation_shape, spec.num_actions)
    network.load_state_dict(checkpoint.state_dict)
    log(f"evaluating version {checkpoint.version} on {episodes} episodes")
    return checkpoint.version, evaluate_returns(config, network, episodes=episodes, seed=seed)


def recent_summary(recent: list[dict]) -> tuple[float | None, float | None]:
    """Mean of the recent checkpoints' mean returns and its standard error (None with fewer than 2)."""
    means = [r["mean"] for r in recent]
    if not means:
        return None, None
    mean = sum(means) / len(means)
    if len(means) < 2:
        return mean, None
    variance = sum((m - mean) ** 2 for m in means) / (len(means) - 1)
    return mean, math.sqrt(variance / len(means))


# --- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="muzero-chaos-")).resolve()
    ack_dir = run_dir / "acks"
    overrides = [*OVERRIDES, f"training.seed={args.seed}", *args.set]
    cluster = Cluster(
        "cartpole",
        overrides,
        run_dir / "cluster",
        actors=args.actors,
        reanalyze=args.reanalyze,
        shards=args.shards,
        redis_persistence=not args.no_persistence,
        redis_appendfsync=args.appendfsync,
        ack_log_dir=ack_dir,
    )
    config = config_module.load("cartpole", [*overrides, *redis_overrides(cluster.layout.redis_urls)])
    counts = {"replay": 1, "learner": 1, "actor": args.actors, "reanalyze": args.reanalyze, "redis": args.shards}
    counts = {kind: n for kind, n in counts.items() if kind in args.kinds and n > 0}
    args.killed_kinds = [kind for kind in KINDS if kind in counts]
    plan = [] if args.no_kills else plan_kills(args.seed, args.seconds, counts, tuple(args.interval), tuple(args.down))
    log(f"run folder {run_dir}; {len(plan)} kills planned:")
    for kill in plan:
        log(f"  at {kill.at_s:6.1f} s: {kill.target}, down {kill.down_s} s")
    log("starting the cluster")
    try:
        chaos, codes, steps_since_restart = _chaos_phase(cluster, config, args, plan, ack_dir)
        log("auditing acknowledged segments")
        segments = audit_segments(chaos, ack_dir)
        problems = fsck(config)
    finally:
        for server in cluster.redis:
            server.stop()
    evaluation = evaluate(config, cluster.run_dir, args)
    return report(args, chaos, len(plan), segments, problems, evaluation, codes, steps_since_restart, run_dir)


def _chaos_phase(cluster: Cluster, config, args, plan: list[PlannedKill], ack_dir: Path) -> tuple[Chaos, dict, int]:
    """Start, wait for the first trained checkpoint, run the schedule, stop the services (the
    shards stay up for the audit): what happened, the exit codes, the learner's steps since its
    last start."""
    watch = None
    try:
        cluster.start(timeout_s=READY_TIMEOUT_S * 2)
        watch = VersionWatch(cluster.checkpoint_target)
        chaos = Chaos(cluster, config, watch)
        _wait_first_checkpoint(chaos)
        log(f"learner published version {watch.newest}: chaos phase of {args.seconds:.0f} s begins")
        run_schedule(chaos, plan, args.seconds, ack_dir)
        steps = learner_step(cluster)
        log("stopping the cluster")
        return chaos, cluster.stop(keep_redis=True), steps
    finally:
        cluster.stop(keep_redis=True)  # idempotent: whatever still runs after a failure
        if watch is not None:
            watch.close()


def _wait_first_checkpoint(chaos: Chaos) -> None:
    """Chaos starts under load: once the learner trained and published past step 0."""
    deadline = time.monotonic() + READY_TIMEOUT_S * 3
    while chaos.watch.newest < 1:
        chaos.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError("the learner published no trained checkpoint in time")
        time.sleep(0.5)


def report(
    args, chaos: Chaos, planned: int, segments: dict, problems: list[str], evaluation: dict, codes, steps, run_dir
) -> dict:
    kills = {kind: 0 for kind in args.killed_kinds}
    for record in chaos.kills:
        kills[record["kind"]] += 1
    restarted_at = [r["resumed_from"] for r in chaos.learner_resumes if r["resumed_from"] is not None]
    resumes_ok = all(
        r["resumed_from"] is not None and r["resumed_from"] >= r["published_before"] for r in chaos.learner_resumes
    )
    result = {
        "kills": kills,
        "acknowledged": segments["acknowledged"],
        "stored": segments["stored"],
        "evicted": segments["evicted"],
        "lost": segments["lost"],
        "fsck_clean": not problems,
        "published_monotone": not chaos.watch.regressions() and resumes_ok,
        "final_eval_mean_return": evaluation["mean"],
        "final_eval_std": evaluation["std"],
        "recent_eval_mean_return": recent_summary(evaluation["recent"])[0],
        "recent_eval_se": recent_summary(evaluation["recent"])[1],
        "recent_eval": evaluation["recent"],
        "eval_episodes": args.eval_episodes,
        "final_checkpoint_version": evaluation["version"],
        "learner_steps_since_its_last_start": None if steps < 0 else steps,
        "mode": "no-kills" if args.no_kills else "kills",
        "persistence": not args.no_persistence,
        "appendfsync": None if args.no_persistence else args.appendfsync,
        "seconds": args.seconds,
        "seed": args.seed,
        "evicted_on_uninitialised_shard": segments["evicted_on_uninitialised_shard"],
        "lost_examples": segments["lost_examples"],
        "store": segments["store"],
        "fsck_problems": problems[:10],
        "published_versions": {
            "first": _first(chaos.watch),
            "highest": chaos.watch.highest,
            "polls": len(chaos.watch.versions),
        },
        "published_regressions": chaos.watch.regressions()[:10],
        "learner_resumes": chaos.learner_resumes,
        "shard_kills": [
            {"shard": r["index"], "segments_held": r["segments_held"]} for r in chaos.kills if r["kind"] == "redis"
        ],
        "restarts_not_ready": [r["target"] for r in chaos.kills if not r["ready"]],
        "unexpected_exits": [{k: v for k, v in e.items() if k != "log_tail"} for e in chaos.unexpected_exits],
        "exit_codes": codes,
        "kill_log": [{k: r[k] for k in ("at_s", "target", "down_s", "ready_s", "late_s")} for r in chaos.kills],
        "run_dir": str(run_dir),
    }
    result["bars"] = bars(args, result, kills, planned, restarted_at or [_first(chaos.watch)])
    return result


def _first(watch: VersionWatch) -> int:
    return watch.versions[0][1] if watch.versions else -1


def bars(args, result: dict, kills: dict[str, int], planned: int, started_at: list[int]) -> dict:
    """Each bar's verdict (True: met); ``started_at``: the steps the learner (re)started from."""
    verdicts = {
        "lost_none": result["lost"] == 0 and result["acknowledged"] > 0,
        "fsck_clean": result["fsck_clean"],
        "published_monotone": result["published_monotone"],
        "restarts_ready": not result["restarts_not_ready"],
        "no_unexpected_exits": not result["unexpected_exits"],
        # It trained after its last restart: its final checkpoint is past the step it resumed from.
        "learner_kept_learning": (result["final_checkpoint_version"] or 0) > max(started_at),
    }
    if not args.no_kills:
        verdicts["min_kills"] = sum(kills.values()) >= args.min_kills
        if planned >= len(kills):  # a schedule shorter than one round cannot cover every kind
            verdicts["every_kind_killed"] = all(n > 0 for n in kills.values())
    if args.baseline:
        baseline = _last_json_line(Path(args.baseline))
        verdicts["learns_as_without_kills"] = _within_noise(result, baseline)
        result["baseline"] = {
            key: baseline.get(key)
            for key in (
                "final_eval_mean_return",
                "recent_eval_mean_return",
                "recent_eval_se",
                "final_checkpoint_version",
            )
        }
    return verdicts


def _last_json_line(path: Path) -> dict:
    """A run's result: the last line of its output that is a JSON object."""
    for line in reversed(path.read_text().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"{path}: no JSON result line")


def _within_noise(result: dict, baseline: dict) -> bool:
    """The recent mean return at least the baseline's, less 2 combined standard errors (the
    spread over checkpoints) or 10% of the baseline, whichever is larger."""
    ours, theirs = result.get("recent_eval_mean_return"), baseline.get("recent_eval_mean_return")
    if ours is None or theirs is None:
        return False
    error = math.sqrt((result.get("recent_eval_se") or 0.0) ** 2 + (baseline.get("recent_eval_se") or 0.0) ** 2)
    return ours >= theirs - max(2 * error, 0.1 * theirs)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the chaos phase")
    parser.add_argument("--seed", type=int, default=0, help="seeds the schedule and the training")
    parser.add_argument("--no-kills", action="store_true", help="the same run, nothing killed (the baseline)")
    parser.add_argument("--no-persistence", action="store_true", help="shards without append-only files")
    parser.add_argument("--appendfsync", choices=("always", "everysec"), default="always")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds of process to kill")
    parser.add_argument("--interval", type=float, nargs=2, default=(20.0, 60.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--down", type=float, nargs=2, default=(2.0, 5.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--min-kills", type=int, default=None, help="bar; default 15 per 600 s")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--reanalyze", type=int, default=1)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=30, help="greedy episodes on the last checkpoint")
    parser.add_argument("--recent-checkpoints", type=int, default=5, help="checkpoints in the recent mean (kept: 5)")
    parser.add_argument("--recent-episodes", type=int, default=10, help="greedy episodes per earlier checkpoint")
    parser.add_argument("--baseline", help="a --no-kills run's output (its last JSON line is read)")
    parser.add_argument("--set", action="append", default=[], help="extra config override (repeatable)")
    parser.add_argument("--run-dir", help="where the cluster and the acknowledgement logs go (default: a temp folder)")
    args = parser.parse_args(argv)
    args.kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    unknown = set(args.kinds) - set(KINDS)
    if unknown or not args.kinds:
        parser.error(f"--kinds: expected some of {', '.join(KINDS)}, got {', '.join(sorted(unknown)) or 'none'}")
    if args.seconds <= 0 or not 0 < args.interval[0] <= args.interval[1] or not 0 <= args.down[0] <= args.down[1]:
        parser.error("--seconds must be > 0, --interval 0 < LOW <= HIGH, --down 0 <= LOW <= HIGH")
    if args.min_kills is None:
        args.min_kills = math.floor(15 * args.seconds / 600)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    failed = [name for name, met in result["bars"].items() if not met]
    log(f"bars failed: {', '.join(failed)}" if failed else "every bar met")
    print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
