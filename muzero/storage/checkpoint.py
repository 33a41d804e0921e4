"""Checkpoints: safetensors weights plus a JSON header, written atomically.

A checkpoint is two files side by side:

- ``NAME.safetensors``: the network's tensors under ``model.`` and, when given,
  the trainer's (optimizer) tensors under ``trainer.``;
- ``NAME.json``: the header: format, config, step, version, the sha256 and size
  of the weights file, creation time, muzero version, trainer metadata, extras.

Both are written to a temporary file in the same directory, flushed, fsynced,
renamed over the final name, and the directory fsynced. The header is written
last, so a header only ever names a complete weights file; loading verifies the
digest before parsing anything. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

import muzero
from muzero.config import ConfigError, ExperimentConfig, from_dict

if TYPE_CHECKING:
    from muzero.learning.learner import Learner

FORMAT = "muzero-checkpoint"
FORMAT_VERSION = 1
MODEL_PREFIX = "model."
TRAINER_PREFIX = "trainer."
LATEST_POINTER = "latest"
_NAME = re.compile(r"^step_(\d+)\.json$")


class CheckpointError(Exception):
    """A checkpoint is missing, incomplete, corrupted or not a muzero checkpoint."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    config: ExperimentConfig
    step: int
    version: int
    state_dict: dict[str, torch.Tensor]  # the network's, ready for load_state_dict
    trainer_state: dict[str, Any] | None  # {"tensors": ..., "meta": ...} as Trainer.state_dict() gives
    header: dict[str, Any]
    path: Path  # the weights file


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}"


def header_path(weights_path: Path) -> Path:
    return weights_path.with_suffix(".json")


