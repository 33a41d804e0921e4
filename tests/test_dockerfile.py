"""The Dockerfile: hadolint-clean, multi-stage, non-root, a CUDA build argument; and what the
image runs, run here as plain processes (no Docker engine on this machine): its entrypoint with
the arguments and environment the Helm chart gives each pod answers the gRPC health checks, and
the chart's `helm test` script passes against them."""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml

from muzero.operations.redis_process import _die_with_parent, free_port
from muzero.transport.grpc_util import check_health
from tests.helm_support import (
    CHART,
    ROOT,
    SERVICES,
    Rendered,
    env_values,
    exported_metric_names,
    metric_names_in,
    name_of,
    render,
    tool,
)
from tests.waiting import wait_for

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip() if pending else stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, rest = pending.partition(" ")
            result.append((keyword.upper(), rest.strip()))
            pending = ""
    return result


def stages() -> dict[str, list[tuple[str, str]]]:
    """Each build stage's instructions, by the stage's name."""
    named: dict[str, list[tuple[str, str]]] = {}
    current = None
    for keyword, rest in instructions():
        if keyword == "FROM":
            current = rest.split()[-1] if " AS " in rest.upper() else f"stage{len(named)}"
            named[current] = []
        elif current is not None:
            named[current].append((keyword, rest))
    return named


def arg_defaults() -> dict[str, str]:
    defaults = {}
    for keyword, rest in instructions():
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            defaults[name] = value
    return defaults


def image_env() -> dict[str, str]:
    """The ENV of the runtime stage (the last)."""
    env = {}
    for keyword, rest in list(stages().values())[-1]:
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, value = item.split("=", 1)
                env[name] = value
    return env


def entrypoint() -> list[str]:
    found = [json.loads(rest) for keyword, rest in instructions() if keyword == "ENTRYPOINT"]
    assert found, "the Dockerfile has no ENTRYPOINT"
    return found[-1]


# --- the Dockerfile itself --------------------------------------------------------------------------------


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "-f", "json", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and json.loads(result.stdout or "[]") == [], result.stdout + result.stderr


def test_one_multi_stage_image_whose_command_picks_the_service():
    named = stages()
    assert list(named) == ["python", "builder", "runtime"]
    from_lines = [rest for keyword, rest in instructions() if keyword == "FROM"]
    assert from_lines[0].startswith("${BASE_IMAGE}"), "the base is a build argument"
    assert arg_defaults()["BASE_IMAGE"].startswith("python:3.11"), "CPU by default, the Python the project targets"
    runtime = named["runtime"]
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime
    assert not [rest for keyword, rest in runtime if keyword == "RUN" and "pip install" in rest], (
        "the runtime stage installs nothing itself"
    )
    # The entrypoint is the project's console script; the pods' arguments name the service.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint() == ["muzero"] and scripts["muzero"] == "muzero.cli:main"
    assert image_env()["PATH"].startswith("/opt/venv/bin:")


def test_torch_comes_from_a_build_argument_index_and_matches_the_projects_pin():
    builder = " ".join(rest for keyword, rest in stages()["builder"] if keyword == "RUN")
    assert '--index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"' in builder
    assert builder.index("torch==") < builder.index("install --no-cache-dir ."), "torch before anything needing it"
    defaults = arg_defaults()
    assert defaults["TORCH_INDEX"].endswith("/whl/cpu"), "the CPU wheel by default: a small image"
    assert f"torch=={defaults['TORCH_VERSION']}" in (ROOT / "scripts" / "bootstrap.sh").read_text(), (
        "the image and the development environment run the same torch"
    )


def test_runs_as_the_non_root_user_the_chart_expects():
    user = [rest for keyword, rest in stages()["runtime"] if keyword == "USER"][-1]
    uid, gid = (arg_defaults()["UID"] if part == "${UID}" else part for part in user.split(":"))
    assert int(uid) > 0 and int(gid) > 0, "numeric and non-root, so runAsNonRoot can verify it"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)
    # The pods' root filesystem is read-only with an emptyDir on /tmp: the image's caches go there.
    env = image_env()
    for name in ("NUMBA_CACHE_DIR", "MPLCONFIGDIR", "XDG_CACHE_HOME"):
        assert env[name].startswith("/tmp/"), name
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_exposes_the_ports_the_chart_uses():
    exposed = {int(p) for keyword, rest in instructions() if keyword == "EXPOSE" for p in rest.split()}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert exposed == {
        values["replay"]["grpcPort"],
        values["learner"]["grpcPort"],
        values["actor"]["healthPort"],
        values["reanalyze"]["healthPort"],
        values["metricsPort"],
    }


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path or a parent of it decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatch(c, pattern) for c in candidates):
            ignored = not negated
    return ignored


