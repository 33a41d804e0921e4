"""Serving a checkpoint directory over gRPC (``proto/muzero/v1/checkpoint.proto``).

The learner hosts it next to its training loop and calls :meth:`publish` after each
checkpoint it writes; watchers hear about a new version at once (and, for a
directory written by another process, within ``poll_s``). A stream opened on a
version keeps its file open, so pruning that version meanwhile does not cut the
stream short.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from muzero.storage.checkpoint import CheckpointError, CheckpointManager, header_path
from muzero.transport.grpc_util import Server
from muzero.wire.v1 import checkpoint_pb2, checkpoint_pb2_grpc

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Published:
    info: checkpoint_pb2.CheckpointInfo
    path: Path


def read_published(path: Path) -> Published:
    """The info of the checkpoint whose weights are ``path`` (its header is trusted: we wrote it)."""
    header_text = header_path(path).read_text()
    header = json.loads(header_text)
    info = checkpoint_pb2.CheckpointInfo(
        version=int(header["version"]),
        step=int(header["step"]),
        sha256=str(header["sha256"]),
        size=int(header["size_bytes"]),
        header_json=header_text,
        published_unix_s=float(header.get("created_unix", 0)),
    )
    return Published(info, path)


class CheckpointServicer(checkpoint_pb2_grpc.CheckpointServiceServicer):
    def __init__(self, run_dir: str | Path, poll_s: float = 1.0):
        self.manager = CheckpointManager(run_dir)
        self.poll_s = poll_s
        self._condition = threading.Condition()
        self._stopping = False

    # --- called by the learner ---------------------------------------------------------------

    def publish(self) -> None:
        """A new checkpoint was written: wake the watchers."""
        with self._condition:
            self._condition.notify_all()

    def stop(self) -> None:
        """End every Watch stream (server shutdown)."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()

    # --- lookups ---------------------------------------------------------------------------------

    def _all(self) -> list[Published]:
        published = []
        for path in self.manager.checkpoints():
            try:
                published.append(read_published(path))
            except (OSError, ValueError, KeyError):
                continue  # pruned while we looked, or being written
        return published

    def _latest(self) -> Published | None:
        # Headers only: the learner wrote these files atomically, and clients verify the digest.
        for path in reversed(self.manager.checkpoints()):
            try:
                return read_published(path)
            except (OSError, ValueError, KeyError):
                continue
        return None

    def _find(self, version: int) -> Published | None:
        if version == 0:
            return self._latest()
        for published in self._all():
            if published.info.version == version:
                return published
        return None

    # --- RPCs ---------------------------------------------------------------------------------------

    def Latest(self, request, context) -> checkpoint_pb2.CheckpointInfo:
        latest = self._latest()
        if latest is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "no checkpoint published yet")
        return latest.info

    def Fetch(self, request: checkpoint_pb2.FetchRequest, context) -> Iterator[checkpoint_pb2.CheckpointChunk]:
        if request.version < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"version: must be >= 0, got {request.version}")
        published = self._find(request.version)
        if published is None:
            known = ", ".join(str(p.info.version) for p in self._all()) or "none"
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"version: {request.version} is not published (available: {known})"
            )
        info = published.info
        if not 0 <= request.offset <= info.size:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"offset: must be in [0, {info.size}] for version {info.version}, got {request.offset}",
            )
        try:
            handle = open(published.path, "rb")
        except OSError:
            context.abort(grpc.StatusCode.NOT_FOUND, f"version: {info.version} was pruned; fetch a newer one")
        with handle:
            handle.seek(request.offset)
            offset, first = request.offset, True
            while True:
                data = handle.read(CHUNK_BYTES)
                if not data and not first:
                    return
                chunk = checkpoint_pb2.CheckpointChunk(offset=offset, data=data)
                if first:
                    chunk.info.CopyFrom(info)
                    first = False
                yield chunk
                offset += len(data)
                if not data:
                    return

    def Watch(self, request: checkpoint_pb2.WatchRequest, context) -> Iterator[checkpoint_pb2.CheckpointInfo]:
        if request.after_version < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"after_version: must be >= 0, got {request.after_version}")
        announced = request.after_version
        context.add_callback(self.publish)  # a client gone wakes the loop: its slot frees at once
        while context.is_active():
            latest = self._latest()
            if latest is not None and latest.info.version > announced:
                announced = latest.info.version
                yield latest.info
                continue
            with self._condition:
                if self._stopping:
                    return
                self._condition.wait(timeout=self.poll_s)


def add_to_server(server: Server, servicer: CheckpointServicer) -> None:
    server.add_service(servicer, checkpoint_pb2.DESCRIPTOR.services_by_name["CheckpointService"])


__all__ = ["CheckpointServicer", "CheckpointError", "add_to_server", "read_published"]
