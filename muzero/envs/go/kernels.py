"""The numba kernels of Go's rules on bitboards: legal moves, one move, the area count.

Each kernel runs over a batch of states (one int64 row per game, laid out as
:mod:`muzero.envs.go.layout` says) with a per-board loop compiled to machine
code; the ``_parallel`` variants spread the boards of a big batch over the
cores in chunks, each chunk with its own scratch arrays.

A group is found by flooding: grow a seed by its neighbours (four shifts of
the bitboard) within the stones of its colour until it stops growing; its
liberties are its neighbours that are empty. A state also carries, per colour,
the stones whose group is in atari (one liberty), which each move updates for
the few groups it touches: the stone's own, their groups next to it, and the
groups next to what it removed. So a legal-move mask is a few whole-board word
operations (a move breathes next to an empty point, their stone in atari or my
stone not in atari) and floods only their groups in atari, for the hash of
what a capture removes, once a repetition is possible.

Nothing here validates: :class:`muzero.envs.go.rules.GoRules` checks input
once and calls these. A kernel reports what was wrong with a move as an error
code per game, and the caller raises.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from muzero.envs.go.layout import BLOOM_WORDS, FIELDS_AFTER_BOARD, HISTORY_MOVES

# Status codes (state[STATUS]).
PLAYING, ENDED_BY_PASSES, ENDED_AT_MOVE_CAP, BLACK_RESIGNED, WHITE_RESIGNED = 0, 1, 2, 3, 4

# Error codes of the step kernels, per game.
OK, ERR_FINISHED, ERR_OCCUPIED, ERR_SUICIDE, ERR_KO, ERR_SUPERKO = 0, 1, 2, 3, 4, 5

CHUNK = 64
"""Boards per parallel work item: enough that scratch allocation is noise."""
NINE_BY_NINE_WORDS = 2
"""The word count (9x9's) the per-board loops are also compiled for as a constant, so LLVM
unrolls every bitboard loop: 1.3x to 1.4x per board, for a first compile of 9x9's kernels
of 172 s on two cores, once per numba cache (the kernels before the copy took 50 s)."""
BLOOM_SHIFTS = (54, 40)
"""Each hash sets the filter bits its bits [54, 64) and [40, 50) name."""

_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_WORD_BITS = np.uint64(64)


def _ctpop(typingctx, x):
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        function = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(function, args)

    return types.uint64(types.uint64), codegen


_popcount: Any = intrinsic(_ctpop)  # (Any: type checkers cannot see through numba's intrinsics)
_trailing_zeros: Any = trailing_zeros


@njit(cache=True, inline="always")
def _bit_count(v):
    """Set bits of a uint64, as int64 (LLVM's ctpop: one POPCNT instruction on x86-64)."""
    return np.int64(_popcount(v))


@njit(cache=True, inline="always")
def _low_bit_index(v):
    """Index of the lowest set bit of a non-zero uint64, as int64."""
    return np.int64(_trailing_zeros(v))


@njit(cache=True, inline="always")
def _offsets(words):
    """(to_play, passes, moves, ko, status, hash, captures, last_moves, bloom, history)."""
    base = 4 * words  # after the two bitboards and the two atari bitboards
    last = base + FIELDS_AFTER_BOARD
    bloom = last + HISTORY_MOVES
    return base, base + 1, base + 2, base + 3, base + 4, base + 5, base + 6, last, bloom, bloom + BLOOM_WORDS


# --- bitboards ---------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _adjacent(x, out, words, stride, on_board):
    """out = the points next to a point of x (x's own points only where they are next to another)."""
    s = np.uint64(stride)
    back = _WORD_BITS - s
    for i in range(words):
        v = (x[i] << _ONE) | (x[i] >> _ONE) | (x[i] << s) | (x[i] >> s)
        if i > 0:
            v |= (x[i - 1] >> np.uint64(63)) | (x[i - 1] >> back)
        if i + 1 < words:
            v |= (x[i + 1] << np.uint64(63)) | (x[i + 1] << back)
        out[i] = v & on_board[i]


@njit(cache=True, inline="always")
def _dilate(x, out, words, stride, on_board):
    """out = x and the points next to it."""
    _adjacent(x, out, words, stride, on_board)
    for i in range(words):
        out[i] |= x[i]


@njit(cache=True, inline="always")
def _flood(seed, within, group, grown, words, stride, on_board):
    """group = the points of ``within`` connected to ``seed`` (a subset of it) through ``within``."""
    for i in range(words):
        group[i] = seed[i]
    while True:
        _dilate(group, grown, words, stride, on_board)
        changed = False
        for i in range(words):
            v = grown[i] & within[i]
            changed = changed or v != group[i]
            group[i] = v
        if not changed:
            return


@njit(cache=True, inline="always")
def _liberties(group, empty, grown, words, stride, on_board):
    """(count, bit of one liberty or -1) of ``group``; ``grown`` ends as its liberties."""
    _adjacent(group, grown, words, stride, on_board)
    count = 0
    bit = -1
    for i in range(words):
        v = grown[i] & empty[i]
        grown[i] = v
        if v != _ZERO:
            count += _bit_count(v)
            bit = i * 64 + _low_bit_index(v)
    return count, bit


@njit(cache=True, inline="always")
def _group_hash(group, words, zobrist_bits, color):
    h = np.int64(0)
    for i in range(words):
        v = group[i]
        while v != _ZERO:
            h ^= zobrist_bits[i * 64 + _low_bit_index(v), color]
            v &= v - _ONE
    return h


@njit(cache=True, inline="always")
def _lowest_bit(x, seed, words):
    """seed = the lowest set bit of x (x must not be empty)."""
    found = False
    for i in range(words):
        if not found and x[i] != _ZERO:
            seed[i] = x[i] & (~x[i] + _ONE)
            found = True
        else:
            seed[i] = _ZERO


@njit(cache=True, inline="always")
def _single_bit(x, words):
    for i in range(words):
        if x[i] != _ZERO:
            return i * 64 + _low_bit_index(x[i])
    return -1


@njit(cache=True, inline="always")
def _any(x, words):
    for i in range(words):
        if x[i] != _ZERO:
            return True
    return False


@njit(cache=True, inline="always")
def _bloom_bits(h):
    """The filter's two bits for hash h (two bits: a 9x9 game's filter answers "maybe" for
    under 3% of new positions, against 15% with one)."""
    mask = BLOOM_WORDS * 64 - 1
    return (h >> BLOOM_SHIFTS[0]) & mask, (h >> BLOOM_SHIFTS[1]) & mask


@njit(cache=True, inline="always")
def _seen_before(state, h, moves, bloom, history):
    """The board of hash ``h`` is one of the positions after moves 0..``moves``."""
    first, second = _bloom_bits(h)
    if (state[bloom + (first >> 6)] >> (first & 63)) & 1 == 0:
        return False
    if (state[bloom + (second >> 6)] >> (second & 63)) & 1 == 0:
        return False
    for i in range(moves + 1):
        if state[history + i] == h:
            return True
    return False


# The rows of a kernel's (SCRATCH_ROWS, words) uint64 scratch array.
MINE, THEIRS, EMPTY, BREATHE, REMAINING, SEED, GROUP, GROWN, MY_ATARI, THEIR_ATARI, REMOVED = range(11)
SCRATCH_ROWS = 11


@njit(cache=True, inline="always")
def _atari_offset(words, color):
    """Where the atari bitboard of ``color`` (0 Black, 1 White) starts in a state."""
    return (2 + color) * words


# --- legal moves --------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _legal_one(
    state,
    mask,
    words,
    stride,
    on_board,
    point_of_bit,
    zobrist_bits,
    allow_suicide,
    positional,
    scratch,
    capture_hash,
    touched,
):
    """Fill ``mask`` (points + pass) for one state."""
    points = mask.shape[0] - 1
    to_play, _, moves_at, ko_at, status_at, hash_at, captures_at, _, bloom, history = _offsets(words)
    if state[status_at] != PLAYING:
        for p in range(points + 1):
            mask[p] = False
        return
    me = state[to_play]  # 0 Black, 1 White: also the zobrist column
    mine, theirs, empty, breathe = scratch[MINE], scratch[THEIRS], scratch[EMPTY], scratch[BREATHE]
    remaining, seed, group, grown = scratch[REMAINING], scratch[SEED], scratch[GROUP], scratch[GROWN]
    my_atari_at, their_atari_at = _atari_offset(words, me), _atari_offset(words, 1 - me)
    for i in range(words):
        mine[i] = np.uint64(state[me * words + i])
        theirs[i] = np.uint64(state[(1 - me) * words + i])
        empty[i] = on_board[i] & ~(mine[i] | theirs[i])
    # A stone breathes (is not suicide) next to an empty point; next to their group in atari,
    # whose last liberty it fills, so it captures; and next to my group not in atari, which
    # keeps another liberty.
    _adjacent(empty, breathe, words, stride, on_board)
    for i in range(words):
        remaining[i] = np.uint64(state[their_atari_at + i])
        seed[i] = remaining[i] | (mine[i] & ~np.uint64(state[my_atari_at + i]))
    _adjacent(seed, grown, words, stride, on_board)
    for i in range(words):
        breathe[i] |= grown[i]
    # Until a stone leaves the board every position holds the one before it, so a move that
    # fills a point (empty in all of them) cannot repeat one: no superko test is needed.
    repeats_possible = positional and state[captures_at] + state[captures_at + 1] != 0
    h = state[hash_at]
    n_touched = 0
    if repeats_possible:  # the hash of the stones a move on each capture point takes
        while _any(remaining, words):
            _lowest_bit(remaining, seed, words)
            _flood(seed, theirs, group, grown, words, stride, on_board)
            for i in range(words):
                remaining[i] &= ~group[i]
            _, bit = _liberties(group, empty, grown, words, stride, on_board)
            if bit >= 0:  # always, in a state whose atari bitboards are true
                if capture_hash[bit] == 0:
                    touched[n_touched] = bit
                    n_touched += 1
                capture_hash[bit] ^= _group_hash(group, words, zobrist_bits, 1 - me)
    ko = state[ko_at]
    moves = state[moves_at]
    for p in range(points):
        mask[p] = False
    for i in range(words):
        v = empty[i]
        while v != _ZERO:
            bit = i * 64 + _low_bit_index(v)
            v &= v - _ONE
            p = point_of_bit[bit]
            if (breathe[i] >> np.uint64(bit & 63)) & _ONE:
                if repeats_possible:
                    new_hash = h ^ zobrist_bits[bit, me] ^ capture_hash[bit]
                    mask[p] = not _seen_before(state, new_hash, moves, bloom, history)
                else:
                    mask[p] = positional or p != ko
            elif allow_suicide:  # the stone and my groups in atari it joins leave the board
                if positional:  # no new point is filled, so always tested
                    for k in range(words):
                        seed[k] = _ZERO
                    seed[i] = _ONE << np.uint64(bit & 63)
                    _adjacent(seed, grown, words, stride, on_board)
                    for k in range(words):
                        seed[k] = grown[k] & mine[k]
                    _flood(seed, mine, group, grown, words, stride, on_board)
                    mask[p] = not _seen_before(
                        state, h ^ _group_hash(group, words, zobrist_bits, me), moves, bloom, history
                    )
                else:
                    mask[p] = p != ko
    mask[points] = True  # a pass is always legal
    for j in range(n_touched):
        capture_hash[touched[j]] = 0


@njit(cache=True)
def _legal_range(states, masks, lo, hi, words, stride, on_board, point_of_bit, zobrist_bits, allow_suicide, positional):
    bits = words * 64
    scratch = np.empty((SCRATCH_ROWS, words), dtype=np.uint64)
    capture_hash = np.zeros(bits, dtype=np.int64)
    touched = np.empty(bits, dtype=np.int64)
    # The same loop twice, the first with a constant word count so LLVM unrolls the bitboard
    # loops. Written out, not shared through an inlined helper: that made the first compile
    # 1.7x longer.
    if words == NINE_BY_NINE_WORDS:
        for b in range(lo, hi):
            _legal_one(
                states[b],
                masks[b],
                NINE_BY_NINE_WORDS,
                stride,
                on_board,
                point_of_bit,
                zobrist_bits,
                allow_suicide,
                positional,
                scratch,
                capture_hash,
                touched,
            )
    else:
        for b in range(lo, hi):
            _legal_one(
                states[b],
                masks[b],
                words,
                stride,
                on_board,
                point_of_bit,
                zobrist_bits,
                allow_suicide,
                positional,
                scratch,
                capture_hash,
                touched,
            )


@njit(cache=True)
def legal_kernel(states, masks, words, stride, on_board, point_of_bit, zobrist_bits, allow_suicide, positional):
    """masks[b] = the legal moves of states[b], for every b."""
    _legal_range(
        states,
        masks,
        0,
        states.shape[0],
        words,
        stride,
        on_board,
        point_of_bit,
        zobrist_bits,
        allow_suicide,
        positional,
    )


@njit(cache=True, parallel=True)
def legal_kernel_parallel(
    states, masks, words, stride, on_board, point_of_bit, zobrist_bits, allow_suicide, positional
):
    """legal_kernel with chunks of CHUNK boards spread over the cores."""
    n = states.shape[0]
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        _legal_range(
            states,
            masks,
            chunk * CHUNK,
            min(n, (chunk + 1) * CHUNK),
            words,
            stride,
            on_board,
            point_of_bit,
            zobrist_bits,
            allow_suicide,
            positional,
        )


# --- one move --------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _area_difference(black, white, words, stride, on_board, scratch):
    """Tromp-Taylor area, Black's minus White's: stones plus the empty points that reach
    stones of one colour only (through empty points)."""
    empty, seed, reach_black, reach_white, grown = (
        scratch[EMPTY],
        scratch[SEED],
        scratch[GROUP],
        scratch[REMAINING],
        scratch[GROWN],
    )
    for i in range(words):
        empty[i] = on_board[i] & ~(black[i] | white[i])
    _adjacent(black, seed, words, stride, on_board)
    for i in range(words):
        seed[i] &= empty[i]
    _flood(seed, empty, reach_black, grown, words, stride, on_board)
    _adjacent(white, seed, words, stride, on_board)
    for i in range(words):
        seed[i] &= empty[i]
    _flood(seed, empty, reach_white, grown, words, stride, on_board)
    difference = 0
    for i in range(words):
        difference += _bit_count(black[i] | (reach_black[i] & ~reach_white[i]))
        difference -= _bit_count(white[i] | (reach_white[i] & ~reach_black[i]))
    return difference


@njit(cache=True, inline="always")
def _leave_atari(removed, stones, atari, seed, group, grown, words, stride, on_board):
    """Take the groups of ``stones`` next to the ``removed`` points out of ``atari``: each
    gained a liberty there, and kept the one it had."""
    _adjacent(removed, grown, words, stride, on_board)
    for i in range(words):
        seed[i] = grown[i] & atari[i]
    if _any(seed, words):
        _flood(seed, stones, group, grown, words, stride, on_board)
        for i in range(words):
            atari[i] &= ~group[i]


@njit(cache=True, inline="always")
def _step_one(
    state,
    out,
    action,
    words,
    stride,
    on_board,
    bit_of_point,
    point_of_bit,
    zobrist_bits,
    allow_suicide,
    positional,
    move_cap,
    komi,
    scratch,
):
    """Play ``action`` from ``state`` into ``out`` (a copy of it). Returns (error, reward)."""
    points = bit_of_point.shape[0]
    to_play, passes_at, moves_at, ko_at, status_at, hash_at, captures_at, last, bloom, history = _offsets(words)
    if state[status_at] != PLAYING:
        return ERR_FINISHED, 0.0
    me = state[to_play]
    moves = state[moves_at]
    h = state[hash_at]
    new_ko = -1
    mine, theirs, empty = scratch[MINE], scratch[THEIRS], scratch[EMPTY]
    remaining, seed, group, grown = scratch[REMAINING], scratch[SEED], scratch[GROUP], scratch[GROWN]
    my_atari, their_atari, removed = scratch[MY_ATARI], scratch[THEIR_ATARI], scratch[REMOVED]
    my_atari_at, their_atari_at = _atari_offset(words, me), _atari_offset(words, 1 - me)
    if action == points:
        out[passes_at] = state[passes_at] + 1
    else:
        bit = bit_of_point[action]
        word, mask = bit >> 6, _ONE << np.uint64(bit & 63)
        for i in range(words):
            mine[i] = np.uint64(state[me * words + i])
            theirs[i] = np.uint64(state[(1 - me) * words + i])
        if ((mine[word] | theirs[word]) & mask) != _ZERO:
            return ERR_OCCUPIED, 0.0
        if not positional and action == state[ko_at]:
            return ERR_KO, 0.0
        mine[word] |= mask
        h ^= zobrist_bits[bit, me]
        for i in range(words):
            my_atari[i] = np.uint64(state[my_atari_at + i])
            their_atari[i] = np.uint64(state[their_atari_at + i])
            empty[i] = on_board[i] & ~(mine[i] | theirs[i])
            seed[i] = _ZERO
            removed[i] = _ZERO
        seed[word] = mask
        _adjacent(seed, remaining, words, stride, on_board)  # the new stone's neighbours
        joins_atari = False  # the stone joins a group of mine in atari
        for i in range(words):
            joins_atari = joins_atari or (remaining[i] & my_atari[i]) != _ZERO
            remaining[i] &= theirs[i]
        # Their groups next to the stone lost a liberty: none left is a capture, one is atari.
        captured = 0
        captured_bit = -1
        while _any(remaining, words):
            _lowest_bit(remaining, seed, words)
            _flood(seed, theirs, group, grown, words, stride, on_board)
            libs, _ = _liberties(group, empty, grown, words, stride, on_board)
            size = 0
            for i in range(words):
                remaining[i] &= ~group[i]
                size += _bit_count(group[i])
            if libs == 0:
                h ^= _group_hash(group, words, zobrist_bits, 1 - me)
                for i in range(words):
                    theirs[i] &= ~group[i]
                    their_atari[i] &= ~group[i]
                    empty[i] |= group[i]
                    removed[i] |= group[i]
                captured += size
                if size == 1:
                    captured_bit = _single_bit(group, words)
            elif libs == 1:
                for i in range(words):
                    their_atari[i] |= group[i]
        if captured:  # my groups next to the captured stones gained a liberty
            _leave_atari(removed, mine, my_atari, remaining, group, grown, words, stride, on_board)
        # The stone's own group. Two empty neighbours: it has two liberties, no flood needed
        # unless it joins a group in atari (which it takes out of atari).
        for i in range(words):
            seed[i] = _ZERO
        seed[word] = mask
        libs, _ = _liberties(seed, empty, grown, words, stride, on_board)
        size = 1
        if libs < 2 or joins_atari:
            _flood(seed, mine, group, grown, words, stride, on_board)
            libs, _ = _liberties(group, empty, grown, words, stride, on_board)
            size = 0
            for i in range(words):
                size += _bit_count(group[i])
        else:
            for i in range(words):
                group[i] = seed[i]
        suicided = 0
        if libs == 0:  # only when nothing was captured: captured points would be liberties
            if not allow_suicide:
                return ERR_SUICIDE, 0.0
            h ^= _group_hash(group, words, zobrist_bits, me)
            for i in range(words):
                mine[i] &= ~group[i]
                my_atari[i] &= ~group[i]
            suicided = size
            # their groups next to my removed stones gained a liberty
            _leave_atari(group, theirs, their_atari, remaining, seed, grown, words, stride, on_board)
        elif libs == 1:
            for i in range(words):
                my_atari[i] |= group[i]
        else:
            for i in range(words):
                my_atari[i] &= ~group[i]
        if positional and _seen_before(state, h, moves, bloom, history):
            return ERR_SUPERKO, 0.0
        if captured == 1 and size == 1 and libs == 1:  # a single stone took a single stone: ko
            new_ko = point_of_bit[captured_bit]
        for i in range(words):
            out[me * words + i] = np.int64(mine[i])
            out[(1 - me) * words + i] = np.int64(theirs[i])
            out[my_atari_at + i] = np.int64(my_atari[i])
            out[their_atari_at + i] = np.int64(their_atari[i])
        out[captures_at + me] += captured
        out[captures_at + 1 - me] += suicided
        out[passes_at] = 0
    moves += 1
    out[to_play] = 1 - me
    out[moves_at] = moves
    out[ko_at] = new_ko
    out[hash_at] = h
    for i in range(HISTORY_MOVES - 1, 0, -1):
        out[last + i] = state[last + i - 1]
    out[last] = action
    out[history + moves] = h
    first, second = _bloom_bits(h)
    out[bloom + (first >> 6)] |= np.int64(1) << (first & 63)
    out[bloom + (second >> 6)] |= np.int64(1) << (second & 63)
    if out[passes_at] >= 2:
        out[status_at] = ENDED_BY_PASSES
    elif moves >= move_cap:
        out[status_at] = ENDED_AT_MOVE_CAP
    else:
        return OK, 0.0
    for i in range(words):
        mine[i] = np.uint64(out[i])  # Black
        theirs[i] = np.uint64(out[words + i])  # White
    black_margin = _area_difference(mine, theirs, words, stride, on_board, scratch) - komi
    if black_margin == 0:
        return OK, 0.0
    return OK, (1.0 if (black_margin > 0) == (me == 0) else -1.0)


@njit(cache=True)
def _step_range(
    states,
    actions,
    out,
    errors,
    rewards,
    lo,
    hi,
    words,
    stride,
    on_board,
    bit_of_point,
    point_of_bit,
    zobrist_bits,
    allow_suicide,
    positional,
    move_cap,
    komi,
):
    scratch = np.empty((SCRATCH_ROWS, words), dtype=np.uint64)
    if words == NINE_BY_NINE_WORDS:  # as in _legal_range
        for b in range(lo, hi):
            out[b] = states[b]
            errors[b], rewards[b] = _step_one(
                states[b],
                out[b],
                actions[b],
                NINE_BY_NINE_WORDS,
                stride,
                on_board,
                bit_of_point,
                point_of_bit,
                zobrist_bits,
                allow_suicide,
                positional,
                move_cap,
                komi,
                scratch,
            )
    else:
        for b in range(lo, hi):
            out[b] = states[b]
            errors[b], rewards[b] = _step_one(
                states[b],
                out[b],
                actions[b],
                words,
                stride,
                on_board,
                bit_of_point,
                point_of_bit,
                zobrist_bits,
                allow_suicide,
                positional,
                move_cap,
                komi,
                scratch,
            )


@njit(cache=True)
def step_kernel(
    states,
    actions,
    out,
    errors,
    rewards,
    words,
    stride,
    on_board,
    bit_of_point,
    point_of_bit,
    zobrist_bits,
    allow_suicide,
    positional,
    move_cap,
    komi,
):
    """out[b] = states[b] after actions[b], or states[b] with errors[b] saying why the move is refused."""
    _step_range(
        states,
        actions,
        out,
        errors,
        rewards,
        0,
        states.shape[0],
        words,
        stride,
        on_board,
        bit_of_point,
        point_of_bit,
        zobrist_bits,
        allow_suicide,
        positional,
        move_cap,
        komi,
    )


@njit(cache=True, parallel=True)
def step_kernel_parallel(
    states,
    actions,
    out,
    errors,
    rewards,
    words,
    stride,
    on_board,
    bit_of_point,
    point_of_bit,
    zobrist_bits,
    allow_suicide,
    positional,
    move_cap,
    komi,
):
    """step_kernel with chunks of CHUNK boards spread over the cores."""
    n = states.shape[0]
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        _step_range(
            states,
            actions,
            out,
            errors,
            rewards,
            chunk * CHUNK,
            min(n, (chunk + 1) * CHUNK),
            words,
            stride,
            on_board,
            bit_of_point,
            point_of_bit,
            zobrist_bits,
            allow_suicide,
            positional,
            move_cap,
            komi,
        )


@njit(cache=True)
def _area_range(states, differences, lo, hi, words, stride, on_board):
    scratch = np.empty((SCRATCH_ROWS, words), dtype=np.uint64)
    black = np.empty(words, dtype=np.uint64)
    white = np.empty(words, dtype=np.uint64)
    for b in range(lo, hi):
        for i in range(words):
            black[i] = np.uint64(states[b, i])
            white[i] = np.uint64(states[b, words + i])
        differences[b] = _area_difference(black, white, words, stride, on_board, scratch)


@njit(cache=True)
def area_kernel(states, differences, words, stride, on_board):
    """differences[b] = Black's Tromp-Taylor area minus White's in states[b]."""
    _area_range(states, differences, 0, states.shape[0], words, stride, on_board)


@njit(cache=True, parallel=True)
def area_kernel_parallel(states, differences, words, stride, on_board):
    n = states.shape[0]
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        _area_range(states, differences, chunk * CHUNK, min(n, (chunk + 1) * CHUNK), words, stride, on_board)


PARALLEL_FROM = 4 * CHUNK
"""Batches of at least this many boards take the parallel kernels."""


@njit(cache=True)
def _first_invalid_range(states, lo, hi, words, on_board, move_cap, points):
    to_play, passes_at, moves_at, ko_at, status_at, _, _, _, _, _ = _offsets(words)
    for b in range(lo, hi):
        row = states[b]
        for i in range(words):
            black, white = np.uint64(row[i]), np.uint64(row[words + i])
            if (black & white) != _ZERO or ((black | white) & ~on_board[i]) != _ZERO:
                return b
            black_atari, white_atari = np.uint64(row[2 * words + i]), np.uint64(row[3 * words + i])
            if (black_atari & ~black) != _ZERO or (white_atari & ~white) != _ZERO:
                return b
        if not (0 <= row[to_play] <= 1 and 0 <= row[passes_at] <= 2 and 0 <= row[moves_at] <= move_cap):
            return b
        if not (-1 <= row[ko_at] < points and PLAYING <= row[status_at] <= WHITE_RESIGNED):
            return b
    return -1


@njit(cache=True)
def first_invalid(states, words, on_board, move_cap, points):
    """The index of the first row of ``states`` that is not a Go state of this layout, or -1.

    The quick pass of GoRules.check_states (its numpy path names what is wrong)."""
    return _first_invalid_range(states, 0, states.shape[0], words, on_board, move_cap, points)


@njit(cache=True, parallel=True)
def first_invalid_parallel(states, words, on_board, move_cap, points):
    """first_invalid with chunks of CHUNK boards spread over the cores (-1 or some invalid row)."""
    n = states.shape[0]
    chunks = (n + CHUNK - 1) // CHUNK
    found = np.full(chunks, -1, dtype=np.int64)
    for chunk in prange(chunks):
        found[chunk] = _first_invalid_range(
            states, chunk * CHUNK, min(n, (chunk + 1) * CHUNK), words, on_board, move_cap, points
        )
    for chunk in range(chunks):
        if found[chunk] >= 0:
            return found[chunk]
    return -1
