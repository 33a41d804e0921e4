"""``muzero status``: the pods of one release per component, ready, restarts, and the model
version each one runs (read from its /metrics through the API server's pod proxy)."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from muzero.operations.k8s import (
    COMPONENT_LABEL,
    COMPONENTS,
    METRICS_PORT_NAME,
    api_client,
    default_namespace,
    describe_error,
    release_selector,
)
from muzero.operations.metrics_text import parse

VERSIONED = ("learner", "actor", "reanalyze")  # the components that export muzero_<component>_model_version


@dataclass(frozen=True)
class PodStatus:
    component: str
    name: str
    status: str  # Running, Pending, CrashLoopBackOff, Terminating, ...
    ready_containers: int
    containers: int
    restarts: int
    model_version: int | None  # None: no version (see version_note)
    version_note: str  # "" when model_version is known; "-" nothing to read; else why it is unknown

    @property
    def ready(self) -> bool:
        return self.containers > 0 and self.ready_containers == self.containers

    @property
    def version_text(self) -> str:
        if self.model_version is not None:
            return str(self.model_version)
        return "-" if self.version_note == "-" else "?"


def metrics_port(pod) -> int | None:
    """The container port named ``metrics``: the pod proxy needs its number."""
    for container in pod.spec.containers or []:
        for port in container.ports or []:
            if port.name == METRICS_PORT_NAME:
                return port.container_port
    return None


def pod_phase(pod) -> str:
    """What kubectl's STATUS column would say, near enough: a waiting or failed container's reason
    (CrashLoopBackOff, ImagePullBackOff, OOMKilled) before the pod's phase."""
    if pod.metadata.deletion_timestamp is not None:
        return "Terminating"
    for container in pod.status.container_statuses or []:
        state = container.state
        if state is not None and state.waiting is not None and state.waiting.reason:
            return state.waiting.reason
        if state is not None and state.terminated is not None and state.terminated.reason:
            return state.terminated.reason
    return pod.status.phase or "Unknown"


def parse_model_version(text: str, component: str) -> int:
    """``muzero_<component>_model_version`` from a /metrics page."""
    wanted = f"muzero_{component}_model_version"
    value = parse(text).get(wanted)
    if value is None:
        raise ValueError(f"{wanted} not exported")
    return int(value)


def read_model_version(core, namespace: str, pod, component: str, timeout_s: float) -> tuple[int | None, str]:
    """(version, note): through the API server's proxy to the pod's metrics port. Any failure
    (pod not running, port closed, proxy refused, metric absent) gives (None, why)."""
    if component not in VERSIONED:
        return None, "-"
    port = metrics_port(pod)
    if port is None:
        return None, f"no container port named {METRICS_PORT_NAME!r}"
    if pod.status.phase != "Running":
        return None, f"pod is {pod.status.phase}"
    try:
        response = core.connect_get_namespaced_pod_proxy_with_path(
            f"{pod.metadata.name}:{port}", namespace, "metrics", _preload_content=False, _request_timeout=timeout_s
        )
        return parse_model_version(response.data.decode(), component), ""
    except Exception as error:  # unreachable pods are what status is for: report, never crash
        return None, describe_error(error)


def collect(core, namespace: str, release: str, timeout_s: float = 3.0) -> list[PodStatus]:
    """Every pod of the release, in component order, versions read in parallel."""
    pods = core.list_namespaced_pod(
        namespace, label_selector=release_selector(release), _request_timeout=timeout_s * 3
    ).items
    order = {name: i for i, name in enumerate(COMPONENTS)}

    def component(pod) -> str:
        return (pod.metadata.labels or {}).get(COMPONENT_LABEL, "?")

    pods.sort(key=lambda pod: (order.get(component(pod), len(order)), pod.metadata.name))
    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(lambda pod: read_model_version(core, namespace, pod, component(pod), timeout_s), pods))
    rows = []
    for pod, (version, note) in zip(pods, versions):
        statuses = pod.status.container_statuses or []
        rows.append(
            PodStatus(
                component=component(pod),
                name=pod.metadata.name,
                status=pod_phase(pod),
                ready_containers=sum(1 for c in statuses if c.ready),
                containers=len(pod.spec.containers or []),
                restarts=sum(c.restart_count or 0 for c in statuses),
                model_version=version,
                version_note=note,
            )
        )
    return rows


def format_table(rows: list[PodStatus]) -> str:
    header = ("COMPONENT", "POD", "READY", "STATUS", "RESTARTS", "VERSION")
    lines = [
        (
            row.component,
            row.name,
            f"{row.ready_containers}/{row.containers}",
            row.status,
            str(row.restarts),
            row.version_text,
        )
        for row in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *lines]]
    per_component = {}
    for row in rows:
        total, ready = per_component.get(row.component, (0, 0))
        per_component[row.component] = (total + 1, ready + row.ready)
    text.append("")
    text.append("pods ready: " + ", ".join(f"{name} {ready}/{total}" for name, (total, ready) in per_component.items()))
    unknown = [row for row in rows if row.version_text == "?"]
    for row in unknown:
        text.append(f"version of {row.name} unknown: {row.version_note}")
    return "\n".join(text)


def run(
    namespace: str | None,
    release: str,
    kubeconfig: str | None,
    in_cluster: bool,
    context: str | None,
    as_json: bool,
    timeout_s: float,
) -> int:
    """Print the table (or JSON); 0 when every pod is ready, 1 otherwise or when none is found."""
    from kubernetes import client
    from kubernetes.config import ConfigException

    try:
        namespace = namespace or default_namespace(kubeconfig, in_cluster, context)
        core = client.CoreV1Api(api_client(kubeconfig, in_cluster, context))
    except (ConfigException, OSError) as error:
        print(f"muzero: cannot load the Kubernetes configuration: {error}", file=sys.stderr)
        return 2
    try:
        rows = collect(core, namespace, release, timeout_s)
    except client.ApiException as error:
        print(f"muzero: listing pods in namespace {namespace!r} failed: {describe_error(error)}", file=sys.stderr)
        return 1
    except Exception as error:  # connection refused, timeout: name the server
        print(
            f"muzero: cannot reach the Kubernetes API server ({core.api_client.configuration.host}): {error}",
            file=sys.stderr,
        )
        return 1
    if as_json:
        print(
            json.dumps(
                {
                    "namespace": namespace,
                    "release": release,
                    "pods": [{**asdict(row), "ready": row.ready} for row in rows],
                },
                indent=2,
            )
        )
    elif rows:
        print(format_table(rows))
    if not rows:
        print(
            f"muzero: no pods of release {release!r} in namespace {namespace!r} (selector {release_selector(release)})",
            file=sys.stderr,
        )
        return 1
    return 0 if all(row.ready for row in rows) else 1
