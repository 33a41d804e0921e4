"""The actor autoscaler: its policy, its rounds against a fake Kubernetes API with real /metrics
endpoints, and ``muzero autoscale`` as a process configured the way the Helm chart configures it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from muzero.operations.cluster import scrape
from muzero.operations.k8s.autoscaler import Autoscaler, AutoscalerMetrics, Policy, Settings, decide
from muzero.operations.redis_process import free_port
from tests.fake_kubernetes import FakeKubernetes
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
POLICY = Policy(min_actors=1, max_actors=10, spi_low=8.0, spi_high=32.0, cooldown_s=60.0)


# --- the policy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "current, ratio, action, replicas",
    [
        (4, 20.0, "unchanged", 4),  # within [8, 32]
        (4, 8.0, "unchanged", 4),  # the band's edges are inside it
        (4, 32.0, "unchanged", 4),
        (4, 40.0, "scale_up", 6),  # 4 x 40 / 20 (the band's middle) = 8, but one step adds at most half: 6
        (5, 33.0, "scale_up", 8),  # 5 x 33 / 20 = 8.25 -> 9, capped at 5 + 3
        (8, 36.0, "scale_up", 10),  # 8 x 36 / 20 = 14.4 -> 15, capped at 12, clamped at max_actors 10
        (10, 90.0, "unchanged", 10),  # already at max_actors
        (4, 6.0, "scale_down", 2),  # 4 x 6 / 20 = 1.2 -> 1, but one step removes at most half: 2
        (3, 7.5, "scale_down", 1),  # 3 x 7.5 / 20 = 1.1 -> 1, within the step of 2
        (2, 1.0, "scale_down", 1),  # 0.1 -> 0, clamped at min_actors
        (1, 0.5, "unchanged", 1),  # already at min_actors
    ],
)
def test_decide_moves_towards_the_band_within_a_step_and_the_bounds(current, ratio, action, replicas):
    decision = decide(POLICY, current, ratio, since_change_s=None)
    assert (decision.action, decision.replicas) == (action, replicas), decision.reason
    assert f"{ratio:.2f}" in decision.reason


@pytest.mark.parametrize(
    "current, ratio, replicas",
    [
        (6, 26.0, 8),  # 6 x 26 / 20 = 7.8 -> 8: the proportional count, under the step cap of 9
        (6, 14.0, 4),  # 6 x 14 / 20 = 4.2 -> 4, above the cap of 3
        (9, 25.5, 12),  # 11.5 -> 12
        (9, 24.0, 9),  # in [15, 25]
    ],
)
def test_decide_is_proportional_to_the_distance_from_the_band_middle(current, ratio, replicas):
    narrow = Policy(min_actors=1, max_actors=20, spi_low=15.0, spi_high=25.0, cooldown_s=0.0)
    assert decide(narrow, current, ratio, since_change_s=None).replicas == replicas


def test_decide_waits_out_the_cool_down_after_a_change():
    assert decide(POLICY, 4, 40.0, since_change_s=59.0).action == "none"
    assert "cooling down" in decide(POLICY, 4, 40.0, since_change_s=59.0).reason
    assert decide(POLICY, 4, 40.0, since_change_s=60.0).replicas == 6
    # In the band, the cool-down does not matter: nothing to do either way.
    assert decide(POLICY, 4, 20.0, since_change_s=1.0).action == "unchanged"


def test_decide_makes_no_decision_without_a_ratio_but_enforces_the_bounds():
    decision = decide(POLICY, 4, None, since_change_s=None, no_ratio_reason="the learner sampled nothing")
    assert (decision.action, decision.replicas, decision.reason) == ("none", 4, "the learner sampled nothing")
    # Outside [min, max] (someone scaled by hand): back inside, ratio or not, cool-down or not.
    assert (decide(POLICY, 0, None, None).action, decide(POLICY, 0, None, None).replicas) == ("scale_up", 1)
    assert decide(POLICY, 14, 5.0, since_change_s=1.0).replicas == 10


@pytest.mark.parametrize(
    "wait, action, replicas",
    [
        (0.5, "scale_up", 5),  # the learner starved half the time: one more actor
        (0.1, "unchanged", 4),  # within [0.02, 0.2]
        (0.0, "scale_down", 3),  # never waits: actors idle behind the limiter, one fewer
    ],
)
def test_decide_on_another_signal_moves_one_actor_at_a_time(wait, action, replicas):
    band = Policy(min_actors=1, max_actors=10, spi_low=0.02, spi_high=0.2, cooldown_s=0.0)
    decision = decide(band, 4, wait, since_change_s=None, signal="learner input wait", proportional=False)
    assert (decision.action, decision.replicas) == (action, replicas), decision.reason
    assert decision.reason.startswith("learner input wait")


# --- rounds against the fake API with real /metrics endpoints ----------------------------------


class ServiceCounters:
    """The learner's samples counter and replay's store-wide inserts counter, served over real HTTP."""

    def __init__(self):
        self.learner_registry, self.replay_registry = CollectorRegistry(), CollectorRegistry()
        self.samples = Counter("muzero_learner_samples_total", "samples", registry=self.learner_registry)
        self.inserts = Counter("muzero_replay_inserted_transitions", "inserts", registry=self.replay_registry)
        self.input_wait = Histogram("muzero_learner_input_wait_seconds", "waits", registry=self.learner_registry)
        self.limit = Gauge("muzero_replay_samples_per_insert_limit", "limit", registry=self.replay_registry)
        self.servers = []
        self.learner_url = self._serve(self.learner_registry)
        self.replay_url = self._serve(self.replay_registry)

    def _serve(self, registry) -> str:
        server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
        self.servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/metrics"

    def advance(self, samples: float, inserts: float) -> None:
        self.samples.inc(samples)
        self.inserts.inc(inserts)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()


class ManualClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def counters():
    served = ServiceCounters()
    yield served
    served.close()


def autoscaler_for(api: FakeKubernetes, counters: ServiceCounters, policy: Policy = POLICY):
    from kubernetes import client

    settings = Settings(
        namespace="ml",
        deployment="muzero-actor",
        learner_metrics_url=counters.learner_url,
        replay_metrics_url=counters.replay_url,
        policy=policy,
        interval_s=30.0,
        metrics_port=0,
    )
    clock = ManualClock()
    registry = CollectorRegistry()
    scaler = Autoscaler(settings, client.AppsV1Api(api.api_client()), AutoscalerMetrics(registry), clock=clock)
    return scaler, clock, registry


def test_rounds_scale_up_hold_and_down_with_cool_down_and_no_decision_on_zero_rates(counters):
    with FakeKubernetes(scales={("ml", "muzero-actor"): 4}) as api:
        scaler, clock, registry = autoscaler_for(api, counters)

        # First round: one reading of each counter is no rate.
        assert scaler.step().action == "none"
        # Nothing moved (learner not started): no decision, no patch.
        clock.now += 30
        decision = scaler.step()
        assert decision.action == "none" and "learner sampled nothing" in decision.reason
        # The learner samples but no actor inserts: still none.
        counters.advance(samples=3000, inserts=0)
        clock.now += 30
        assert "no actor playing" in scaler.step().reason
        assert api.patches == []

        # Over the band: 40 samples per insert -> 4 x 40 / 20 = 8, one step at most +2: 6.
        counters.advance(samples=40 * 300, inserts=300)
        clock.now += 30
        decision = scaler.step()
        assert (decision.action, decision.replicas) == ("scale_up", 6), decision.reason
        assert len(api.patches) == 1
        patch = api.patches[0]
        assert patch.path == "/apis/apps/v1/namespaces/ml/deployments/muzero-actor/scale"
        assert patch.content_type == "application/merge-patch+json"
        assert patch.body == {"spec": {"replicas": 6}}
        assert api.scales[("ml", "muzero-actor")] == 6

        # Still over the band right after: the cool-down holds it.
        counters.advance(samples=40 * 300, inserts=300)
        clock.now += 30
        assert "cooling down" in scaler.step().reason
        assert len(api.patches) == 1

        # In the band after the cool-down: unchanged.
        counters.advance(samples=20 * 300, inserts=300)
        clock.now += 31
        assert scaler.step().action == "unchanged"
        assert len(api.patches) == 1

        # Under the band: 5 per insert -> 6 x 5 / 20 = 1.5 -> 1, one step at most -3: 3.
        counters.advance(samples=5 * 300, inserts=300)
        clock.now += 30
        decision = scaler.step()
        assert (decision.action, decision.replicas) == ("scale_down", 3), decision.reason
        assert api.patches[-1].body == {"spec": {"replicas": 3}}

        metrics = {
            s.name + str(sorted(s.labels.items())): s.value for family in registry.collect() for s in family.samples
        }
        assert metrics["muzero_autoscaler_current_replicas[]"] == 3
        assert metrics["muzero_autoscaler_desired_replicas[]"] == 3
        assert metrics["muzero_autoscaler_samples_per_insert[]"] == pytest.approx(5.0)
        assert metrics["muzero_autoscaler_decisions_total[('action', 'scale_up')]"] == 1
        assert metrics["muzero_autoscaler_decisions_total[('action', 'scale_down')]"] == 1
        assert metrics["muzero_autoscaler_decisions_total[('action', 'none')]"] == 4


def test_rounds_clamp_at_the_bounds_and_survive_api_errors(counters):
    policy = Policy(min_actors=2, max_actors=5, spi_low=8.0, spi_high=32.0, cooldown_s=0.0)
    with FakeKubernetes(scales={("ml", "muzero-actor"): 4}) as api:
        scaler, clock, registry = autoscaler_for(api, counters, policy)
        scaler.step()
        counters.advance(samples=100 * 300, inserts=300)  # far over: 4 -> 6 wanted, max is 5
        clock.now += 30
        assert scaler.step().replicas == 5
        counters.advance(samples=100 * 300, inserts=300)
        clock.now += 30
        decision = scaler.step()
        assert (decision.action, decision.replicas) == ("unchanged", 5) and "max_actors" in decision.reason
        counters.advance(samples=300, inserts=300)  # far under: 5 -> 2 (cap -3, min 2)
        clock.now += 30
        assert scaler.step().replicas == 2
        counters.advance(samples=300, inserts=300)
        clock.now += 30
        assert "min_actors" in scaler.step().reason
        assert [p.body["spec"]["replicas"] for p in api.patches] == [5, 2]

        # The API refuses (RBAC missing): logged and counted, the loop goes on.
        api.forbidden = True
        counters.advance(samples=100 * 300, inserts=300)
        clock.now += 30
        assert scaler.step().action == "none"
        errors = [
            s.value
            for family in registry.collect()
            for s in family.samples
            if s.name == "muzero_autoscaler_kubernetes_errors_total"
        ]
        assert errors == [1.0]


def test_with_the_rate_limiter_on_rounds_scale_on_the_learners_input_wait(counters):
    counters.limit.set(16)  # replay holds samples per insert at 16: the ratio says nothing
    with FakeKubernetes(scales={("ml", "muzero-actor"): 4}) as api:
        scaler, clock, registry = autoscaler_for(api, counters, replace(POLICY, cooldown_s=0.0))
        counters.advance(samples=16 * 300, inserts=300)
        assert scaler.step().action == "none"  # first readings
        counters.advance(samples=16 * 300, inserts=300)
        counters.input_wait.observe(15.0)  # 15 s of 30 waiting for input
        clock.now += 30
        decision = scaler.step()
        assert (decision.action, decision.replicas) == ("scale_up", 5), decision.reason
        assert "rate limiter holds samples per insert at 16" in decision.reason
        counters.advance(samples=16 * 300, inserts=300)  # never waits now
        clock.now += 30
        assert (scaler.step().action, api.patches[-1].body) == ("scale_down", {"spec": {"replicas": 4}})
        gauges = {s.name: s.value for family in registry.collect() for s in family.samples}
        assert gauges["muzero_autoscaler_learner_input_wait_fraction"] == 0.0
        assert gauges["muzero_autoscaler_samples_per_insert"] == pytest.approx(16.0)


def test_a_learner_restart_gives_no_rate_instead_of_a_negative_one(counters):
    with FakeKubernetes(scales={("ml", "muzero-actor"): 4}) as api:
        scaler, clock, _ = autoscaler_for(api, counters)
        counters.advance(samples=50_000, inserts=1000)
        scaler.step()
        # A fresh learner process: its counter starts again from 0.
        counters.learner_registry.unregister(counters.samples)
        counters.samples = Counter("muzero_learner_samples_total", "samples", registry=counters.learner_registry)
        counters.advance(samples=10, inserts=300)
        clock.now += 30
        decision = scaler.step()
        assert decision.action == "none" and "went down" in decision.reason
        assert api.patches == []


# --- the process, configured as the chart configures it --------------------------------------------


def chart_env(counters: ServiceCounters, metrics_port: int, **overrides: str) -> dict[str, str]:
    env = {
        "MUZERO_NAMESPACE": "ml",
        "MUZERO_ACTOR_DEPLOYMENT": "muzero-actor",
        "MUZERO_LEARNER_METRICS_URL": counters.learner_url,
        "MUZERO_REPLAY_METRICS_URL": counters.replay_url,
        "MUZERO_AUTOSCALER_MIN_ACTORS": "1",
        "MUZERO_AUTOSCALER_MAX_ACTORS": "6",
        "MUZERO_AUTOSCALER_SPI_LOW": "8",
        "MUZERO_AUTOSCALER_SPI_HIGH": "32",
        "MUZERO_AUTOSCALER_INTERVAL_S": "0.3",
        "MUZERO_METRICS_PORT": str(metrics_port),
    }
    env.update(overrides)
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("MUZERO_", "KUBERNETES_"))}, **env}


def own_metrics(port: int) -> dict[str, float]:
    try:
        return scrape(f"http://127.0.0.1:{port}/metrics")
    except OSError:
        return {}


@pytest.mark.timeout(300)
def test_muzero_autoscale_process_patches_the_deployment_from_live_rates(counters, tmp_path):
    with FakeKubernetes(scales={("ml", "muzero-actor"): 2}) as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        port = free_port()
        log = open(tmp_path / "autoscaler.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "muzero.cli", "autoscale", "--kubeconfig", str(kubeconfig)],
            cwd=ROOT,
            env=chart_env(counters, port),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            # Nothing trains yet: rounds pass without a decision and without a patch.
            wait_for(
                lambda: own_metrics(port).get("muzero_autoscaler_decisions_total", 0) >= 4,
                120,
                "four rounds of the autoscaler",
            )
            assert api.patches == []
            assert own_metrics(port)["muzero_autoscaler_current_replicas"] == 2

            # The learner samples 50 examples per inserted transition: starved of fresh data.
            stop = threading.Event()

            def train():
                while not stop.is_set():
                    counters.advance(samples=50 * 20, inserts=20)
                    stop.wait(0.01)

            feeder = threading.Thread(target=train, daemon=True)
            feeder.start()
            try:
                wait_for(lambda: api.patches, 60, "a patch of the actor Deployment's scale")
            finally:
                stop.set()
                feeder.join()
            patch = api.patches[0]
            assert patch.path == "/apis/apps/v1/namespaces/ml/deployments/muzero-actor/scale"
            assert patch.content_type == "application/merge-patch+json"
            assert patch.body == {"spec": {"replicas": 3}}  # 2 actors, one step of at most +1
            metrics = wait_for(
                lambda: (m := own_metrics(port)).get("muzero_autoscaler_desired_replicas") == 3 and m,
                30,
                "desired replicas 3 on the autoscaler's /metrics",
            )
            assert metrics["muzero_autoscaler_samples_per_insert"] > 32

            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    log_text = (tmp_path / "autoscaler.log").read_text()
    assert '"service": "autoscaler"' in log_text  # the services' JSON log lines
    assert "the learner sampled nothing" in log_text
    assert "2 -> 3 actors" in log_text


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"MUZERO_AUTOSCALER_SPI_LOW": "40"},
            "MUZERO_AUTOSCALER_SPI_LOW (--spi-low): must be below "
            "MUZERO_AUTOSCALER_SPI_HIGH (--spi-high), got 40 >= 32",
        ),
        (
            {"MUZERO_AUTOSCALER_MIN_ACTORS": "7"},
            "MUZERO_AUTOSCALER_MIN_ACTORS (--min-actors): 7 is more than "
            "MUZERO_AUTOSCALER_MAX_ACTORS (--max-actors): 6",
        ),
        ({"MUZERO_AUTOSCALER_MAX_ACTORS": "-3"}, "MUZERO_AUTOSCALER_MAX_ACTORS (--max-actors): must be >= 1, got -3"),
        ({"MUZERO_AUTOSCALER_SPI_LOW": "-1"}, "MUZERO_AUTOSCALER_SPI_LOW (--spi-low): must be >= 0, got -1"),
        ({"MUZERO_AUTOSCALER_INTERVAL_S": "soon"}, "MUZERO_AUTOSCALER_INTERVAL_S (--interval): not a number: 'soon'"),
        ({"MUZERO_ACTOR_DEPLOYMENT": ""}, "MUZERO_ACTOR_DEPLOYMENT (--deployment): required"),
        (
            {"MUZERO_REPLAY_METRICS_URL": "replay:9100"},
            "MUZERO_REPLAY_METRICS_URL (--replay-metrics-url): not an http(s) URL",
        ),
    ],
)
def test_bad_config_exits_2_naming_the_variable(counters, tmp_path, overrides, message):
    result = subprocess.run(
        [sys.executable, "-m", "muzero.operations.k8s.autoscaler"],
        cwd=ROOT,
        env=chart_env(counters, 0, **overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert f"autoscaler: bad config: {message}" in result.stderr
    assert "Traceback" not in result.stderr