def save_checkpoint(
    path: str | os.PathLike,
    network: torch.nn.Module,
    config: ExperimentConfig,
    step: int,
    version: int,
    trainer_state: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint; return the weights file's path.

    ``path`` is a ``.safetensors`` file, or a directory (created if needed) in
    which ``step_000123.safetensors`` is written.
    """
    path = Path(path)
    weights_path = path if path.suffix == ".safetensors" else path / f"{checkpoint_name(step)}.safetensors"
    weights_path.parent.mkdir(parents=True, exist_ok=True)

    tensors = {MODEL_PREFIX + name: tensor.detach().cpu().contiguous() for name, tensor in network.state_dict().items()}
    trainer_meta = None
    if trainer_state is not None:
        tensors.update(
            {
                TRAINER_PREFIX + name: tensor.detach().cpu().contiguous()
                for name, tensor in trainer_state["tensors"].items()
            }
        )
        trainer_meta = trainer_state["meta"]
    payload = safetensors_save(tensors, metadata={"format": FORMAT})
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "weights_file": weights_path.name,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "size_bytes": len(payload),
        "step": int(step),
        "version": int(version),
        "config": config.to_dict(),
        "created": datetime.now(UTC).isoformat(),
        "created_unix": time.time(),
        "muzero_version": muzero.__version__,
        "trainer": trainer_meta,
        "extra": extra or {},
    }
    # Serialise before writing anything: a header that is not JSON-able fails here.
    header_bytes = json.dumps(header, indent=2, sort_keys=True).encode()
    write_atomically(weights_path, payload)
    write_atomically(header_path(weights_path), header_bytes)
    return weights_path


def load_checkpoint(path: str | os.PathLike) -> LoadedCheckpoint:
    """Read and verify a checkpoint given its weights file or its header."""
    header, weights_path = read_header(path)
    payload = _read_verified(weights_path, header)
    try:
        tensors = safetensors_load(payload)
    except SafetensorError as error:
        raise CheckpointError(f"{weights_path}: not a safetensors file: {error}") from None
    try:
        config = from_dict(header["config"])
    except ConfigError as error:
        raise CheckpointError(f"{header_path(weights_path)}: invalid config: {error}") from None
    state_dict = {name[len(MODEL_PREFIX) :]: t for name, t in tensors.items() if name.startswith(MODEL_PREFIX)}
    trainer_state = None
    if header.get("trainer") is not None:
        trainer_state = {
            "meta": header["trainer"],
            "tensors": {
                name[len(TRAINER_PREFIX) :]: t for name, t in tensors.items() if name.startswith(TRAINER_PREFIX)
            },
        }
    return LoadedCheckpoint(
        config=config,
        step=header["step"],
        version=header["version"],
        state_dict=state_dict,
        trainer_state=trainer_state,
        header=header,
        path=weights_path,
    )


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    """Parse and check a checkpoint's header; return it with its weights file's path."""
    path = Path(path)
    json_path = path if path.suffix == ".json" else path.with_suffix(".json")
    try:
        header = json.loads(json_path.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"{json_path}: checkpoint header not found") from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{json_path}: unreadable checkpoint header: {error}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{json_path}: not a {FORMAT} header")
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{json_path}: format_version {header.get('format_version')!r} is not {FORMAT_VERSION}")
    for key, kind in (
        ("weights_file", str),
        ("sha256", str),
        ("size_bytes", int),
        ("step", int),
        ("version", int),
        ("config", dict),
    ):
        if not isinstance(header.get(key), kind):
            raise CheckpointError(f"{json_path}: header field {key!r} missing or not a {kind.__name__}")
    name = header["weights_file"]
    if Path(name).name != name or name in ("", ".", ".."):
        raise CheckpointError(f"{json_path}: weights_file {name!r} must be a plain file name")
    return header, json_path.parent / name


def _read_verified(weights_path: Path, header: dict[str, Any]) -> bytes:
    try:
        payload = weights_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{weights_path}: weights file named by the header not found") from None
    except OSError as error:
        raise CheckpointError(f"{weights_path}: unreadable: {error}") from None
    digest = hashlib.sha256(payload).hexdigest()
    if digest != header["sha256"]:
        raise CheckpointError(
            f"{weights_path}: sha256 mismatch: header says {header['sha256']}, file has {digest} "
            f"({len(payload)} bytes, header says {header['size_bytes']})"
        )
    return payload


def verify_checkpoint(path: str | os.PathLike) -> Path:
    """Check header and digest without parsing tensors; return the weights path or raise CheckpointError."""
    header, weights_path = read_header(path)
    _read_verified(weights_path, header)
    return weights_path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that readers see the old file or the new one, never a part."""
    directory = path.parent
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory file descriptors
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class CheckpointManager:
    """``run_dir/checkpoints/step_NNNNNN.{safetensors,json}``, a ``latest`` pointer, and pruning."""

    def __init__(self, run_dir: str | os.PathLike, keep_last: int = 5):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.directory = Path(run_dir) / "checkpoints"
        self.keep_last = keep_last

    def save(
        self,
        network: torch.nn.Module,
        config: ExperimentConfig,
        step: int,
        version: int,
        trainer_state: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        path = save_checkpoint(self.directory, network, config, step, version, trainer_state, extra)
        pointer = {"weights_file": path.name, "header_file": header_path(path).name, "step": int(step)}
        write_atomically(self.directory / LATEST_POINTER, json.dumps(pointer).encode())
        self._prune(keep=path)
        return path

    def save_learner(self, learner: Learner) -> Path:
        """A checkpoint of the learner at its step: the model that plays (``learner.model``),
        optimizer state, config."""
        return self.save(
            learner.model,
            learner.config,
            step=learner.step,
            version=learner.step,
            trainer_state=learner.trainer_state(),
        )

    def resume_learner(self, learner: Learner) -> int | None:
        """Load the newest verified checkpoint into ``learner``; its step, or None if there is none."""
        latest = self.latest()
        if latest is None:
            return None
        checkpoint = load_checkpoint(latest)
        learner.restore(checkpoint.state_dict, checkpoint.trainer_state)
        return learner.step

    def checkpoints(self) -> list[Path]:
        """Weights paths of the checkpoints that have a header, oldest step first."""
        if not self.directory.is_dir():
            return []
        found = []
        for entry in self.directory.iterdir():
            match = _NAME.match(entry.name)
            if match:
                found.append((int(match.group(1)), entry.with_suffix(".safetensors")))
        return [path for _, path in sorted(found)]

    def latest(self) -> Path | None:
        """The newest checkpoint that passes verification, by a scan of the directory (what the
        checkpoint service announces), then the ``latest`` pointer; None if there is none.
        The pointer is written after the files, so a learner killed between the two would
        otherwise resume behind the version it had already published."""
        candidates = list(reversed(self.checkpoints()))
        try:
            pointer = json.loads((self.directory / LATEST_POINTER).read_bytes())
            candidates.append(self.directory / Path(str(pointer["weights_file"])).name)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        for path in candidates:
            try:
                return verify_checkpoint(path)
            except CheckpointError:
                continue
        return None

    def _prune(self, keep: Path) -> None:
        for path in self.checkpoints()[: -self.keep_last]:
            if path == keep:
                continue
            # Header first: a header must never name a deleted weights file.
            for doomed in (header_path(path), path):
                try:
                    doomed.unlink()
                except FileNotFoundError:
                    pass
