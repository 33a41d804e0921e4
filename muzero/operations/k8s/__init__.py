"""Kubernetes tooling: ``muzero status`` (status.py) and the actor autoscaler (autoscaler.py).

Both talk to the API server through the official ``kubernetes`` client and find the
system's pods by the labels the Helm chart puts on every pod:
``app.kubernetes.io/name: muzero``, ``app.kubernetes.io/instance: <release>``,
``app.kubernetes.io/component: redis|replay|learner|actor|reanalyze|autoscaler``.
"""

from __future__ import annotations

import json
from pathlib import Path

APP_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
APP_NAME = "muzero"
COMPONENTS = ("redis", "replay", "learner", "actor", "reanalyze", "autoscaler")
METRICS_PORT_NAME = "metrics"
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def release_selector(release: str) -> str:
    """The label selector of every pod of one Helm release."""
    return f"{APP_LABEL}={APP_NAME},{INSTANCE_LABEL}={release}"


def api_client(kubeconfig: str | None = None, in_cluster: bool = False, context: str | None = None):
    """An ApiClient from the pod's service account (``in_cluster``) or a kubeconfig file
    (``kubeconfig``, else $KUBECONFIG or ~/.kube/config)."""
    from kubernetes import client, config

    if in_cluster:
        config.load_incluster_config()
        return client.ApiClient()
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    return client.ApiClient(configuration)


def default_namespace(kubeconfig: str | None, in_cluster: bool, context: str | None) -> str:
    """The pod's own namespace in a cluster, else the kubeconfig context's, else "default"."""
    if in_cluster:
        return IN_CLUSTER_NAMESPACE.read_text().strip() if IN_CLUSTER_NAMESPACE.exists() else "default"
    from kubernetes import config

    contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    if context is not None:
        current = next((c for c in contexts if c["name"] == context), current)
    return (current or {}).get("context", {}).get("namespace") or "default"


def describe_error(error: Exception) -> str:
    """One line: an API error's status and the API server's message, else the exception's text."""
    status = getattr(error, "status", None)
    if not status:
        return str(error) or type(error).__name__
    try:
        message = json.loads(getattr(error, "body", None) or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{status} {message or getattr(error, 'reason', '')}".strip()
