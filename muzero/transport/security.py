"""Transport security: TLS (optionally mutual) on every port, bearer tokens with scopes.

Servers read PEM files named by the environment (the chart mounts them from Secrets):

    MUZERO_TLS_CERT, MUZERO_TLS_KEY   serve TLS with this chain and key; both files are read
                                      again when they change (cert-manager renews in place),
                                      for every new connection, without a restart
    MUZERO_TLS_CLIENT_CA              also require client certificates signed by this CA (mTLS)
    MUZERO_TOKENS_FILE                require a bearer token on every call but health; one
                                      token per line: ``NAME SCOPE TOKEN`` (``#`` comments);
                                      re-read when it changes, so tokens rotate without a restart

A SCOPE is ``all``, ``read`` (the checkpoint service's Latest, Fetch and Watch: what an
outside client pulling models needs) or a comma-separated list of full method names
(``muzero.v1.ReplayService/Stats``). Tokens are compared in constant time; a refusal names
the token's NAME, never the token. The health service answers without a token, so probes
work.

Clients read MUZERO_TLS_CA (verify the server against this CA; the system's roots if unset
and MUZERO_TLS=1), MUZERO_TLS_SERVER_NAME (the name to verify, when it is not the target's
host), MUZERO_TLS_CLIENT_CERT / MUZERO_TLS_CLIENT_KEY (for mTLS) and MUZERO_TOKEN.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger("muzero.grpc.security")

HEALTH_PREFIX = "/grpc.health.v1.Health/"
READ_METHODS = frozenset(
    {
        "muzero.v1.CheckpointService/Latest",
        "muzero.v1.CheckpointService/Fetch",
        "muzero.v1.CheckpointService/Watch",
    }
)


class SecurityError(ValueError):
    """A TLS or token setting that cannot work; the text names the setting."""


def _read(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SecurityError(f"{what}: cannot read {path}: {error.strerror}") from None
    if not data.strip():
        raise SecurityError(f"{what}: {path} is empty")
    return data


class _Watched:
    """The contents of some files, read again when any of them changes (mtime, size or inode)."""

    def __init__(self, paths: dict[str, str], check_every_s: float = 1.0):
        self.paths = paths
        self.check_every_s = check_every_s
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._checked = 0.0
        self.contents: dict[str, bytes] = {}
        self.refresh(force=True)

    def _stat(self) -> tuple:
        stamps = []
        for path in self.paths.values():
            try:
                st = os.stat(path)
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def refresh(self, force: bool = False) -> bool:
        """Re-read the files if they changed; True if the contents are new."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._checked < self.check_every_s:
                return False
            self._checked = now
            stamp = self._stat()
            if not force and stamp == self._stamp:
                return False
            contents = {what: _read(path, what) for what, path in self.paths.items()}
            self._stamp, self.contents = stamp, contents
            return True


# --- tokens ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    name: str
    methods: frozenset[str] | None  # None: every method
    secret: bytes

    def allows(self, method: str) -> bool:
        return self.methods is None or method in self.methods


def parse_tokens(text: str, source: str = "tokens") -> list[Token]:
    tokens, names = [], set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3:
            raise SecurityError(f"{source} line {number}: expected 'NAME SCOPE TOKEN', got {len(parts)} fields")
        name, scope, secret = parts
        if name in names:
            raise SecurityError(f"{source} line {number}: token name {name!r} appears twice")
        if len(secret) < 16:
            raise SecurityError(f"{source} line {number}: token {name!r} is shorter than 16 characters")
        names.add(name)
        if scope == "all":
            methods = None
        elif scope == "read":
            methods = READ_METHODS
        else:
            methods = frozenset(m.strip().lstrip("/") for m in scope.split(","))
            bad = sorted(m for m in methods if m.count("/") != 1)
            if bad:
                raise SecurityError(
                    f"{source} line {number}: scope of {name!r}: expected all, read or Service/Method names, "
                    f"got {bad[0][:80]!r}"
                )
        tokens.append(Token(name, methods, secret.encode()))
    if not tokens:
        raise SecurityError(f"{source}: no tokens (an empty file would lock every client out)")
    return tokens


