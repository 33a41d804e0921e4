"""Frame addresses and blobs: content hashing, compression, and blobs that lie."""

from __future__ import annotations

import numpy as np
import pytest
import zstandard

from muzero.envs.games.tictactoe import TicTacToe
from muzero.storage.replay.frames import RAW, ZSTD, ZSTD_DICT, FrameCodec, FrameDictionary, FrameError, frame_hash


def atari_like_frames(count: int, seed: int = 0) -> np.ndarray:
    """84x84 uint8 screens: a static background with a few moving blocks."""
    rng = np.random.default_rng(seed)
    background = (rng.random((84, 84)) < 0.05).astype(np.uint8) * 90
    frames = np.repeat(background[None], count, axis=0)
    for i in range(count):
        x, y = (3 * i) % 70, (5 * i) % 70
        frames[i, y : y + 8, x : x + 4] = 200
    return frames


def test_hash_depends_on_bytes_dtype_and_shape():
    frame = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert frame_hash(frame) == frame_hash(frame.copy())
    assert len(frame_hash(frame)) == 16
    assert frame_hash(frame) != frame_hash(frame.reshape(4, 3))
    assert frame_hash(frame) != frame_hash(frame.astype(np.int8))
    changed = frame.copy()
    changed[0, 0] = 1
    assert frame_hash(frame) != frame_hash(changed)


def test_round_trip_compresses_screens_and_keeps_tiny_frames_raw():
    codec = FrameCodec(level=3)
    screen = atari_like_frames(1)[0]
    blob = codec.encode(screen)
    assert blob[0] == ZSTD and len(blob) < screen.nbytes / 5
    np.testing.assert_array_equal(codec.decode(blob, screen.shape, screen.dtype), screen)
    tiny = np.array([0.1, -2.0, 3.5, 0.0], dtype=np.float32)  # CartPole: zstd would grow it
    blob = codec.encode(tiny)
    assert blob[0] == RAW and len(blob) == tiny.nbytes + 1
    np.testing.assert_array_equal(codec.decode(blob, (4,), np.float32), tiny)


def tictactoe_observations(games: int, seed: int = 0) -> np.ndarray:
    """Every observation of ``games`` random games, as the env gives them (3x3x3 float32 planes)."""
    game, rng, observed = TicTacToe(), np.random.default_rng(seed), []
    states = game.initial_states(games)
    while not game.is_terminal(states).all():
        live = ~game.is_terminal(states)
        observed.append(game.observe(states[live]))
        actions = np.array([rng.choice(np.flatnonzero(mask)) for mask in game.legal_mask(states[live])])
        states[live] = game.step(states[live], actions)[0]
    return np.concatenate(observed)


def test_dictionary_shrinks_small_frames_and_is_needed_to_decode():
    boards = tictactoe_observations(300)
    dictionary = FrameDictionary.train(boards[:1500], size=2048)
    plain, with_dict = FrameCodec(level=3), FrameCodec(level=3, dictionary=dictionary)
    plain_bytes = sum(len(plain.encode(b)) for b in boards[1500:])
    dict_bytes = sum(len(with_dict.encode(b)) for b in boards[1500:])
    assert dict_bytes < 0.9 * plain_bytes
    blob = with_dict.encode(boards[1550])
    assert blob[0] == ZSTD_DICT
    np.testing.assert_array_equal(with_dict.decode(blob, (3, 3, 3), np.float32), boards[1550])
    with pytest.raises(FrameError, match="dictionary"):
        plain.decode(blob, (3, 3, 3), np.float32)


def test_zstd_bomb_is_refused_before_it_inflates():
    codec = FrameCodec()
    bomb = bytes([ZSTD]) + zstandard.ZstdCompressor().compress(b"\0" * 50_000_000)
    assert len(bomb) < 5_000
    with pytest.raises(FrameError, match="declares 50000000 bytes"):
        codec.decode(bomb, (84, 84), np.uint8)
    # Without a declared size the stream is cut one byte past the expected size.
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"\0" * 50_000_000)
    with pytest.raises(FrameError, match="holds 7057 bytes"):
        codec.decode(bytes([ZSTD]) + unsized, (84, 84), np.uint8)


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"", "empty"),
        (bytes([7]) + b"abc", "unknown encoding 7"),
        (bytes([ZSTD]) + b"not zstd at all", "not a zstd frame"),
        (bytes([RAW]) + b"\0" * 10, "holds 10 bytes"),
        (bytes([ZSTD_DICT]) + b"\1", "truncated"),
    ],
)
def test_corrupt_blobs_are_named(blob, message):
    with pytest.raises(FrameError, match=message):
        FrameCodec().decode(blob, (84, 84), np.uint8)
