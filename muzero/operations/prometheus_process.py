"""A Prometheus server we start ourselves (the Debian package's /usr/bin/prometheus) on a free
loopback port, scraping the targets it is given: for tests and benchmarks that look at the
services the way Grafana and the chart's alerts do (never the distribution's service)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from muzero.operations.redis_process import _die_with_parent, free_port, installed_binary


def prometheus_binary() -> str:
    return installed_binary("prometheus", "scripts/install_tools.sh")


class PrometheusServer:
    """One prometheus: ``targets`` maps a job name to its ``host:port`` targets, each scraped on
    /metrics every ``scrape_interval_s``; its config, log and TSDB live in its own folder."""

    def __init__(
        self,
        targets: dict[str, list[str]],
        scrape_interval_s: float = 1.0,
        port: int | None = None,
        directory: Path | None = None,
    ):
        if not targets or not all(targets.values()):
            raise ValueError(f"prometheus needs at least one target per job, got {targets}")
        if scrape_interval_s <= 0:
            raise ValueError(f"scrape_interval_s must be positive, got {scrape_interval_s}")
        self.port = port or free_port()
        self.directory = directory or Path(tempfile.mkdtemp(prefix="muzero-prometheus-"))
        self.targets = targets
        self.scrape_interval_s = scrape_interval_s
        self.config_path = self.directory / "prometheus.yml"
        self.log_path = self.directory / "prometheus.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        interval = f"{round(self.scrape_interval_s * 1000)}ms"
        # A scrape may take the whole interval, no longer (Prometheus rejects a timeout above it).
        config = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(hosts)}]} for job, hosts in self.targets.items()
            ],
        }
        self.config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML

    def start(self, timeout_s: float = 60.0) -> PrometheusServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_config()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    prometheus_binary(),
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.directory / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout_s
        while True:  # ready once it has loaded its config and opened the TSDB
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prometheus on port {self.port} exited with {self.process.returncode}: "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            try:
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=2).read()
                return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"prometheus on port {self.port} not ready after {timeout_s} s: {self.log_path.read_text()[-2000:]}"
                )
            time.sleep(0.2)

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """An instant query (at Unix time ``at``, default now): the result's series; a scalar comes
        back as one series without labels, a range selector as series with ``values``."""
        params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        try:
            with urllib.request.urlopen(
                f"{self.url}/api/v1/query?" + urllib.parse.urlencode(params), timeout=10
            ) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:  # a bad query: Prometheus says why in the body
            raise ValueError(f"prometheus refused {expr!r}: {error.read().decode(errors='replace')}") from None
        if body.get("status") != "success":
            raise ValueError(f"prometheus refused {expr!r}: {body}")
        if body["data"]["resultType"] == "scalar":
            return [{"metric": {}, "value": body["data"]["result"]}]
        return body["data"]["result"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
