"""``muzero status`` against a fake Kubernetes API whose pod proxy reaches real /metrics servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from muzero.operations.k8s.status import collect, format_table
from tests.fake_kubernetes import FakeKubernetes, FakePod

ROOT = Path(__file__).resolve().parent.parent


def metrics_server(component: str, version: int | None):
    """A real /metrics endpoint exporting what a service of ``component`` would (its model version)."""
    registry = CollectorRegistry()
    if version is not None:
        Gauge(f"muzero_{component}_model_version", "version", registry=registry).set(version)
    Gauge(f"muzero_{component}_up_for_test", "something else it exports", registry=registry).set(1)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    return server, f"http://127.0.0.1:{server.server_port}/metrics"


@pytest.fixture
def api():
    servers = []

    def url(component: str, version: int | None) -> str:
        server, address = metrics_server(component, version)
        servers.append(server)
        return address

    pods = [
        FakePod("muzero-actor-7d9-b", "actor", restarts=2, metrics_url=url("actor", 118)),
        FakePod("muzero-actor-7d9-a", "actor", metrics_url=None),  # its process does not answer: "?"
        FakePod("muzero-learner-0", "learner", metrics_url=url("learner", 120)),
        FakePod("muzero-replay-5c4-x", "replay", metrics_url=url("replay", None)),
        FakePod("muzero-redis-0", "redis", metrics_port=None),
        FakePod("muzero-redis-1", "redis", metrics_port=None, restarts=1),
        FakePod(
            "muzero-reanalyze-6f-q",
            "reanalyze",
            ready=False,
            restarts=5,
            phase="Running",
            waiting_reason="CrashLoopBackOff",
            metrics_url=url("reanalyze", 90),
        ),
        FakePod("muzero-actor-pending", "actor", ready=False, phase="Pending", metrics_url=None),
        # Not this release, not this namespace: never listed.
        FakePod("other-learner-0", "learner", release="other", metrics_url=url("learner", 5)),
        FakePod("muzero-learner-0", "learner", namespace="elsewhere", metrics_url=url("learner", 7)),
    ]
    with FakeKubernetes(pods=pods) as fake:
        yield fake
    for server in servers:
        server.shutdown()


def test_status_lists_pods_per_component_with_ready_restarts_and_version(api):
    from kubernetes import client

    rows = collect(client.CoreV1Api(api.api_client()), "ml", "muzero")
    by_name = {row.name: row for row in rows}
    assert [row.component for row in rows] == [
        "redis",
        "redis",
        "replay",
        "learner",
        "actor",
        "actor",
        "actor",
        "reanalyze",
    ]
    assert "other-learner-0" not in by_name
    assert by_name["muzero-learner-0"].model_version == 120  # this namespace's, not "elsewhere"'s 7
    assert by_name["muzero-actor-7d9-b"].version_text == "118"
    assert by_name["muzero-actor-7d9-b"].restarts == 2
    assert by_name["muzero-reanalyze-6f-q"].version_text == "90"
    assert by_name["muzero-reanalyze-6f-q"].status == "CrashLoopBackOff"
    assert not by_name["muzero-reanalyze-6f-q"].ready and by_name["muzero-reanalyze-6f-q"].restarts == 5
    # Unreachable: the proxy's 503 becomes "?", with the reason kept for the report.
    assert by_name["muzero-actor-7d9-a"].version_text == "?"
    assert "503" in by_name["muzero-actor-7d9-a"].version_note
    assert by_name["muzero-actor-pending"].version_text == "?"
    assert by_name["muzero-actor-pending"].status == "Pending"
    # Components without a model version show "-", and nothing is asked of Redis pods.
    assert by_name["muzero-replay-5c4-x"].version_text == "-"
    assert by_name["muzero-redis-0"].version_text == "-"
    # The proxy is asked for the metrics port by number (the pod proxy takes no port names).
    assert "muzero-learner-0:9100" in api.proxied
    assert not any(name.startswith("muzero-redis") for name in api.proxied)
    # A pending pod has no IP to dial: no proxy request for it.
    assert not any(name.startswith("muzero-actor-pending") for name in api.proxied)

    table = format_table(rows)
    learner_line = next(line for line in table.splitlines() if "muzero-learner-0" in line)
    assert learner_line.split() == ["learner", "muzero-learner-0", "1/1", "Running", "0", "120"]
    unreachable_line = next(line for line in table.splitlines() if "muzero-actor-7d9-a" in line)
    assert unreachable_line.split()[-1] == "?"
    assert "pods ready: redis 2/2, replay 1/1, learner 1/1, actor 2/3, reanalyze 0/1" in table


def run_status(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "muzero.cli", "status", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_status_command_prints_the_table_and_json_and_fails_while_a_pod_is_not_ready(api, tmp_path):
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", namespace="ml")
    result = run_status("--kubeconfig", str(kubeconfig))  # the namespace comes from the context
    assert result.returncode == 1, result.stderr  # a crash-looping reanalyze pod is not "all ready"
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["COMPONENT", "POD", "READY", "STATUS", "RESTARTS", "VERSION"]
    assert any(line.split() == ["actor", "muzero-actor-7d9-b", "1/1", "Running", "2", "118"] for line in lines)
    assert any(line.split() == ["actor", "muzero-actor-7d9-a", "1/1", "Running", "0", "?"] for line in lines)
    assert "version of muzero-actor-7d9-a unknown: 503" in result.stdout

    result = run_status("--kubeconfig", str(kubeconfig), "--namespace", "ml", "--json")
    report = json.loads(result.stdout)
    assert report["namespace"] == "ml" and report["release"] == "muzero"
    versions = {pod["name"]: pod["model_version"] for pod in report["pods"]}
    assert versions["muzero-learner-0"] == 120 and versions["muzero-actor-7d9-a"] is None

    # Another release in the same namespace, every pod ready: exit 0.
    result = run_status("--kubeconfig", str(kubeconfig), "--release", "other")
    assert result.returncode == 0, result.stderr
    assert "other-learner-0" in result.stdout and "5" in result.stdout.splitlines()[1].split()


def test_status_names_the_problem_when_nothing_is_found_or_the_api_refuses(api, tmp_path):
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    result = run_status("--kubeconfig", str(kubeconfig), "--release", "absent")
    assert result.returncode == 1
    assert "no pods of release 'absent' in namespace 'ml'" in result.stderr

    api.forbidden = True
    result = run_status("--kubeconfig", str(kubeconfig))
    assert result.returncode == 1
    assert "listing pods in namespace 'ml' failed: 403" in result.stderr
    assert "Traceback" not in result.stderr

    result = run_status("--kubeconfig", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "cannot load the Kubernetes configuration" in result.stderr
