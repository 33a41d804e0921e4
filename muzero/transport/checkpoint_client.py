"""Pull checkpoints from a learner's checkpoint service, verified.

``pull`` streams the weights into a temporary file beside the target, hashing as
it goes; a broken stream resumes from the bytes already written; a digest or
size that does not match deletes the temporary file and raises
:class:`~muzero.storage.checkpoint.CheckpointError`. Only a verified file is renamed into
place, then its header, so ``load_checkpoint`` finds either nothing or a whole
checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from muzero.storage.checkpoint import CheckpointError, checkpoint_name, header_path, write_atomically
from muzero.transport.grpc_util import GrpcClient, backoff_delays, call_with_retries
from muzero.wire.v1 import checkpoint_pb2, checkpoint_pb2_grpc

_RESUMABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}


class CheckpointClient(GrpcClient):
    stub_class = checkpoint_pb2_grpc.CheckpointServiceStub

    def latest(self) -> checkpoint_pb2.CheckpointInfo | None:
        """The newest published checkpoint, or None if there is none yet."""
        try:
            return call_with_retries(
                lambda: self._stub.Latest(checkpoint_pb2.LatestRequest(), timeout=self.timeout_s), what="Latest"
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def watch(self, after_version: int = 0) -> Iterator[checkpoint_pb2.CheckpointInfo]:
        """Each newer version as it is published; reconnects with backoff when the stream breaks."""
        delays = backoff_delays()
        while True:
            try:
                for info in self._stub.Watch(checkpoint_pb2.WatchRequest(after_version=after_version)):
                    after_version = info.version
                    delays = backoff_delays()
                    yield info
                return
            except grpc.RpcError as error:
                if error.code() not in _RESUMABLE:
                    raise
                time.sleep(next(delays))

    def pull(self, out_dir: str | os.PathLike, version: int = 0, max_attempts: int = 8) -> Path:
        """Fetch ``version`` (0: the latest) into ``out_dir``; returns the verified weights path."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        temporary = out_dir / f".pull-{os.getpid()}-{time.monotonic_ns()}.partial"
        digest = hashlib.sha256()
        info: checkpoint_pb2.CheckpointInfo | None = None
        received = 0
        delays = backoff_delays()
        try:
            with open(temporary, "wb") as handle:
                for attempt in range(max_attempts):
                    request = checkpoint_pb2.FetchRequest(version=info.version if info else version, offset=received)
                    try:
                        for chunk in self._stub.Fetch(request, timeout=self.timeout_s * 20):
                            if chunk.HasField("info"):
                                if info is not None and (chunk.info.sha256, chunk.info.version) != (
                                    info.sha256,
                                    info.version,
                                ):
                                    raise CheckpointError(f"version {info.version} changed while it was pulled")
                                info = chunk.info
                            if info is None or chunk.offset != received:
                                raise CheckpointError(f"chunk at offset {chunk.offset}, expected {received}")
                            handle.write(chunk.data)
                            digest.update(chunk.data)
                            received += len(chunk.data)
                            if received > info.size:
                                raise CheckpointError(f"received {received} bytes, more than the declared {info.size}")
                        break
                    except grpc.RpcError as error:
                        if error.code() not in _RESUMABLE or attempt == max_attempts - 1:
                            raise
                        time.sleep(next(delays))
                handle.flush()
                os.fsync(handle.fileno())
            if info is None:
                raise CheckpointError(f"{self.target} sent no checkpoint")
            if received != info.size or digest.hexdigest() != info.sha256:
                raise CheckpointError(
                    f"checkpoint version {info.version} failed verification: got {received} bytes "
                    f"with sha256 {digest.hexdigest()}, expected {info.size} bytes with "
                    f"sha256 {info.sha256}; the download was deleted"
                )
            header = json.loads(info.header_json)
            if header.get("sha256") != info.sha256:
                raise CheckpointError("the header's sha256 does not match the one announced")
            weights = out_dir / f"{checkpoint_name(info.step)}.safetensors"
            os.replace(temporary, weights)
            header["weights_file"] = weights.name
            write_atomically(header_path(weights), json.dumps(header, indent=2, sort_keys=True).encode())
            return weights
        finally:
            temporary.unlink(missing_ok=True)