def test_dockerignore_sends_what_the_build_copies_and_leaves_out_the_rest():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [rest.split()[:-1] for keyword, rest in instructions() if keyword == "COPY" and "--from" not in rest]
    sources = [source for group in copied for source in group]
    assert sources, "the builder copies the project in"
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _ignored(source.rstrip("/"), patterns), f"{source} is excluded by .dockerignore"
    for path in (".venv/bin/python", ".git/HEAD", "tests/test_helm.py", "runs/x", "muzero/__pycache__/cli.pyc"):
        assert _ignored(path, patterns), f"{path} would be sent to the build"


# --- what the image runs, as processes ------------------------------------------------------------


def replace_hosts(value: str, hosts: dict[str, str]) -> str:
    """Cluster names (and name:port pairs) to where they are here, longest first."""
    for name in sorted(hosts, key=len, reverse=True):
        value = value.replace(name, hosts[name])
    return value


class PodProcess:
    """One pod's container run here: volumes as folders, Service names as 127.0.0.1."""

    def __init__(self, rendered: Rendered, component: str, folder: Path, hosts: dict[str, str]):
        self.rendered = rendered
        self.component = component
        kind = "StatefulSet" if component == "redis" else "Deployment"
        self.pod = rendered.component(kind, component)["spec"]["template"]["spec"]
        (self.container,) = self.pod["containers"]
        self.folder = folder / component
        self.hosts = hosts
        self.mounts = self._make_volumes()
        self.process: subprocess.Popen | None = None
        self.log = self.folder / "log"

    def _make_volumes(self) -> dict[str, Path]:
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        mounts = {}
        for mount in self.container.get("volumeMounts", []):
            local = self.folder / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            volume = volumes.get(mount["name"], {})
            if "configMap" in volume:
                for key, text in self.rendered.get("ConfigMap", volume["configMap"]["name"])["data"].items():
                    (local / key).write_text(text)
            mounts[mount["mountPath"]] = local
        return mounts

    def localize(self, value: str) -> str:
        for path, local in sorted(self.mounts.items(), key=lambda item: -len(item[0])):
            if value == path or value.startswith(path + "/"):
                return str(local) + value[len(path) :]  # the deepest mount holding the path
        return replace_hosts(value, self.hosts)

    def env(self, **overrides: str) -> dict[str, str]:
        chart_env = env_values(self.container, self.rendered, pod_name=f"{name_of(self.component)}-7c9f-abcde")
        base = {k: v for k, v in os.environ.items() if not k.startswith("MUZERO_")}
        image = {
            k: v.replace("/opt/venv/bin", str(Path(sys.executable).parent)).replace("$PATH", os.environ["PATH"])
            for k, v in image_env().items()
        }
        # The image installs muzero and services into its venv; here they are this checkout's sources.
        image["PYTHONPATH"] = str(ROOT)
        return {**base, **image, **{k: self.localize(v) for k, v in chart_env.items()}, **overrides}

    def start(self, argv: list[str], **env_overrides: str) -> PodProcess:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            # argv[0] is the image's program, found here in this venv: not a path in the pod's volumes.
            self.process = subprocess.Popen(
                [argv[0], *map(self.localize, argv[1:])],
                env=self.env(**env_overrides),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                preexec_fn=_die_with_parent,
            )
        return self

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"{self.component} exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process and self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def _healthy(port: int, service: str) -> bool:
    try:
        return check_health(f"127.0.0.1:{port}", service, timeout_s=2) == "SERVING"
    except Exception:
        return False


@pytest.fixture
def chart_for_processes(tmp_path):
    """The chart rendered with free ports (every pod here shares one machine), the experiment
    config given as values (so the rendered TOML file is what the services load) and small
    settings so four services fit on two cores."""
    ports = {
        "replay": free_port(),
        "learner": free_port(),
        "actor": free_port(),
        "reanalyze": free_port(),
        "redis": free_port(),
    }
    cartpole = tomllib.loads((ROOT / "muzero" / "presets" / "cartpole.toml").read_text())
    values = {
        "experiment": {
            "preset": "",
            "config": cartpole,
            "overrides": ["env.num_envs=4", "search.num_simulations=4", "replay.min_size=64"],
        },
        "redis": {"shards": 2, "port": ports["redis"], "auth": {"password": 'pa ss"wo\\rd'}},
        "replay": {"grpcPort": ports["replay"]},
        "learner": {"grpcPort": ports["learner"], "gpu": {"enabled": False}, "torchThreads": 1},
        "actor": {"healthPort": ports["actor"], "replicas": 1},
        "reanalyze": {"healthPort": ports["reanalyze"]},
    }
    return Rendered(render(values=values, tmp_path=tmp_path)), ports


