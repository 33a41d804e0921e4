"""Deployment figures: chart render time, Prometheus scrape time per service, runtime layer size.

    python benchmarks/deploy.py [--seconds 90] [--idle-seconds 20] [--image]

- ``helm template`` of helm/muzero (helm from scripts/install_tools.sh, ``.tools/bin/helm``)
  for the default values and each other value set tests/test_helm.py renders: median of
  ``--renders`` (5) per set, in seconds (the issue's target: under 2 s);
- a ``muzero.operations.cluster.Cluster`` (cartpole with tests/test_dashboards.py's settings, 2 Redis
  shards, replay, learner, 1 actor, 1 reanalyze) scraped every second by a real Prometheus
  (muzero.operations.prometheus_process) for ``--seconds`` after the learner's first step: per service
  the median, p99 and max of ``scrape_duration_seconds``, in ms (target: under 50 ms), and
  the CPU seconds per wall second of each process and of the machine in that window;
- what replay's scrape costs without the load: the learner, actor and reanalyze are stopped
  and Prometheus scrapes replay (and its shards, idle) for ``--idle-seconds`` more; the
  benchmark also times replay's /metrics itself, busy and idle;
- with ``--image`` (slow, installs torch): the installed size of the image's runtime layer,
  the virtual environment the Dockerfile's builder stage makes (the CPU torch 2.13.0 wheel,
  then ``pip install .``, then the same deletions), built in a temporary folder: ``du -sb``
  bytes, and its tar compressed by gzip -6 as a registry would store the layer.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the value sets and cluster settings come from the tests, not a copy

from muzero.operations.cluster import Cluster, scrape  # noqa: E402
from muzero.operations.prometheus_process import PrometheusServer  # noqa: E402
from tests.test_dashboards import CLUSTER_SETTINGS  # noqa: E402
from tests.test_helm import VALUE_SETS  # noqa: E402

HELM = ROOT / ".tools" / "bin" / "helm"
TORCH_VERSION = "2.13.0"
IMAGE_SOURCES = ("pyproject.toml", "README.md", "muzero", "services")  # what the Dockerfile copies
IMAGE_DELETIONS = ("torch/test", "torch/include")  # what the builder stage removes from site-packages


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds) * 1000
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p99": round(float(np.percentile(values, 99)), 2),
        "max": round(float(values.max()), 2),
        "n": int(values.size),
    }


# --- helm template ----------------------------------------------------------------------------------


def helm_render_seconds(renders: int) -> dict[str, float]:
    if not HELM.exists():
        raise SystemExit(f"no helm at {HELM}: run `bash scripts/install_tools.sh`")
    medians = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, spec in VALUE_SETS.items():
            args = list(spec) if isinstance(spec, list) else []
            if isinstance(spec, dict):
                path = Path(folder) / f"{name}.yaml"
                path.write_text(yaml.safe_dump(spec))
                args = ["--values", str(path)]
            command = [str(HELM), "template", "t", str(ROOT / "helm" / "muzero"), "--namespace", "muzero-test", *args]
            times = []
            for _ in range(renders):
                started = time.perf_counter()
                result = subprocess.run(command, capture_output=True, text=True, timeout=120)
                times.append(time.perf_counter() - started)
                if result.returncode != 0:
                    raise SystemExit(f"helm template ({name}) failed:\n{result.stderr}")
            medians[name] = round(statistics.median(times), 3)
            log(f"helm template {name}: median {medians[name]:.3f} s (min {min(times):.3f}, max {max(times):.3f})")
    return medians


# --- scrape time ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent outside idle and iowait since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def scrape_durations(
    prometheus: PrometheusServer, instances: dict[str, str], start: float, end: float
) -> dict[str, list[float]]:
    """Every ``scrape_duration_seconds`` sample Prometheus took in (start, end], per service name."""
    window_ms = int((end - start) * 1000)
    series = prometheus.query(f"scrape_duration_seconds[{window_ms}ms]", at=end)
    found = {}
    for item in series:
        name = instances.get(item["metric"]["instance"])
        if name is not None:
            found[name] = [float(value) for _, value in item["values"]]
    missing = sorted(set(instances.values()) - set(found))
    if missing:
        raise RuntimeError(f"prometheus has no scrape_duration_seconds for {missing}")
    return found


def time_direct_scrapes(url: str, count: int, interval_s: float = 0.25) -> tuple[list[float], int]:
    """The benchmark's own GETs of a /metrics page: seconds each, and the page's size in bytes."""
    times, size = [], 0
    for _ in range(count):
        started = time.perf_counter()
        size = len(urllib.request.urlopen(url, timeout=10).read())
        times.append(time.perf_counter() - started)
        time.sleep(interval_s)
    return times, size


def scrape_figures(seconds: float, idle_seconds: float, direct: int, run_dir: Path) -> dict:
    cluster = Cluster("cartpole", CLUSTER_SETTINGS, run_dir / "cluster", actors=1, reanalyze=1, shards=2)
    prometheus = None
    try:
        log("starting the cluster (2 shards, replay, learner, 1 actor, 1 reanalyze)")
        cluster.start(timeout_s=240)
        instances = {f"127.0.0.1:{s.metrics_port}": s.name for s in cluster.layout.services}
        targets: dict[str, list[str]] = {}
        for service in cluster.layout.services:
            targets.setdefault(service.kind, []).append(f"127.0.0.1:{service.metrics_port}")
        prometheus = PrometheusServer(targets, scrape_interval_s=1.0, directory=run_dir / "prometheus").start()
        learner = cluster.layout.service("learner")
        deadline = time.monotonic() + 300
        while scrape(learner.metrics_url).get("muzero_learner_steps_total", 0) < 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the learner took no step in 300 s (log: {learner.log})")
            time.sleep(0.5)

        pids = {name: process.pid for name, process in cluster.processes.items()}
        pids.update({f"redis-{i}": server.process.pid for i, server in enumerate(cluster.redis)})
        pids["prometheus"] = prometheus.process.pid
        cpu0, machine0 = {name: cpu_seconds(pid) for name, pid in pids.items()}, machine_busy_seconds()
        log(f"learner stepping; Prometheus scraping every 1 s for {seconds:.0f} s")
        start = time.time()
        time.sleep(seconds)
        end = time.time()
        cpu = {name: round((cpu_seconds(pid) - cpu0[name]) / (end - start), 3) for name, pid in pids.items()}
        cpu["machine"] = round((machine_busy_seconds() - machine0) / (end - start), 3)
        busy = {
            name: summary_ms(values) for name, values in scrape_durations(prometheus, instances, start, end).items()
        }
        for name, figures in busy.items():
            log(
                f"  {name}: p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f}, max {figures['max']:.1f} "
                f"over {figures['n']} scrapes; {cpu.get(name, 0):.2f} CPU s/s"
            )
        log(f"  machine: {cpu['machine']:.2f} CPU s/s of 2 cores")

        replay = cluster.layout.service("replay")
        log(f"replay /metrics timed by this process, {direct} GETs, cluster busy")
        direct_busy, page_bytes = time_direct_scrapes(replay.metrics_url, direct)

        log("stopping learner, actor and reanalyze: replay and its shards idle")
        for name in [s.name for s in cluster.layout.services if s.kind != "replay"]:
            cluster.processes[name].send_signal(signal.SIGTERM)
        for name in [s.name for s in cluster.layout.services if s.kind != "replay"]:
            cluster.processes[name].wait(timeout=60)
        idle_start = time.time()
        time.sleep(idle_seconds)
        idle_end = time.time()
        replay_instance = {k: v for k, v in instances.items() if v == "replay"}
        idle = summary_ms(scrape_durations(prometheus, replay_instance, idle_start, idle_end)["replay"])
        direct_idle, _ = time_direct_scrapes(replay.metrics_url, direct)
        log(f"  replay idle (Prometheus): p50 {idle['p50']:.1f} ms, max {idle['max']:.1f}")
    finally:
        if prometheus is not None:
            prometheus.stop()
        cluster.stop()
    return {
        "scrape_ms": busy,
        "cpu_s_per_wall_s": cpu,
        "replay_scrape_ms_idle": idle,
        "replay_metrics_bytes": page_bytes,
        "replay_get_ms": {"busy": summary_ms(direct_busy), "idle": summary_ms(direct_idle)},
    }


# --- runtime layer ----------------------------------------------------------------------------------


def runtime_layer_bytes(folder: Path, torch_index: str | None) -> tuple[int, int]:
    """(du -sb bytes, gzip -6 tar bytes) of the venv the Dockerfile's builder stage makes."""
    source, venv = folder / "src", folder / "opt" / "venv"
    source.mkdir()
    for name in IMAGE_SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--disable-pip-version-check", "-q"]
    log(f"pip install torch=={TORCH_VERSION}+cpu")
    # The +cpu build pinned exactly: from pip's configured sources (here a local wheel), or from
    # the Dockerfile's index with --torch-index.
    index = ["--index-url", torch_index] if torch_index else []
    subprocess.run([*pip, *index, f"torch=={TORCH_VERSION}+cpu"], check=True)
    log("pip install . (muzero, services and their dependencies)")
    subprocess.run([*pip, str(source)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    for relative in IMAGE_DELETIONS:
        shutil.rmtree(site / relative)
    cuda = sorted(p.name for p in site.glob("nvidia*"))
    if cuda:
        raise RuntimeError(f"CUDA packages got into the CPU layer: {cuda}")
    check = (
        "import muzero.cli, services.replay.main, services.learner.main, services.actor.main, services.reanalyze.main"
    )
    subprocess.run([str(venv / "bin" / "python"), "-c", check], check=True, cwd=folder)
    size = int(subprocess.run(["du", "-sb", str(venv)], check=True, capture_output=True, text=True).stdout.split()[0])
    log(f"runtime layer: {size / 1e6:.1f} MB installed; compressing")
    tar = subprocess.Popen(["tar", "-C", str(folder), "-cf", "-", "opt/venv"], stdout=subprocess.PIPE)
    gzip = subprocess.run(["gzip", "-6", "-c"], stdin=tar.stdout, stdout=subprocess.PIPE, check=True)
    tar.stdout.close()
    if tar.wait() != 0:
        raise RuntimeError("tar of the runtime layer failed")
    log(f"runtime layer: {len(gzip.stdout) / 1e6:.1f} MB as gzip'd tar")
    return size, len(gzip.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=90.0, help="measured scraping after the learner's first step")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="replay scraped with the others stopped")
    parser.add_argument("--renders", type=int, default=5, help="helm template runs per value set")
    parser.add_argument("--direct-scrapes", type=int, default=60, help="GETs of replay /metrics, busy and idle")
    parser.add_argument("--image", action="store_true", help="also build the runtime layer's venv (slow)")
    parser.add_argument(
        "--torch-index",
        help="index for the CPU torch wheel (the Dockerfile's: "
        "https://download.pytorch.org/whl/cpu); default: pip's configuration",
    )
    args = parser.parse_args()
    if args.seconds < 10 or args.idle_seconds < 5 or args.renders < 1 or args.direct_scrapes < 1:
        parser.error("need --seconds >= 10, --idle-seconds >= 5, --renders >= 1, --direct-scrapes >= 1")

    result: dict = {"helm_template_s": helm_render_seconds(args.renders)}
    with tempfile.TemporaryDirectory(prefix="muzero-deploy-") as folder:
        result.update(scrape_figures(args.seconds, args.idle_seconds, args.direct_scrapes, Path(folder)))
    layer = gzipped = None
    if args.image:
        with tempfile.TemporaryDirectory(prefix="muzero-layer-") as folder:
            layer, gzipped = runtime_layer_bytes(Path(folder), args.torch_index)
    result.update(
        {
            "runtime_layer_bytes": layer,
            "runtime_layer_gzip_bytes": gzipped,
            "targets_met": {
                "helm_template_under_2s": max(result["helm_template_s"].values()) < 2.0,
                "scrape_p50_under_50ms": {n: f["p50"] < 50 for n, f in result["scrape_ms"].items()},
            },
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
