"""Frames: content addresses and compression of single observations.

A frame is stored once per shard under its content address, a 128-bit BLAKE2b
digest of its dtype, shape and bytes (two frames with the same bytes but a
different shape are different frames). Stored frames are small blobs with a
one-byte header saying how the payload is encoded:

- ``RAW``: the bytes as they are (frames so small that zstd would grow them,
  e.g. CartPole's 16 bytes);
- ``ZSTD``: zstd at the configured level;
- ``ZSTD_DICT``: zstd with a dictionary trained on this experiment's early
  frames; the 4-byte dictionary id follows the header. Dictionaries help
  small frames most (board planes, 84x84 Atari frames of near-identical
  screens), where a plain zstd frame is mostly header and entropy tables.

Decoding never trusts the blob: the caller says which shape and dtype the
frame must have, a blob whose zstd header declares a different size, or which
inflates past that size (a zstd bomb), is rejected before it is expanded.
"""

from __future__ import annotations

import hashlib
import math
import struct
import threading
from dataclasses import dataclass

import numpy as np
import zstandard

HASH_BYTES = 16
RAW, ZSTD, ZSTD_DICT = 0, 1, 2
_DICT_ID = struct.Struct("<I")


class FrameError(ValueError):
    """A frame blob that cannot be what it claims (corrupt, wrong size, unknown dictionary)."""


def frame_hash(frame: np.ndarray) -> bytes:
    """The 16-byte content address of one frame."""
    digest = hashlib.blake2b(digest_size=HASH_BYTES)
    digest.update(f"{frame.dtype.str}{frame.shape}".encode())
    digest.update(np.ascontiguousarray(frame).tobytes())
    return digest.digest()


def frame_hashes(frames: np.ndarray) -> list[bytes]:
    """Content addresses of frames[i] for every i (frames stacked on the first axis)."""
    return [frame_hash(frame) for frame in frames]


@dataclass(frozen=True)
class FrameDictionary:
    """A trained zstd dictionary and its id (zstd's own dictionary id)."""

    dict_id: int
    data: bytes

    @classmethod
    def train(cls, frames: np.ndarray, size: int = 16_384) -> FrameDictionary:
        """Train on a sample of frames (stacked on the first axis); needs a few hundred."""
        samples = [np.ascontiguousarray(frame).tobytes() for frame in frames]
        trained = zstandard.train_dictionary(size, samples)
        return cls(dict_id=trained.dict_id(), data=trained.as_bytes())

    def zstd(self) -> zstandard.ZstdCompressionDict:
        return zstandard.ZstdCompressionDict(self.data)


class FrameCodec:
    """Encode frames to stored blobs and back, with an optional dictionary for small frames.

    Safe to share between threads: zstd contexts are not, so each thread gets its own.
    """

    def __init__(self, level: int = 3, dictionary: FrameDictionary | None = None, dictionary_max_bytes: int = 65_536):
        if not -7 <= level <= 22:
            raise ValueError(f"zstd level must be in [-7, 22], got {level}")
        self.level = level
        self.dictionary = dictionary
        self.dictionary_max_bytes = dictionary_max_bytes
        self._local = threading.local()

    def _contexts(self) -> threading.local:
        local = self._local
        if not hasattr(local, "plain"):
            local.plain = zstandard.ZstdCompressor(level=self.level, write_content_size=True)
            local.with_dict = None
            local.decompress_plain = zstandard.ZstdDecompressor()
            local.decompress_dict = None
            if self.dictionary is not None:
                zstd_dict = self.dictionary.zstd()
                local.with_dict = zstandard.ZstdCompressor(
                    level=self.level, dict_data=zstd_dict, write_content_size=True, write_dict_id=False
                )
                local.decompress_dict = zstandard.ZstdDecompressor(dict_data=zstd_dict)
        return local

    def encode(self, frame: np.ndarray) -> bytes:
        raw = np.ascontiguousarray(frame).tobytes()
        contexts = self._contexts()
        if contexts.with_dict is not None and len(raw) <= self.dictionary_max_bytes:
            blob = bytes([ZSTD_DICT]) + _DICT_ID.pack(self.dictionary.dict_id) + contexts.with_dict.compress(raw)
        else:
            blob = bytes([ZSTD]) + contexts.plain.compress(raw)
        if len(blob) >= len(raw) + 1:
            return bytes([RAW]) + raw
        return blob

    def decode(self, blob: bytes, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The frame of ``shape`` and ``dtype`` stored in ``blob``; FrameError if it is not that."""
        dtype = np.dtype(dtype)
        expected = math.prod(shape) * dtype.itemsize
        if not blob:
            raise FrameError("frame blob is empty")
        kind, payload = blob[0], blob[1:]
        if kind == RAW:
            raw = payload
        elif kind == ZSTD:
            raw = self._inflate(self._contexts().decompress_plain, payload, expected)
        elif kind == ZSTD_DICT:
            if len(payload) < _DICT_ID.size:
                raise FrameError("frame blob is truncated: no dictionary id")
            (dict_id,) = _DICT_ID.unpack_from(payload)
            if self.dictionary is None or dict_id != self.dictionary.dict_id:
                raise FrameError(f"frame blob needs zstd dictionary {dict_id}, which is not known")
            raw = self._inflate(self._contexts().decompress_dict, payload[_DICT_ID.size :], expected)
        else:
            raise FrameError(f"frame blob has unknown encoding {kind}")
        if len(raw) != expected:
            raise FrameError(f"frame holds {len(raw)} bytes, but shape {tuple(shape)} {dtype} needs {expected}")
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    @staticmethod
    def _inflate(decompressor: zstandard.ZstdDecompressor, payload: bytes, expected: int) -> bytes:
        try:
            declared = zstandard.frame_content_size(payload)
        except zstandard.ZstdError as error:
            raise FrameError(f"frame blob is not a zstd frame: {error}") from None
        if declared not in (expected, -1):
            raise FrameError(f"frame declares {declared} bytes, but its shape needs {expected}")
        try:
            # Read at most one byte more than expected: a bomb is cut off, not expanded.
            reader = decompressor.stream_reader(payload)
            raw = reader.read(expected + 1)
        except zstandard.ZstdError as error:
            raise FrameError(f"frame blob is corrupt: {error}") from None
        return raw