def test_the_entrypoint_serves_every_service_with_the_charts_arguments_and_environment(chart_for_processes, tmp_path):
    rendered, ports = chart_for_processes
    namespace = rendered.docs[0]["metadata"]["namespace"]
    statefulset = rendered.component("StatefulSet", "redis")
    shard_ports = [ports["redis"]] + [free_port() for _ in range(statefulset["spec"]["replicas"] - 1)]
    # Cluster names as this machine resolves them: every Service on loopback, shard i on its own port.
    hosts = {name_of(c): "127.0.0.1" for c in SERVICES}
    for i, port in enumerate(shard_ports):
        shard = (
            f"{statefulset['metadata']['name']}-{i}.{statefulset['spec']['serviceName']}.{namespace}.svc.cluster.local"
        )
        hosts[f"{shard}:{ports['redis']}"] = f"127.0.0.1:{port}"
    rules = Rendered(render("--set", "metrics.prometheusRule.enabled=true")).all("PrometheusRule")[0]
    rule_metrics = {m for g in rules["spec"]["groups"] for r in g["rules"] for m in metric_names_in(r["expr"])}
    started: list[PodProcess] = []
    try:
        # Redis shards with the chart's own start script (the password through stdin) and readiness probe.
        for i, port in enumerate(shard_ports):
            shard = PodProcess(rendered, "redis", tmp_path / f"shard-{i}", hosts)
            container = shard.container
            script = container["args"][0]
            for chart_text, here in (
                (f"--port {ports['redis']}", f"--port {port}"),
                ("--dir /data", f"--dir {shard.mounts['/data']}"),
            ):
                assert chart_text in script, f"the redis script has no {chart_text!r}"
                script = script.replace(chart_text, here)
            started.append(shard.start([*container["command"], script]))
            probe = [
                part.replace(f"-p {ports['redis']}", f"-p {port}")
                for part in container["readinessProbe"]["exec"]["command"]
            ]
            wait_for(
                lambda: subprocess.run(probe, env=shard.env(), capture_output=True).returncode == 0,
                30,
                f"redis shard {i} to pass its readiness probe",
                alive=shard.check_alive,
                interval_s=0.2,
            )

        scrape_ms = {}
        for component in SERVICES:
            pod = PodProcess(rendered, component, tmp_path, hosts)
            metrics_port = free_port()  # one metrics port per pod in the chart; here they share a host
            # The image's entrypoint, found on its PATH (/opt/venv/bin there, this venv's bin here).
            argv = [str(Path(sys.executable).parent / entrypoint()[0]), *pod.container["args"]]
            started.append(pod.start(argv, MUZERO_METRICS_PORT=str(metrics_port)))
            probe = pod.container["readinessProbe"]["grpc"]
            wait_for(
                lambda: _healthy(probe["port"], probe["service"]),
                240,
                f"{component} to pass its readiness probe",
                alive=pod.check_alive,
                interval_s=0.2,
            )
            started_at = time.perf_counter()
            body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
            scrape_ms[component] = (time.perf_counter() - started_at) * 1000
            exported = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line.startswith("muzero_")}
            assert any(name.startswith(f"muzero_{component}_") for name in exported), component
            # The alert rules' metrics of this component are on its page.
            wanted = {m for m in rule_metrics if m.startswith(f"muzero_{component}_")}
            assert wanted <= exported, f"{component} does not export {wanted - exported}"
            assert wanted <= exported_metric_names()
        print("scrape times (ms): " + ", ".join(f"{c} {t:.1f}" for c, t in scrape_ms.items()))

        # The chart's `helm test` script, with the test pod's environment, passes against them.
        test_pod = rendered.get("Pod", name_of("test"))
        (container,) = test_pod["spec"]["containers"]
        script = tmp_path / "helm_test.py"
        script.write_text(rendered.config_map_value(name_of("test"), "helm_test.py"))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MUZERO_")},
            "PYTHONPATH": str(ROOT),
            **{k: replace_hosts(v, hosts) for k, v in env_values(container, rendered).items()},
            "MUZERO_TEST_TIMEOUT_S": "60",
        }
        result = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(": SERVING") == len(SERVICES), result.stdout
        assert "verified" in result.stdout
    finally:
        codes = {pod.component: pod.stop() for pod in reversed(started)}
    for component in SERVICES:
        assert codes[component] == 0, f"{component} did not stop cleanly on SIGTERM: {codes[component]}"
