"""Grafana dashboards: valid JSON with the panels the issue names, queries over exported metrics only,
and every panel's query answered by a real Prometheus scraping a running cluster."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.request
from pathlib import Path

import pytest

from muzero.operations.cluster import Cluster
from muzero.operations.k8s.autoscaler import INSERTS_METRIC, SAMPLES_METRIC, read_counter
from muzero.operations.prometheus_process import PrometheusServer, prometheus_binary

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "helm" / "muzero" / "dashboards"
METRIC_NAME = re.compile(r"\bmuzero_[a-z0-9_]+\b")

# What the issue asks each dashboard to show: a panel whose title contains each phrase.
REQUIRED_PANELS = {
    "throughput.json": [
        "environment steps/s",
        "simulations/s",
        "learner samples/s",
        "replay inserts and samples/s",
        "samples per insert",
        "publish-to-use lag",
    ],
    "learning.json": ["episode returns", "losses by kind", "model version"],
    "replay.json": ["transitions", "frames", "raw vs stored bytes", "compression ratio", "evictions", "shard balance"],
}

# Grafana's built-in variables, as Grafana would expand them for a 1 s scrape interval.
GRAFANA_VARIABLES = {"$__rate_interval": "10s", "$__interval": "2s", "${__interval}": "2s", "${__rate_interval}": "10s"}


def load_dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict):
    """Every panel, rows' collapsed children included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) for every query of every panel."""
    found = []
    for name, dashboard in load_dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                found.append((name, panel["title"], target["expr"]))
    return found


