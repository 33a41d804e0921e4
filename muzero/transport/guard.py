"""The guards every muzero gRPC server puts around its services.

grpcio's generated ``add_*Servicer_to_server`` leaves three gaps a server exposed to many
clients (or to anyone) must close:

- **Undecodable requests.** grpcio answers a request it cannot parse with INTERNAL before the
  servicer runs, and clients retry INTERNAL. Here a request that is not a valid message of
  its type is answered INVALID_ARGUMENT, naming the type, and never reaches the servicer.
- **Threads held by streams.** The sync server runs each RPC on a pool thread for its whole
  life; a long-lived stream (an actor's AppendSegments, a follower's Watch) holds one for
  hours. With a pool shared by streams and unary calls, enough idle streams starve every unary
  call and the health check. Here streams take one of ``max_streams`` slots; the pool has
  ``unary_workers`` threads more than that, so unary calls and probes always find one; a
  stream beyond the limit is refused at once with RESOURCE_EXHAUSTED (clients back off and
  retry) and counted.
- **Dead or idle clients.** A client stream that sends nothing for ``idle_s`` is cancelled, so
  a client that vanished without closing its connection cannot hold a slot for ever (server
  keepalive pings close connections whose peer is gone).

And it maps the store's transient failures (a Redis shard restarting) to UNAVAILABLE, which
clients retry, instead of UNKNOWN.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError
from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger("muzero.grpc")


@dataclass(frozen=True)
class StreamLimits:
    """How many long-lived streams a server holds, and for how long an idle one."""

    max_streams: int = 256
    unary_workers: int = 16
    idle_s: float = 300.0

    def __post_init__(self):
        if self.max_streams < 1:
            raise ValueError(f"max_streams: must be >= 1, got {self.max_streams}")
        if self.unary_workers < 1:
            raise ValueError(f"unary_workers: must be >= 1, got {self.unary_workers}")
        if not self.idle_s > 0:
            raise ValueError(f"idle_s: must be > 0, got {self.idle_s}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> StreamLimits:
        """MUZERO_GRPC_MAX_STREAMS, MUZERO_GRPC_UNARY_WORKERS, MUZERO_GRPC_STREAM_IDLE_S."""
        env = os.environ if environ is None else environ
        defaults = cls()
        try:
            return cls(
                max_streams=int(env.get("MUZERO_GRPC_MAX_STREAMS", defaults.max_streams)),
                unary_workers=int(env.get("MUZERO_GRPC_UNARY_WORKERS", defaults.unary_workers)),
                idle_s=float(env.get("MUZERO_GRPC_STREAM_IDLE_S", defaults.idle_s)),
            )
        except ValueError as error:
            raise ValueError(f"MUZERO_GRPC_*: {error}") from None


class Undecodable:
    """What the lenient deserializer hands on in place of a request it could not parse."""

    def __init__(self, type_name: str, size: int):
        self.type_name = type_name
        self.size = size

    def message(self) -> str:
        return f"request: {self.size} bytes that are not a valid {self.type_name} message"


def _lenient(message_class) -> Callable[[bytes], Any]:
    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except (DecodeError, ValueError):
            return Undecodable(message_class.DESCRIPTOR.full_name, len(data))

    return parse


class _Metrics:
    def __init__(self, registry: CollectorRegistry | None, limits: StreamLimits, open_streams: Callable[[], int]):
        registry = registry if registry is not None else CollectorRegistry()
        Gauge("muzero_grpc_stream_limit", "Long-lived streams this server holds at most", registry=registry).set(
            limits.max_streams
        )
        Gauge("muzero_grpc_open_streams", "Streams open now", registry=registry).set_function(open_streams)
        self.refused = Counter(
            "muzero_grpc_refused_streams_total",
            "Streams refused with RESOURCE_EXHAUSTED: every stream slot was taken",
            ["method"],
            registry=registry,
        )
        self.idle_closed = Counter(
            "muzero_grpc_idle_streams_closed_total",
            "Client streams cancelled after sending nothing for the idle limit",
            ["method"],
            registry=registry,
        )
        self.undecodable = Counter(
            "muzero_grpc_undecodable_requests_total",
            "Requests answered INVALID_ARGUMENT because their bytes were not a valid message",
            ["method"],
            registry=registry,
        )
        self.auth_refused = Counter(
            "muzero_grpc_unauthorized_calls_total",
            "Calls refused for a missing or unknown token (UNAUTHENTICATED) or a token without the scope",
            ["method", "reason"],
            registry=registry,
        )
        self.unavailable = Counter(
            "muzero_grpc_store_unavailable_total",
            "Calls answered UNAVAILABLE because the store failed transiently",
            ["method"],
            registry=registry,
        )

    def start_at_zero(self, method: str) -> None:
        """Export every counter of ``method`` from the start, at 0: a rate over a series that
        appears only with its first event reads as "no data" rather than as none."""
        for counter in (self.refused, self.idle_closed, self.undecodable, self.unavailable):
            counter.labels(method)
        for reason in ("missing", "unknown", "scope"):
            self.auth_refused.labels(method, reason)


class _Watched:
    """A client's request stream, noting since when the server has been waiting for its next message."""

    def __init__(self, requests: Iterator, context: grpc.ServicerContext, method: str, guard: Guard):
        self.requests = requests
        self.context = context
        self.method = method
        self.guard = guard
        self.waiting_since: float | None = None

    def __iter__(self):
        while True:
            self.waiting_since = time.monotonic()
            try:
                request = next(self.requests)
            except StopIteration:
                return
            finally:
                self.waiting_since = None
            if isinstance(request, Undecodable):
                self.guard.metrics.undecodable.labels(self.method).inc()
                self.context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message())
            yield request