def _bearer(metadata) -> bytes | None:
    for key, value in metadata or ():
        if key == "authorization":
            text = value if isinstance(value, str) else value.decode("latin-1")
            scheme, _, credential = text.partition(" ")
            if scheme.lower() == "bearer" and credential:
                return credential.strip().encode("latin-1", "replace")
            return b""
    return None


def _match(tokens: list[Token], presented: bytes) -> Token | None:
    """The token equal to ``presented``; every token is compared, in constant time each."""
    found = None
    for token in tokens:
        if hmac.compare_digest(token.secret, presented):
            found = token
    return found


def _refusing(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that only refuses."""

    def refuse(request_or_iterator, context):
        context.abort(code, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


class TokenInterceptor(grpc.ServerInterceptor):
    """Checks the bearer token of every call but health against the tokens file."""

    def __init__(self, tokens_file: str, on_refusal: Callable[[str, str], None] = lambda method, why: None):
        self.file = _Watched({"tokens": tokens_file})
        self._tokens = parse_tokens(self.file.contents["tokens"].decode(), tokens_file)
        self.on_refusal = on_refusal

    def tokens(self) -> list[Token]:
        try:
            if self.file.refresh():
                self._tokens = parse_tokens(self.file.contents["tokens"].decode(), self.file.paths["tokens"])
                log.info("tokens file changed: %d tokens", len(self._tokens))
        except SecurityError as error:  # keep serving the last good tokens; say why once per change
            log.error("tokens file not reloaded: %s", error)
        return self._tokens

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        handler = continuation(handler_call_details)
        if handler is None or method.startswith(HEALTH_PREFIX):
            return handler
        presented = _bearer(handler_call_details.invocation_metadata)
        if presented is None:
            self.on_refusal(method.lstrip("/"), "missing")
            return _refusing(handler, grpc.StatusCode.UNAUTHENTICATED, "a bearer token is required (authorization)")
        token = _match(self.tokens(), presented)
        if token is None:
            self.on_refusal(method.lstrip("/"), "unknown")
            return _refusing(handler, grpc.StatusCode.UNAUTHENTICATED, "the bearer token is not valid")
        if not token.allows(method.lstrip("/")):
            self.on_refusal(method.lstrip("/"), "scope")
            return _refusing(
                handler, grpc.StatusCode.PERMISSION_DENIED, f"token {token.name!r} may not call {method.lstrip('/')}"
            )
        return handler


# --- server -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSecurity:
    cert_file: str | None = None
    key_file: str | None = None
    client_ca_file: str | None = None
    tokens_file: str | None = None

    def __post_init__(self):
        if bool(self.cert_file) != bool(self.key_file):
            raise SecurityError("MUZERO_TLS_CERT and MUZERO_TLS_KEY: set both or neither")
        if self.client_ca_file and not self.cert_file:
            raise SecurityError("MUZERO_TLS_CLIENT_CA: client certificates need TLS (set MUZERO_TLS_CERT and _KEY)")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServerSecurity:
        env = os.environ if environ is None else environ
        return cls(
            cert_file=env.get("MUZERO_TLS_CERT") or None,
            key_file=env.get("MUZERO_TLS_KEY") or None,
            client_ca_file=env.get("MUZERO_TLS_CLIENT_CA") or None,
            tokens_file=env.get("MUZERO_TOKENS_FILE") or None,
        )

    @property
    def tls(self) -> bool:
        return bool(self.cert_file)

    def check(self) -> None:
        """Read every file now, so a wrong path or an empty Secret stops the process at start."""
        for what, path in (
            ("MUZERO_TLS_CERT", self.cert_file),
            ("MUZERO_TLS_KEY", self.key_file),
            ("MUZERO_TLS_CLIENT_CA", self.client_ca_file),
        ):
            if path:
                _read(path, what)
        if self.tokens_file:
            parse_tokens(_read(self.tokens_file, "MUZERO_TOKENS_FILE").decode(), self.tokens_file)

    def describe(self) -> str:
        """For the start-up log line: what is on, never a secret."""
        parts = ["TLS" + (" with client certificates" if self.client_ca_file else "") if self.tls else "plaintext"]
        parts.append("tokens required" if self.tokens_file else "no tokens")
        return ", ".join(parts)

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if not self.tls:
            return None
        paths = {"MUZERO_TLS_CERT": self.cert_file, "MUZERO_TLS_KEY": self.key_file}
        if self.client_ca_file:
            paths["MUZERO_TLS_CLIENT_CA"] = self.client_ca_file
        files = _Watched(paths)

        def configuration() -> grpc.ServerCertificateConfiguration:
            c = files.contents
            return grpc.ssl_server_certificate_configuration(
                [(c["MUZERO_TLS_KEY"], c["MUZERO_TLS_CERT"])], root_certificates=c.get("MUZERO_TLS_CLIENT_CA")
            )

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            # Called by gRPC at each new connection's handshake: a renewed file is served from
            # the next connection on. A half-written renewal keeps the previous pair serving.
            try:
                return configuration() if files.refresh() else None
            except SecurityError as error:
                log.error("certificate not reloaded: %s", error)
                return None

        return grpc.dynamic_ssl_server_credentials(
            configuration(), fetch, require_client_authentication=bool(self.client_ca_file)
        )

    def interceptors(self, on_refusal: Callable[[str, str], None] = lambda method, why: None) -> list:
        return [TokenInterceptor(self.tokens_file, on_refusal)] if self.tokens_file else []


# --- client -------------------------------------------------------------------------------------


class _TokenClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the token to every call, over TLS or plaintext (gRPC's call credentials need TLS)."""

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details):
        metadata = [*(details.metadata or ()), self._header]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: list | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None


