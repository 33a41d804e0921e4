"""Operations: local mode, the loopback cluster, processes (Redis, Prometheus), the service shell,
metrics text, Kubernetes tooling, progress panel and learning curves (see docs/architecture.md).
"""