class Guard:
    """One server's stream slots, idle watch and metrics; wraps each method handler."""

    def __init__(self, limits: StreamLimits, registry: CollectorRegistry | None = None):
        self.limits = limits
        self._lock = threading.Lock()
        self._open = 0
        self._watched: weakref.WeakSet[_Watched] = weakref.WeakSet()
        self.metrics = _Metrics(registry, limits, lambda: self._open)
        self._reaper = threading.Thread(target=self._reap, name="grpc-idle-streams", daemon=True)
        self._reaper.start()

    @property
    def open_streams(self) -> int:
        return self._open

    # --- stream slots ------------------------------------------------------------------------

    def _take_slot(self, context: grpc.ServicerContext, method: str) -> None:
        with self._lock:
            if self._open >= self.limits.max_streams:
                refused = True
            else:
                refused = False
                self._open += 1
        if refused:
            self.metrics.refused.labels(method).inc()
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{method}: this server holds {self.limits.max_streams} streams already "
                "(MUZERO_GRPC_MAX_STREAMS); retry later or add replicas",
            )
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._lock:
                    self._open -= 1

        if not context.add_callback(release):  # the call already ended
            release()

    # --- idle client streams -----------------------------------------------------------------

    def _reap(self) -> None:
        interval = min(self.limits.idle_s / 4, 5.0)
        while True:
            time.sleep(interval)
            now = time.monotonic()
            for watched in list(self._watched):
                since = watched.waiting_since
                if since is not None and now - since > self.limits.idle_s and watched.context.is_active():
                    self.metrics.idle_closed.labels(watched.method).inc()
                    log.info("%s: closing a stream idle for %.0f s", watched.method, now - since)
                    watched.context.cancel()

    # --- wrapping ----------------------------------------------------------------------------

    def handler(
        self, method: MethodDescriptor, behavior: Callable, transient: tuple[type[BaseException], ...]
    ) -> grpc.RpcMethodHandler:
        """The method handler of ``behavior`` (a servicer's bound method) with every guard on."""
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        name = f"{method.containing_service.full_name}/{method.name}"
        guard = self

        def unavailable(context, error: BaseException):
            guard.metrics.unavailable.labels(name).inc()
            log.warning("%s: store unavailable (%s: %s)", name, type(error).__name__, error)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the store is unavailable ({type(error).__name__}); retry")

        def checked(request, context):
            if isinstance(request, Undecodable):
                guard.metrics.undecodable.labels(name).inc()
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message())

        def streamed(responses: Iterator, context) -> Iterator:
            try:
                yield from responses
            except transient as error:
                unavailable(context, error)
            except grpc.RpcError:  # the client's request stream broke (cancelled, idle, gone)
                if context.is_active():
                    raise

        def watched(requests, context) -> _Watched:
            stream = _Watched(requests, context, name, guard)
            guard._watched.add(stream)
            return stream

        if not method.client_streaming and not method.server_streaming:

            def unary_unary(request, context):
                checked(request, context)
                try:
                    return behavior(request, context)
                except transient as error:
                    unavailable(context, error)

            make = grpc.unary_unary_rpc_method_handler
            wrapped: Callable = unary_unary
        elif not method.client_streaming:

            def unary_stream(request, context):
                checked(request, context)
                guard._take_slot(context, name)
                yield from streamed(behavior(request, context), context)

            make = grpc.unary_stream_rpc_method_handler
            wrapped = unary_stream
        elif not method.server_streaming:

            def stream_unary(requests, context):
                guard._take_slot(context, name)
                try:
                    return behavior(iter(watched(requests, context)), context)
                except transient as error:
                    unavailable(context, error)

            make = grpc.stream_unary_rpc_method_handler
            wrapped = stream_unary
        else:

            def stream_stream(requests, context):
                guard._take_slot(context, name)
                yield from streamed(behavior(iter(watched(requests, context)), context), context)

            make = grpc.stream_stream_rpc_method_handler
            wrapped = stream_stream
        return make(
            wrapped, request_deserializer=_lenient(request_class), response_serializer=response_class.SerializeToString
        )

    def add_service(
        self,
        server: grpc.Server,
        servicer: object,
        service: ServiceDescriptor,
        transient: tuple[type[BaseException], ...] = (),
    ) -> None:
        """Register every method of ``service`` (from its descriptor, so none is missed) on ``server``.
        ``transient``: exceptions of the store that mean "retry" (answered UNAVAILABLE)."""
        handlers = {}
        for method in service.methods:
            behavior = getattr(servicer, method.name, None)
            if behavior is None:
                raise TypeError(f"{type(servicer).__name__} does not implement {service.full_name}/{method.name}")
            handlers[method.name] = self.handler(method, behavior, transient)
            self.metrics.start_at_zero(f"{service.full_name}/{method.name}")
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def thread_pool(limits: StreamLimits) -> futures.ThreadPoolExecutor:
    """Enough threads for every stream slot plus the unary reserve."""
    return futures.ThreadPoolExecutor(max_workers=limits.max_streams + limits.unary_workers)
