"""``muzero cluster up``: the services as separate processes on loopback, as pods would run them.

Starts S Redis shards, the replay service, the learner, A actors and R reanalyze
workers, each a ``python -m services.<name>`` process with the same experiment
config and its own ports, logs under ``RUN_DIR/logs/``. ``RUN_DIR/cluster.json``
records what runs where, for ``muzero cluster status`` and for tests.

Any part can be killed and started again as Kubernetes restarts a pod: a service with
:meth:`Cluster.start_service` (same ports, same environment), a shard with
:meth:`Cluster.start_shard` (same port, same folder: with ``redis_persistence`` it
reloads its append-only file). ``benchmarks/chaos.py`` does that at random.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from muzero.operations.metrics_text import scrape
from muzero.operations.redis_process import RedisServer, _die_with_parent, free_port

STOP_ORDER = ("actor", "reanalyze", "learner", "replay")
ROOT = Path(__file__).resolve().parents[2]  # the checkout: where the services package lives

# This process forks service processes while its own gRPC calls (health checks) are live. With
# gRPC's fork support on, a forked child restarts gRPC's poller before exec and can abort on the
# descriptors subprocess closes (grpc/grpc#43055, grpcio >= 1.81): the "service" dies with -6
# before it starts. A child here only ever execs, so it needs none of that support. gRPC reads
# the variable when it is first imported; muzero/cli.py and tests/conftest.py set it earlier.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


@dataclass
class ServiceProcess:
    name: str  # e.g. "actor-1"
    kind: str  # replay | learner | actor | reanalyze
    grpc_port: int | None
    metrics_port: int
    env: dict[str, str]
    log: str
    pid: int | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


@dataclass
class ClusterLayout:
    run_dir: str
    config: str
    overrides: list[str]
    redis_urls: list[str]
    services: list[ServiceProcess] = field(default_factory=list)

    def save(self) -> None:
        Path(self.run_dir, "cluster.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, run_dir: str | Path) -> ClusterLayout:
        data = json.loads(Path(run_dir, "cluster.json").read_text())
        services = [ServiceProcess(**s) for s in data.pop("services")]
        return cls(services=services, **data)

    def service(self, name: str) -> ServiceProcess:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(f"no service {name!r} (have {', '.join(s.name for s in self.services)})")


class Cluster:
    def __init__(
        self,
        config: str,
        overrides: list[str],
        run_dir: str | Path,
        actors: int = 2,
        reanalyze: int = 1,
        shards: int = 2,
        redis_maxmemory: str = "1gb",
        redis_persistence: bool = False,
        redis_appendfsync: str = "always",
        extra_env: dict[str, dict[str, str]] | None = None,
        ack_log_dir: str | Path | None = None,
    ):
        """``ack_log_dir``: each actor appends the ids of its acknowledged segments to
        ``ACTOR_NAME.acks`` there (MUZERO_ACK_LOG), for audits."""
        if actors < 1 or shards < 1 or reanalyze < 0:
            raise ValueError("a cluster needs at least one actor and one shard, and reanalyze >= 0")
        self.run_dir = Path(run_dir).resolve()
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.redis = [
            RedisServer(
                maxmemory=redis_maxmemory,
                appendonly=redis_persistence,
                appendfsync=redis_appendfsync,
                directory=self._folder(f"redis-{i}"),
            )
            for i in range(shards)
        ]
        self.layout = ClusterLayout(str(self.run_dir), config, list(overrides), [r.url for r in self.redis])
        self.processes: dict[str, subprocess.Popen] = {}
        replay_port, learner_port = free_port(), free_port()
        common = {
            "MUZERO_CONFIG": config,
            "MUZERO_SET": ";".join(overrides),
            "MUZERO_HOST": "127.0.0.1",
            "MUZERO_REPLAY_ADDR": f"127.0.0.1:{replay_port}",
            "MUZERO_LEARNER_ADDR": f"127.0.0.1:{learner_port}",
            "PYTHONUNBUFFERED": "1",
            "MUZERO_TORCH_THREADS": "1",
        }
        extra_env = extra_env or {}

        def add(name: str, kind: str, grpc_port: int | None, **env: str) -> None:
            metrics = free_port()
            merged = {**common, "MUZERO_METRICS_PORT": str(metrics), **env, **extra_env.get(kind, {})}
            self.layout.services.append(
                ServiceProcess(name, kind, grpc_port, metrics, merged, str(self.run_dir / "logs" / f"{name}.log"))
            )

        add(
            "replay",
            "replay",
            replay_port,
            MUZERO_REPLAY_PORT=str(replay_port),
            MUZERO_REDIS_URLS=",".join(self.layout.redis_urls),
        )
        add(
            "learner",
            "learner",
            learner_port,
            MUZERO_LEARNER_PORT=str(learner_port),
            MUZERO_RUN_DIR=str(self.run_dir / "learner"),
        )
        acks = Path(ack_log_dir).resolve() if ack_log_dir is not None else None
        if acks is not None:
            acks.mkdir(parents=True, exist_ok=True)
        for i in range(actors):
            port = free_port()
            logged = {"MUZERO_ACK_LOG": str(acks / f"actor-{i}.acks")} if acks is not None else {}
            add(f"actor-{i}", "actor", port, MUZERO_ACTOR_ID=str(i), MUZERO_HEALTH_PORT=str(port), **logged)
        for i in range(reanalyze):
            port = free_port()
            add(f"reanalyze-{i}", "reanalyze", port, MUZERO_WORKER_ID=str(i), MUZERO_HEALTH_PORT=str(port))

    def _folder(self, name: str) -> Path:
        folder = self.run_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def checkpoint_target(self) -> str:
        return self.layout.service("learner").env["MUZERO_LEARNER_ADDR"]

    @property
    def replay_target(self) -> str:
        return self.layout.service("replay").env["MUZERO_REPLAY_ADDR"]

    def start(self, timeout_s: float = 120.0) -> None:
        for server in self.redis:
            server.start()
        for service in self.layout.services:
            self.start_service(service.name)
        self.layout.save()
        self.wait_ready(timeout_s)

    def start_service(self, name: str) -> subprocess.Popen:
        service = self.layout.service(name)
        log = open(service.log, "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{service.kind}"],
            env={**os.environ, **service.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            preexec_fn=_die_with_parent,
        )
        log.close()
        service.pid = process.pid
        self.processes[name] = process
        self.layout.save()
        return process

    def wait_ready(self, timeout_s: float = 120.0, names: list[str] | None = None) -> None:
        """Until every service (or those in ``names``) serves /metrics (and the gRPC ones answer
        health checks)."""
        from muzero.transport.grpc_util import check_health

        deadline = time.monotonic() + timeout_s
        for service in self.layout.services:
            if names is not None and service.name not in names:
                continue
            while True:
                process = self.processes.get(service.name)
                if process is not None and process.poll() is not None:
                    tail = Path(service.log).read_text()[-2000:]
                    raise RuntimeError(f"{service.name} exited with {process.returncode}:\n{tail}")
                try:
                    urllib.request.urlopen(service.metrics_url, timeout=2).read()
                    if service.grpc_port is None or check_health(f"127.0.0.1:{service.grpc_port}", "") == "SERVING":
                        break
                except Exception:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service.name} not ready after {timeout_s} s (log: {service.log})")
                time.sleep(0.2)

    def kill(self, name: str) -> None:
        """kill -9, no goodbye."""
        process = self.processes[name]
        process.kill()
        process.wait()

    def kill_shard(self, index: int) -> None:
        """kill -9 of Redis shard ``index``: no shutdown, no final write."""
        self.redis[index].kill()

    def start_shard(self, index: int, timeout_s: float = 60.0) -> None:
        """Start shard ``index`` again on its port and folder; returns once it answers (its
        append-only file, if any, loaded)."""
        self.redis[index].start(timeout_s=timeout_s)

    def stop(self, timeout_s: float = 60.0, keep_redis: bool = False) -> dict[str, int | None]:
        """SIGTERM in dependency order (actors first, replay last), then the shards (unless
        ``keep_redis``, e.g. to inspect the store); exit codes."""
        codes: dict[str, int | None] = {}
        for kind in STOP_ORDER:
            group = [s.name for s in self.layout.services if s.kind == kind and s.name in self.processes]
            for name in group:
                if self.processes[name].poll() is None:
                    self.processes[name].send_signal(signal.SIGTERM)
            for name in group:
                try:
                    codes[name] = self.processes[name].wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    self.processes[name].kill()
                    codes[name] = self.processes[name].wait()
        if not keep_redis:
            for server in self.redis:
                server.stop()
        return codes


RATE_METRICS = {
    "actor": "muzero_actor_env_steps_total",
    "learner": "muzero_learner_samples_total",
    "reanalyze": "muzero_reanalyze_transitions_total",
    "replay": "muzero_replay_appended_transitions_total",
}
VERSION_METRICS = {
    "actor": "muzero_actor_model_version",
    "learner": "muzero_learner_model_version",
    "reanalyze": "muzero_reanalyze_model_version",
}


def status(run_dir: str | Path, interval_s: float = 1.0) -> list[dict]:
    """Per service: alive, health, model version and its main rate over ``interval_s``."""
    from muzero.transport.grpc_util import check_health

    layout = ClusterLayout.load(run_dir)
    first = {}
    for service in layout.services:
        try:
            first[service.name] = scrape(service.metrics_url)
        except Exception:
            first[service.name] = None
    time.sleep(interval_s)
    rows = []
    for service in layout.services:
        alive = service.pid is not None and _alive(service.pid)
        health = "-"
        if service.grpc_port is not None:
            try:
                health = check_health(f"127.0.0.1:{service.grpc_port}", "", timeout_s=2)
            except Exception:
                health = "UNREACHABLE"
        try:
            second = scrape(service.metrics_url)
        except Exception:
            second = None
        rate_name = RATE_METRICS.get(service.kind)
        rate = None
        if first[service.name] is not None and second is not None and rate_name:
            rate = (second.get(rate_name, 0.0) - first[service.name].get(rate_name, 0.0)) / interval_s
        version_name = VERSION_METRICS.get(service.kind)
        version = int(second[version_name]) if second and version_name and version_name in second else None
        rows.append(
            {
                "name": service.name,
                "pid": service.pid,
                "alive": alive,
                "health": health,
                "model_version": version,
                "rate_name": rate_name,
                "rate_per_s": rate,
                "metrics": service.metrics_url,
            }
        )
    return rows


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