def expand(expr: str, dashboard: dict) -> str:
    """The query as Grafana sends it: built-in intervals, and each template variable at "All"."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "datasource":
            value = variable.get("allValue") or ".*"
            expr = expr.replace("${" + variable["name"] + "}", value).replace("$" + variable["name"], value)
    assert "$" not in expr, f"a variable left in {expr}"
    return expr


def metric_names_in_source() -> set[str]:
    """Names of the series the services can export: every ``muzero_*`` name they or their servers
    (muzero/transport) define (not the rest of the library: its mentions of a name, e.g. the
    autoscaler's, are uses, not definitions), with
    the suffixes prometheus_client adds (counters: _total; histograms: _bucket, _sum, _count). The live
    test below checks the exact names."""
    names = set()
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "muzero" / "transport").rglob("*.py")]:
        for name in re.findall(r"[\"'](muzero_[a-z0-9_]+)[\"']", path.read_text()):
            base = name.removesuffix("_total")
            names |= {name, base + "_total", base + "_bucket", base + "_sum", base + "_count"}
    return names


def test_dashboards_are_grafana_json_with_a_prometheus_datasource_variable():
    boards = load_dashboards()
    assert set(boards) == set(REQUIRED_PANELS), f"dashboards: {sorted(boards)}"
    uids = [board["uid"] for board in boards.values()]
    assert len(set(uids)) == len(uids), f"dashboard uids repeat: {uids}"
    for name, board in boards.items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables.get("datasource", {}).get("type") == "datasource", name
        assert variables["datasource"]["query"] == "prometheus", name
        ids = [panel["id"] for panel in panels(board)]
        assert len(set(ids)) == len(ids), f"{name}: panel ids repeat"
        for panel in panels(board):
            if panel.get("type") == "row":
                continue
            where = f"{name}: panel {panel['title']!r}"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["targets"], f"{where} has no query"
            for target in panel["targets"]:
                assert target["expr"].strip(), f"{where} has an empty query"
                # One Prometheus often scrapes several releases: every series is scoped to the namespace.
                for series, selector in re.findall(r"\b(muzero_[a-z0-9_]+)(\{[^}]*\})?", target["expr"]):
                    assert 'namespace=~"$namespace"' in selector, f"{where}: {series} not filtered by $namespace"
                # A fixed datasource in a query would pin it to one Grafana's Prometheus.
                assert target.get("datasource", panel["datasource"]) == panel["datasource"], where


def test_each_dashboard_has_the_panels_the_issue_names():
    for name, board in load_dashboards().items():
        titles = [panel["title"].lower() for panel in panels(board)]
        for phrase in REQUIRED_PANELS[name]:
            assert any(phrase in title for title in titles), f"{name}: no panel about {phrase!r} in {titles}"


def test_every_query_uses_only_metrics_the_code_exports():
    exported = metric_names_in_source()
    assert "muzero_learner_samples_total" in exported  # the scan finds the services' metrics at all
    for name, title, expr in queries():
        used = METRIC_NAME.findall(expr)
        assert used, f"{name}: panel {title!r} queries no muzero metric: {expr}"
        unknown = sorted(set(used) - exported)
        assert not unknown, f"{name}: panel {title!r} queries {unknown}, which no service exports"


# --- a real Prometheus scraping a real cluster --------------------------------------------------

CLUSTER_SETTINGS = [
    "env.num_envs=8",
    "search.num_simulations=4",
    "replay.min_size=64",
    "replay.segment_length=20",
    "replay.capacity=600",
    "training.batch_size=32",
    "training.checkpoint_interval=10",
    "reanalyze.segments_per_round=2",
]
MIN_SCRAPES = 30


def finite_values(result: list[dict]) -> list[float]:
    return [float(series["value"][1]) for series in result if math.isfinite(float(series["value"][1]))]


@pytest.mark.timeout(900)
def test_real_prometheus_scraping_a_cluster_finds_every_service_up_and_answers_every_dashboard_query(tmp_path):
    try:
        prometheus_binary()
    except RuntimeError as missing:
        pytest.skip(str(missing))
    cluster = Cluster("cartpole", CLUSTER_SETTINGS, tmp_path / "cluster", actors=1, reanalyze=1, shards=2)
    prometheus = None
    try:
        cluster.start(timeout_s=240)
        targets: dict[str, list[str]] = {}
        for service in cluster.layout.services:
            targets.setdefault(service.kind, []).append(f"127.0.0.1:{service.metrics_port}")
        prometheus = PrometheusServer(targets, directory=tmp_path / "prometheus").start()

        # Poll until each query has returned a finite value (the cluster has to play, store, train,
        # publish, evict and reanalyse first); the guard names what never answered.
        boards = load_dashboards()
        pending = {(name, title, expr) for name, title, expr in queries()}
        deadline = time.monotonic() + 420
        while pending and time.monotonic() < deadline:
            for key in sorted(pending):
                if finite_values(prometheus.query(expand(key[2], boards[key[0]]))):
                    pending.discard(key)
            if pending:
                time.sleep(1.0)
        assert not pending, "panels whose query never returned data:\n" + "\n".join(
            f"  {name}: {title!r}: {expand(expr, boards[name])}" for name, title, expr in sorted(pending)
        )

        # And the names in the queries are the ones the services serve (labelled series appear once
        # set, so this reads /metrics after the cluster has run).
        live = set()
        for service in cluster.layout.services:
            body = urllib.request.urlopen(service.metrics_url, timeout=5).read().decode()
            live |= {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line.startswith("muzero_")}
        for name, title, expr in queries():
            missing = sorted(set(METRIC_NAME.findall(expr)) - live)
            assert not missing, f"{name}: panel {title!r} queries {missing}, absent from every live /metrics"
        # The actor autoscaler's two inputs, from the services it reads them from.
        assert read_counter(cluster.layout.service("learner").metrics_url, SAMPLES_METRIC) > 0
        assert read_counter(cluster.layout.service("replay").metrics_url, INSERTS_METRIC) > 0

        # Every service up, and its scrape time as Prometheus measures it (median and worst over at
        # least MIN_SCRAPES scrapes), printed for the record: benchmarks/deploy.py measures it.
        window = "5m"
        count = f"min(count_over_time(scrape_duration_seconds[{window}]))"
        deadline = time.monotonic() + 120
        while float(prometheus.query(count)[0]["value"][1]) < MIN_SCRAPES:
            assert time.monotonic() < deadline, f"fewer than {MIN_SCRAPES} scrapes of some service in 120 s"
            time.sleep(1.0)
        median = {
            s["metric"]["instance"]: float(s["value"][1])
            for s in prometheus.query(f"quantile_over_time(0.5, scrape_duration_seconds[{window}])")
        }
        worst = {
            s["metric"]["instance"]: float(s["value"][1])
            for s in prometheus.query(f"max_over_time(scrape_duration_seconds[{window}])")
        }
        scrapes = {
            s["metric"]["instance"]: int(float(s["value"][1]))
            for s in prometheus.query(f"count_over_time(scrape_duration_seconds[{window}])")
        }
        up = {s["metric"]["instance"]: float(s["value"][1]) for s in prometheus.query("up")}
        report = []
        for service in cluster.layout.services:
            instance = f"127.0.0.1:{service.metrics_port}"
            assert up.get(instance) == 1.0, f"{service.name} ({instance}) is not up in Prometheus"
            report.append(
                f"{service.name}: median {median[instance] * 1000:.1f} ms, "
                f"max {worst[instance] * 1000:.1f} ms over {scrapes[instance]} scrapes"
            )
        print("scrape_duration_seconds over the run: " + "; ".join(report))
    finally:
        if prometheus is not None:
            prometheus.stop()
        cluster.stop()