@dataclass(frozen=True)
class ClientSecurity:
    tls: bool = False
    ca_file: str | None = None
    server_name: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None

    def __post_init__(self):
        if bool(self.cert_file) != bool(self.key_file):
            raise SecurityError("MUZERO_TLS_CLIENT_CERT and MUZERO_TLS_CLIENT_KEY: set both or neither")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ClientSecurity:
        env = os.environ if environ is None else environ
        ca = env.get("MUZERO_TLS_CA") or None
        return cls(
            tls=bool(ca) or env.get("MUZERO_TLS", "") in ("1", "true", "yes"),
            ca_file=ca,
            server_name=env.get("MUZERO_TLS_SERVER_NAME") or None,
            cert_file=env.get("MUZERO_TLS_CLIENT_CERT") or None,
            key_file=env.get("MUZERO_TLS_CLIENT_KEY") or None,
            token=env.get("MUZERO_TOKEN") or None,
        )

    def check(self) -> None:
        for what, path in (
            ("MUZERO_TLS_CA", self.ca_file),
            ("MUZERO_TLS_CLIENT_CERT", self.cert_file),
            ("MUZERO_TLS_CLIENT_KEY", self.key_file),
        ):
            if path:
                _read(path, what)

    def with_overrides(self, *, ca_file: str | None = None, token: str | None = None) -> ClientSecurity:
        """These settings with a command line's --ca / --token on top."""
        return ClientSecurity(
            tls=self.tls or bool(ca_file),
            ca_file=ca_file or self.ca_file,
            server_name=self.server_name,
            cert_file=self.cert_file,
            key_file=self.key_file,
            token=token or self.token,
        )

    def channel(self, target: str, options: list) -> grpc.Channel:
        options = list(options)
        if self.tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(self.ca_file, "MUZERO_TLS_CA") if self.ca_file else None,
                private_key=_read(self.key_file, "MUZERO_TLS_CLIENT_KEY") if self.key_file else None,
                certificate_chain=_read(self.cert_file, "MUZERO_TLS_CLIENT_CERT") if self.cert_file else None,
            )
            if self.server_name:
                options.append(("grpc.ssl_target_name_override", self.server_name))
            channel = grpc.secure_channel(target, credentials, options=options)
        else:
            channel = grpc.insecure_channel(target, options=options)
        if self.token:
            channel = grpc.intercept_channel(channel, _TokenClientInterceptor(self.token))
        return channel
