"""``muzero autoscale``: scale the actor Deployment to keep samples per insert in a band.

Samples per insert = learner samples/s ÷ transitions inserted into replay per second,
both rates of counters read twice, an interval apart. Above the band the learner
trains on the same data too often (short of fresh play): more actors. Below it the
actors play more than the learner can use: fewer. ``decide`` is the policy, a pure
function; ``Autoscaler`` does the I/O (scrape, read the scale subresource, patch it).

With replay's rate limiter on (``replay.samples_per_insert`` > 0, exported as
``muzero_replay_samples_per_insert_limit``) that ratio sits at the limit whatever the
actor count, because the faster side waits. The signal is then the learner's input
wait: the fraction of its time spent waiting for a batch. Above LEARNER_WAIT_BAND the
learner is starved: one more actor; below it the actors outrun it (they wait on the
limiter): one fewer.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, replace

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from muzero.operations.k8s import describe_error
from muzero.operations.metrics_text import scrape

log = logging.getLogger("muzero.autoscaler")

# The learner's own counter; and the store-wide insert counter every replay replica reports
# (read from Redis), so any replica behind the replay Service answers the same.
SAMPLES_METRIC = "muzero_learner_samples_total"
INSERTS_METRIC = "muzero_replay_inserted_transitions_total"
LIMIT_METRIC = "muzero_replay_samples_per_insert_limit"
WAIT_METRIC = "muzero_learner_input_wait_seconds_sum"
# With the rate limiter on: the learner should wait for input a little (so no actor is idle
# behind the limiter) but not much (so the learner is not starved).
LEARNER_WAIT_BAND = (0.02, 0.20)
MAX_STEP_FRACTION = 0.5  # one decision changes the actor count by at most half (at least 1)
MERGE_PATCH = "application/merge-patch+json"


class AutoscalerConfigError(ValueError):
    pass


# --- the policy -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    min_actors: int
    max_actors: int
    spi_low: float
    spi_high: float
    cooldown_s: float
    max_step_fraction: float = MAX_STEP_FRACTION


@dataclass(frozen=True)
class Decision:
    action: str  # "scale_up" | "scale_down" | "unchanged" | "none" (no decision could be made)
    replicas: int | None  # what the Deployment should have (the current count unless scaling); None: unknown
    reason: str


def decide(
    policy: Policy,
    current: int,
    ratio: float | None,
    since_change_s: float | None,
    no_ratio_reason: str = "no samples-per-insert ratio",
    *,
    signal: str = "samples per insert",
    proportional: bool = True,
) -> Decision:
    """The replica count for ``current`` actors at samples-per-insert ``ratio`` (None: unknown),
    ``since_change_s`` seconds after this autoscaler last scaled (None: never). Another
    ``signal`` that grows when actors are too few can stand in for the ratio (the band is the
    policy's); without ``proportional`` each decision moves by one actor."""
    low, high = policy.spi_low, policy.spi_high
    if current < policy.min_actors or current > policy.max_actors:
        # The bounds are the operator's: enforced without a ratio and without cool-down.
        wanted = min(max(current, policy.min_actors), policy.max_actors)
        return Decision(
            "scale_up" if wanted > current else "scale_down",
            wanted,
            f"{current} actors outside [{policy.min_actors}, {policy.max_actors}]",
        )
    if ratio is None:
        return Decision("none", current, no_ratio_reason)
    if low <= ratio <= high:
        return Decision("unchanged", current, f"{signal} {ratio:.2f} within [{low:g}, {high:g}]")
    if since_change_s is not None and since_change_s < policy.cooldown_s:
        return Decision(
            "none",
            current,
            f"{signal} {ratio:.2f} outside [{low:g}, {high:g}], but cooling "
            f"down ({since_change_s:.0f} of {policy.cooldown_s:g} s since the last change)",
        )
    # Inserts grow with the actor count, so the ratio falls as 1/actors: aim for the band's middle.
    target = (low + high) / 2
    wanted = current * ratio / target if proportional else current + (1 if ratio > high else -1)
    step = max(1, math.ceil(current * policy.max_step_fraction)) if proportional else 1
    if ratio > high:
        replicas = min(max(math.ceil(wanted), current + 1), current + step, policy.max_actors)
        action, side = "scale_up", "above"
    else:
        replicas = max(min(math.floor(wanted), current - 1), current - step, policy.min_actors)
        action, side = "scale_down", "below"
    reason = f"{signal} {ratio:.2f} {side} [{low:g}, {high:g}]"
    if replicas == current:
        limit = "max_actors" if ratio > high else "min_actors"
        return Decision("unchanged", current, f"{reason}; already at {limit} ({current})")
    return Decision(action, replicas, f"{reason}: {current} -> {replicas} actors")


def samples_per_insert(samples_per_s: float | None, inserts_per_s: float | None) -> tuple[float | None, str]:
    """(ratio, "") or (None, why there is none)."""
    if samples_per_s is None or inserts_per_s is None:
        return None, "rates unknown"
    if samples_per_s <= 0:
        return None, "the learner sampled nothing in the interval (not training yet, or waiting for data)"
    if inserts_per_s <= 0:
        return None, "replay stored no transitions in the interval (no actor playing?)"
    return samples_per_s / inserts_per_s, ""


# --- reading rates --------------------------------------------------------------------------


def read_counter(url: str, metric: str, timeout_s: float = 5.0) -> float:
    """One sample's value from a /metrics page (the sum if it has labels)."""
    value = scrape(url, timeout_s).get(metric)
    if value is None:
        raise LookupError(f"{metric} not exported by {url}")
    return value


class RateMeter:
    """The rate of one counter between the two latest readings."""

    def __init__(self, what: str, url: str, metric: str):
        self.what, self.url, self.metric = what, url, metric
        self.previous: tuple[float, float] | None = None  # (time, value)

    def read(self, now: float, page: dict[str, float] | Exception) -> tuple[float | None, str]:
        """(per second, "") or (None, why not), from this round's ``page`` of ``url`` (or the
        error reading it)."""
        value = None if isinstance(page, Exception) else page.get(self.metric)
        if value is None:  # unreachable, not started, garbled: no rate this time
            self.previous = None
            why = page if isinstance(page, Exception) else f"{self.metric} not exported"
            return None, f"{self.what} metrics unavailable ({self.url}): {why}"
        previous, self.previous = self.previous, (now, value)
        if previous is None:
            return None, f"first reading of {self.metric}: a rate needs two"
        elapsed, delta = now - previous[0], value - previous[1]
        if delta < 0:
            return None, f"{self.metric} went down ({self.what} restarted?)"
        if elapsed <= 0:
            return None, f"no time between two readings of {self.metric}"
        return delta / elapsed, ""


def _page(url: str) -> dict[str, float] | Exception:
    try:
        return scrape(url, timeout_s=5.0)
    except Exception as error:  # reported by the meters that needed it
        return error


# --- the loop -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    namespace: str
    deployment: str
    learner_metrics_url: str
    replay_metrics_url: str
    policy: Policy
    interval_s: float
    metrics_port: int
    host: str = "0.0.0.0"


class AutoscalerMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.current = Gauge(
            "muzero_autoscaler_current_replicas", "Actor replicas the Deployment has", registry=registry
        )
        self.desired = Gauge(
            "muzero_autoscaler_desired_replicas", "Actor replicas the last decision wanted", registry=registry
        )
        self.ratio = Gauge(
            "muzero_autoscaler_samples_per_insert",
            "Observed learner samples/s over replay inserted transitions/s (NaN: unknown)",
            registry=registry,
        )
        self.input_wait = Gauge(
            "muzero_autoscaler_learner_input_wait_fraction",
            "Observed share of the learner's time spent waiting for input (NaN: unknown)",
            registry=registry,
        )
        self.decisions = Counter(
            "muzero_autoscaler_decisions_total", "Decisions by action", ["action"], registry=registry
        )
        self.errors = Counter(
            "muzero_autoscaler_kubernetes_errors_total",
            "Failed reads or patches of the actor Deployment's scale",
            registry=registry,
        )
        self.ratio.set(math.nan)
        self.input_wait.set(math.nan)


class Autoscaler:
    def __init__(self, settings: Settings, apps_api, metrics: AutoscalerMetrics, clock=time.monotonic):
        self.settings = settings
        self.apps = apps_api
        self.metrics = metrics
        self.clock = clock
        self.samples = RateMeter("learner", settings.learner_metrics_url, SAMPLES_METRIC)
        self.inserts = RateMeter("replay", settings.replay_metrics_url, INSERTS_METRIC)
        self.waits = RateMeter("learner", settings.learner_metrics_url, WAIT_METRIC)
        self.last_change: float | None = None

    def _signal(self, now: float) -> tuple[float | None, str, dict]:
        """(value, why there is none, how to decide on it): samples per insert, or with replay's
        rate limiter on, the learner's input wait fraction."""
        learner, replay = (_page(self.settings.learner_metrics_url), _page(self.settings.replay_metrics_url))
        samples_per_s, samples_why = self.samples.read(now, learner)
        inserts_per_s, inserts_why = self.inserts.read(now, replay)
        wait_fraction, wait_why = self.waits.read(now, learner)  # every round, so either mode has a rate
        ratio, why = samples_per_insert(samples_per_s, inserts_per_s)
        self.metrics.ratio.set(math.nan if ratio is None else ratio)
        self.metrics.input_wait.set(math.nan if wait_fraction is None else wait_fraction)
        # A replay that does not export the limit has no limiter to report.
        limit = 0.0 if isinstance(replay, Exception) else replay.get(LIMIT_METRIC, 0.0)
        if limit > 0:
            low, high = LEARNER_WAIT_BAND
            return (
                wait_fraction,
                wait_why,
                {
                    "signal": f"learner input wait (rate limiter holds samples per insert at {limit:g})",
                    "proportional": False,
                    "policy": replace(self.settings.policy, spi_low=low, spi_high=high),
                },
            )
        return ratio, samples_why or inserts_why or why, {}

    def step(self) -> Decision:
        """One round: read the rates and the actor count, decide, patch if it changes."""
        now = self.clock()
        signal, why, how = self._signal(now)
        policy = how.pop("policy", self.settings.policy)
        name, namespace = self.settings.deployment, self.settings.namespace
        try:
            current = self.apps.read_namespaced_deployment_scale(name, namespace).spec.replicas or 0
        except Exception as error:
            self.metrics.errors.inc()
            log.error("cannot read deployments/%s/scale in %s: %s", name, namespace, describe_error(error))
            return self._record(Decision("none", None, "actor Deployment's scale unreadable"))
        self.metrics.current.set(current)
        since = None if self.last_change is None else now - self.last_change
        decision = decide(policy, current, signal, since, why, **how)
        if decision.replicas != current:
            try:
                self.apps.patch_namespaced_deployment_scale(
                    name, namespace, {"spec": {"replicas": decision.replicas}}, _content_type=MERGE_PATCH
                )
            except Exception as error:
                self.metrics.errors.inc()
                log.error(
                    "cannot scale deployments/%s in %s to %d: %s",
                    name,
                    namespace,
                    decision.replicas,
                    describe_error(error),
                )
                return self._record(Decision("none", current, f"patch failed: {decision.reason}"))
            self.last_change = now
            self.metrics.current.set(decision.replicas)
        return self._record(decision)

    def _record(self, decision: Decision) -> Decision:
        self.metrics.decisions.labels(decision.action).inc()
        if decision.replicas is not None:
            self.metrics.desired.set(decision.replicas)
        level = logging.INFO if decision.action != "none" else logging.WARNING
        log.log(level, "%s: %s", decision.action, decision.reason)
        return decision

    def run(self, stop: threading.Event) -> None:
        log.info(
            "scaling deployments/%s in %s every %g s to keep samples per insert in [%g, %g] with %d-%d actors",
            self.settings.deployment,
            self.settings.namespace,
            self.settings.interval_s,
            self.settings.policy.spi_low,
            self.settings.policy.spi_high,
            self.settings.policy.min_actors,
            self.settings.policy.max_actors,
        )
        while not stop.is_set():
            started = self.clock()
            self.step()
            stop.wait(max(0.0, self.settings.interval_s - (self.clock() - started)))


# --- configuration and entry point ------------------------------------------------------------

# (flag, environment variable, default, help); the Helm chart sets the environment.
OPTIONS = [
    ("--namespace", "MUZERO_NAMESPACE", None, "namespace of the actor Deployment (default: the pod's own)"),
    ("--deployment", "MUZERO_ACTOR_DEPLOYMENT", None, "the actor Deployment to scale"),
    ("--learner-metrics-url", "MUZERO_LEARNER_METRICS_URL", None, "the learner's /metrics URL"),
    ("--replay-metrics-url", "MUZERO_REPLAY_METRICS_URL", None, "a replay replica's (or Service's) /metrics URL"),
    ("--min-actors", "MUZERO_AUTOSCALER_MIN_ACTORS", "1", "fewest actors"),
    ("--max-actors", "MUZERO_AUTOSCALER_MAX_ACTORS", "8", "most actors"),
    ("--spi-low", "MUZERO_AUTOSCALER_SPI_LOW", "8", "samples per insert below this: fewer actors"),
    ("--spi-high", "MUZERO_AUTOSCALER_SPI_HIGH", "32", "samples per insert above this: more actors"),
    ("--interval", "MUZERO_AUTOSCALER_INTERVAL_S", "30", "seconds between decisions (and rate windows)"),
    (
        "--cooldown",
        "MUZERO_AUTOSCALER_COOLDOWN_S",
        None,
        "seconds after a change before the next (default 3 intervals)",
    ),
    ("--metrics-port", "MUZERO_METRICS_PORT", "9100", "port of the autoscaler's own /metrics, 0: off"),
    ("--host", "MUZERO_HOST", "0.0.0.0", "address /metrics listens on"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="muzero autoscale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Each option defaults to its environment variable. Kubernetes credentials: the pod's service "
        "account when $KUBERNETES_SERVICE_HOST is set, else --kubeconfig ($KUBECONFIG, ~/.kube/config).",
    )
    for flag, env, default, help_text in OPTIONS:
        parser.add_argument(flag, default=os.environ.get(env, default), help=f"{help_text} (env {env})")
    parser.add_argument("--kubeconfig", help="kubeconfig file (outside a cluster)")
    parser.add_argument(
        "--in-cluster",
        action="store_true",
        default=None,
        help="use the pod's service account (the default inside a cluster)",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validated settings; an AutoscalerConfigError names the option and its variable."""
    names = {flag.lstrip("-").replace("-", "_"): f"{env} ({flag})" for flag, env, _, _ in OPTIONS}

    def number(key: str, kind=float, minimum: float | None = None):
        text = getattr(args, key)
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise AutoscalerConfigError(
                f"{names[key]}: not a{'n integer' if kind is int else ' number'}: {text!r}"
            ) from None
        if minimum is not None and not value >= minimum:
            raise AutoscalerConfigError(f"{names[key]}: must be >= {minimum:g}, got {text}")
        return value

    for key in ("deployment", "learner_metrics_url", "replay_metrics_url"):
        if not getattr(args, key):
            raise AutoscalerConfigError(f"{names[key]}: required")
    for key in ("learner_metrics_url", "replay_metrics_url"):
        if not getattr(args, key).startswith(("http://", "https://")):
            raise AutoscalerConfigError(f"{names[key]}: not an http(s) URL: {getattr(args, key)!r}")
    min_actors, max_actors = number("min_actors", int, 1), number("max_actors", int, 1)
    if min_actors > max_actors:
        raise AutoscalerConfigError(
            f"{names['min_actors']}: {min_actors} is more than {names['max_actors']}: {max_actors}"
        )
    low, high = number("spi_low", float, 0), number("spi_high", float, 0)
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise AutoscalerConfigError(f"{names['spi_low']}: must be below {names['spi_high']}, got {low:g} >= {high:g}")
    interval = number("interval", float, 0.01)
    cooldown = 3 * interval if args.cooldown in (None, "") else number("cooldown", float, 0)
    metrics_port = number("metrics_port", int, 0)
    if metrics_port > 65535:
        raise AutoscalerConfigError(f"{names['metrics_port']}: not a port: {metrics_port}")
    return Settings(
        namespace=args.namespace or "default",
        deployment=args.deployment,
        learner_metrics_url=args.learner_metrics_url,
        replay_metrics_url=args.replay_metrics_url,
        policy=Policy(min_actors, max_actors, low, high, cooldown),
        interval_s=interval,
        metrics_port=metrics_port,
        host=args.host,
    )


def main(argv: list[str] | None = None) -> int:
    from muzero.operations.service import configure_logging, stop_on_signals

    args = build_parser().parse_args(argv)
    configure_logging("autoscaler")
    try:
        settings = settings_from_args(args)
    except AutoscalerConfigError as error:
        print(f"autoscaler: bad config: {error}", file=sys.stderr)
        return 2
    from kubernetes import client
    from kubernetes.config import ConfigException

    from muzero.operations.k8s import api_client, default_namespace

    in_cluster = args.in_cluster if args.in_cluster is not None else bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    try:
        apps = client.AppsV1Api(api_client(args.kubeconfig, in_cluster))
        if not args.namespace:
            settings = replace(settings, namespace=default_namespace(args.kubeconfig, in_cluster, None))
    except (ConfigException, OSError) as error:
        print(f"autoscaler: cannot load the Kubernetes configuration: {error}", file=sys.stderr)
        return 2
    stop = stop_on_signals()
    registry = CollectorRegistry()
    metrics = AutoscalerMetrics(registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.host, registry=registry)
    Autoscaler(settings, apps, metrics).run(stop)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
