"""redis-server processes we start ourselves: replay shards for tests, benchmarks and
``muzero cluster up`` (never the distribution's service)."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis


def _die_with_parent() -> None:
    """In the child: get SIGTERM when whoever started it dies, so no server outlives its owner (Linux)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A loopback port free now, for a server started later.

    Not from the kernel's ephemeral range: a port bind(0) hands out there can be taken as
    the source port of any outgoing connection before the server binds it (seen as
    "Address already in use" with many processes connecting). Ports below that range are
    only ever taken by an explicit bind; each is handed out once per process."""
    low, high = _ephemeral_range()
    below, above = range(10_000, low), range(high + 1, 65_536)
    candidates = below if len(below) >= 1_000 else above if len(above) >= 1_000 else range(1_024, 65_536)
    with _ports_lock:
        for _ in range(1_000):
            port = random.choice(candidates)
            if port in _handed_out:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port found in {candidates.start}-{candidates.stop - 1}")


def installed_binary(name: str, installer: str) -> str:
    """The path of the ``name`` server binary; RuntimeError saying how to install it if missing."""
    binary = shutil.which(name) or f"/usr/bin/{name}"
    if not Path(binary).exists():
        raise RuntimeError(f"{name} is not installed: {installer} installs it, or run `apt-get install -y {name}`")
    return binary


def redis_server_binary() -> str:
    return installed_binary("redis-server", "`make test`")


APPENDFSYNC = ("always", "everysec", "no")


class RedisServer:
    """One redis-server: no snapshots unless ``appendonly``, noeviction, its own folder.

    ``appendfsync``: when the append-only file reaches the disk. ``always`` (the default) fsyncs
    before a write is answered, so a write the store acknowledged survives a kill -9 of the
    server; ``everysec`` (the chart's default) can lose about the last second on a crash of the
    machine, and on a kill -9 whatever Redis held back while a slow fsync was in flight.
    :meth:`start` after :meth:`kill` restarts the server on the same port and folder, reloading
    its append-only file, as a restarted pod with its volume does."""

    def __init__(
        self,
        maxmemory: str = "512mb",
        appendonly: bool = False,
        port: int | None = None,
        directory: Path | None = None,
        appendfsync: str = "always",
    ):
        if appendfsync not in APPENDFSYNC:
            raise ValueError(f"appendfsync: expected one of {', '.join(APPENDFSYNC)}, got {appendfsync!r}")
        self.port = port or free_port()
        self.directory = directory or Path(tempfile.mkdtemp(prefix="muzero-redis-"))
        self.maxmemory = maxmemory
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 20.0) -> RedisServer:
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(self.directory),
            "--maxmemory",
            self.maxmemory,
            "--maxmemory-policy",
            "noeviction",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        client = self.client()
        deadline = time.monotonic() + timeout_s
        while True:  # wait until it answers (loading an AOF can take a moment)
            try:
                if client.ping():
                    return self
            except (redis.ConnectionError, redis.BusyLoadingError):
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} exited with {self.process.returncode}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server on port {self.port} did not answer in {timeout_s} s")
                time.sleep(0.02)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=30)

    def kill(self) -> None:
        """kill -9: no shutdown, no final write."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
