"""A stand-in for the Kubernetes API server (the one mock the tests allow: no cluster runs here).

It speaks real HTTP and JSON, so the official client's requests, paths and models are the real
ones; it implements only what muzero calls: listing pods by label, the pod proxy to a pod's
port (forwarded to a real /metrics URL the test names, 503 when that is unreachable, as the API
server answers), and a Deployment's scale subresource (read and merge patch).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from muzero.operations.k8s import APP_LABEL, APP_NAME, COMPONENT_LABEL, INSTANCE_LABEL


@dataclass
class FakePod:
    name: str
    component: str
    release: str = "muzero"
    namespace: str = "ml"
    ready: bool = True
    restarts: int = 0
    phase: str = "Running"
    waiting_reason: str | None = None
    metrics_port: int | None = 9100
    metrics_url: str | None = None  # where the pod proxy forwards /metrics; None: nothing listens

    def to_json(self) -> dict:
        ports = [{"name": "grpc", "containerPort": 50051, "protocol": "TCP"}]
        if self.metrics_port is not None:
            ports.append({"name": "metrics", "containerPort": self.metrics_port, "protocol": "TCP"})
        state = (
            {"waiting": {"reason": self.waiting_reason}}
            if self.waiting_reason
            else {"running": {"startedAt": "2026-11-23T10:00:00Z"}}
        )
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": f"uid-{self.name}",
                "labels": {APP_LABEL: APP_NAME, INSTANCE_LABEL: self.release, COMPONENT_LABEL: self.component},
            },
            "spec": {"containers": [{"name": self.component, "image": "muzero:test", "ports": ports}]},
            "status": {
                "phase": self.phase,
                "podIP": "10.0.0.1",
                "containerStatuses": [
                    {
                        "name": self.component,
                        "ready": self.ready,
                        "restartCount": self.restarts,
                        "image": "muzero:test",
                        "imageID": "sha256:0",
                        "state": state,
                    }
                ],
            },
        }


@dataclass
class Patch:
    path: str
    content_type: str
    body: dict


@dataclass
class FakeKubernetes:
    pods: list[FakePod] = field(default_factory=list)
    scales: dict[tuple[str, str], int] = field(default_factory=dict)  # (namespace, deployment) -> replicas
    patches: list[Patch] = field(default_factory=list)
    proxied: list[str] = field(default_factory=list)  # pod proxy names asked for ("pod:port")
    forbidden: bool = False  # answer 403 to everything, as missing RBAC rules would

    def __post_init__(self):
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKubernetes:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def api_client(self):
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)

    def write_kubeconfig(self, path: Path, namespace: str = "ml") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        }
        path.write_text(json.dumps(config))  # JSON is YAML
        return path


def _status(code: int, reason: str, message: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _handler(api: FakeKubernetes):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the test output is the report
            pass

        def send_json(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def send_text(self, code: int, text: str) -> None:
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def route(self) -> tuple[list[str], dict[str, list[str]]]:
            url = urllib.parse.urlsplit(self.path)
            parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
            return parts, urllib.parse.parse_qs(url.query)

        def do_GET(self):
            if api.forbidden:
                return self.send_json(403, _status(403, "Forbidden", "forbidden by RBAC"))
            parts, query = self.route()
            # /api/v1/namespaces/{ns}/pods
            if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 5 and parts[4] == "pods":
                wanted = dict(term.split("=", 1) for term in query.get("labelSelector", [""])[0].split(",") if term)
                with api.lock:
                    items = [
                        p.to_json()
                        for p in api.pods
                        if p.namespace == parts[3]
                        and all(p.to_json()["metadata"]["labels"].get(k) == v for k, v in wanted.items())
                    ]
                return self.send_json(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
            # /api/v1/namespaces/{ns}/pods/{name}:{port}/proxy/{path}
            if (
                parts[:3] == ["api", "v1", "namespaces"]
                and len(parts) >= 7
                and parts[4] == "pods"
                and parts[6] == "proxy"
            ):
                return self.proxy(parts[3], parts[5], "/".join(parts[7:]))
            # /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale
            if self.is_scale(parts):
                return self.send_scale(parts[4], parts[6])
            return self.send_json(404, _status(404, "NotFound", f"no route {self.path}"))

        def proxy(self, namespace: str, name_port: str, path: str):
            name, _, port = name_port.partition(":")
            with api.lock:
                api.proxied.append(name_port)
                pod = next((p for p in api.pods if p.name == name and p.namespace == namespace), None)
            if pod is None:
                return self.send_json(404, _status(404, "NotFound", f'pods "{name}" not found'))
            # The API server dials podIP:port: a wrong port number or a dead process is a 503.
            refused = _status(
                503,
                "ServiceUnavailable",
                f"error trying to reach service: dial tcp 10.0.0.1:{port}: connect: connection refused",
            )
            if pod.metrics_url is None or port != str(pod.metrics_port) or path != "metrics":
                return self.send_json(503, refused)
            try:
                with urllib.request.urlopen(pod.metrics_url, timeout=5) as response:
                    return self.send_text(200, response.read().decode())
            except OSError:
                return self.send_json(503, refused)

        @staticmethod
        def is_scale(parts: list[str]) -> bool:
            return (
                parts[:4] == ["apis", "apps", "v1", "namespaces"]
                and len(parts) == 8
                and parts[5] == "deployments"
                and parts[7] == "scale"
            )

        def send_scale(self, namespace: str, name: str):
            with api.lock:
                replicas = api.scales.get((namespace, name))
            if replicas is None:
                return self.send_json(404, _status(404, "NotFound", f'deployments.apps "{name}" not found'))
            return self.send_json(
                200,
                {
                    "apiVersion": "autoscaling/v1",
                    "kind": "Scale",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {"replicas": replicas},
                    "status": {"replicas": replicas, "selector": f"{COMPONENT_LABEL}=actor"},
                },
            )

        def do_PATCH(self):
            if api.forbidden:
                return self.send_json(403, _status(403, "Forbidden", "forbidden by RBAC"))
            parts, _ = self.route()
            if not self.is_scale(parts):
                return self.send_json(404, _status(404, "NotFound", f"no route {self.path}"))
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            content_type = self.headers.get("Content-Type", "")
            key = (parts[4], parts[6])
            with api.lock:
                api.patches.append(Patch(self.path, content_type, body))
                if key not in api.scales:
                    return self.send_json(404, _status(404, "NotFound", f'deployments.apps "{key[1]}" not found'))
                replicas = body.get("spec", {}).get("replicas") if isinstance(body, dict) else None
                if content_type != "application/merge-patch+json" or not isinstance(replicas, int) or replicas < 0:
                    return self.send_json(422, _status(422, "Invalid", f"unexpected patch {content_type} {body}"))
                api.scales[key] = replicas
            return self.send_scale(*key)

    return Handler
