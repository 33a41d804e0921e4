"""The search tree as preallocated arrays, and the numba kernels that grow it.

One tree per root, B roots side by side: node records (:data:`NODE`) in an
array of shape (batch_size_max, max_nodes), edge records (:data:`EDGE`) in one of
shape (batch_size_max, max_nodes, num_actions), with max_nodes = num_simulations
+ 1 (the root plus at most one new node per simulation). Node 0 is the root.
The arrays are allocated once and reused by every search; a search over B
roots uses the first B rows. Only the records a search touches are
(re)initialised, so a search costs time proportional to the nodes it creates,
not to the capacity.

Statistics live on the edges, where selection reads them: N(s, a) and
Q(s, a), the mean return through the edge from the point of view of s's
player to move (a running mean, so selection divides by nothing). Returns follow the sign
convention of :mod:`muzero.search.types`: a child's return g becomes
``reward[child] + discount * sign * g`` at its parent, sign = +1 when parent
and child have the same player to move, -1 otherwise.

A node counts its own network evaluation as its first visit (the root too), so
N(s) = 1 + sum_a N(s, a), and the root value is the mean of the root's network
value and the S returns backed up through it.

Embeddings (torch tensors or numpy arrays, opaque to the search) live in an
:class:`EmbeddingStore` on their own device; the kernels only compute the flat
row indices to gather from.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from muzero.search.types import RootInput, StepOutput

NO_CHILD = -1
"""``children[b, n, a]`` of an edge never expanded."""

NO_EXPANSION = -1
"""``expand_action[b]`` of a root whose descent ended on a node that cannot be
expanded (terminal, or with no legal action): nothing is created and the node's
stored value is backed up again."""


EDGE = np.dtype(
    [
        ("q", np.float64),  # Q(s, a): mean return through the edge, for the player to move at s
        ("prior", np.float32),  # P(s, a); 0 at illegal actions
        ("visits", np.int32),  # N(s, a)
        ("child", np.int32),  # the child's node index, NO_CHILD until expanded
        ("legal", np.bool_),
    ],
    align=True,
)
"""One edge (s, a): everything selection reads about a child, in one record."""

NODE = np.dtype(
    [
        ("value", np.float64),  # the model's value for the player to move (0 at terminal nodes)
        ("mean", np.float64),  # V(s): mean of that value and the returns backed up through s
        ("reward", np.float64),  # received by the player who moved into the node
        ("visits", np.int32),  # N(s) = 1 + sum_a N(s, a)
        ("parent", np.int32),  # -1 at the root
        ("parent_action", np.int32),
        ("embedding_slot", np.int32),  # 0 for the root, s + 1 if made by simulation s
        ("to_play", np.int8),
        ("expandable", np.bool_),  # not terminal and with a legal action
    ],
    align=True,
)
"""One node s."""


class TreeArrays(NamedTuple):
    """The trees of up to batch_size_max roots (B). numba kernels take it whole.

    Records rather than one array per field: a descent step touches one node record
    and one cache line of edge records instead of a line in each of seven arrays.
    """

    edges: np.ndarray  # (B, N, A) EDGE
    nodes: np.ndarray  # (B, N) NODE
    node_count: np.ndarray  # (B,) int32
    q_min: np.ndarray  # (B,) float64: smallest Q seen in the tree (for normalisation)
    q_max: np.ndarray  # (B,) float64
    fallback_action: np.ndarray  # (B,) int64: the root's first legal action


class Descent(NamedTuple):
    """Where each root's descent ended; rewritten every simulation."""

    leaf_node: np.ndarray  # (B,) int32: node to expand from, or to back up again
    expand_action: np.ndarray  # (B,) int32: edge to expand, or NO_EXPANSION
    step_action: np.ndarray  # (B,) int64: the action row of the step call
    step_to_play: np.ndarray  # (B,) int8: player to move at the step call's parent
    gather_index: np.ndarray  # (B,) int64: flat embedding row of the step call's parent


class StepArrays(NamedTuple):
    """A StepOutput's arrays in the dtypes the kernels are compiled for."""

    reward: np.ndarray  # (B,) float32
    value: np.ndarray  # (B,) float32
    prior_logits: np.ndarray  # (B, A) float32
    to_play: np.ndarray  # (B,) int8
    legal_mask: np.ndarray  # (B, A) bool
    terminal: np.ndarray  # (B,) bool


# --- kernels shared by every selection rule -------------------------------------------------


@njit(cache=True)
def q_normalizer(q_min, q_max):
    """(offset, scale) such that min(max((q - offset) * scale, 0), 1) min-max normalises Q to
    [0, 1] with one root's tree-wide bounds.

    With no spread yet (fewer than two distinct Q values seen) every Q maps to
    0, the value unvisited children get: nothing distinguishes them yet.
    """
    spread = q_max - q_min
    if not spread > 1e-12:  # also catches the initial (+inf, -inf) bounds
        return 0.0, 0.0
    return q_min, 1.0 / spread


@njit(cache=True)
def normalize_q(q, q_min, q_max):
    """``q`` min-max normalised to [0, 1] (see :func:`q_normalizer`)."""
    offset, scale = q_normalizer(q_min, q_max)
    return min(max((q - offset) * scale, 0.0), 1.0)


@njit(cache=True)
def init_node(tree, b, node, to_play, reward, value, is_terminal, legal_row, parent, parent_action, slot):
    """Node ``node`` of root b: no children, no visits; ``legal_row`` (A,) its legal mask."""
    edges = tree.edges
    has_legal = False
    for a in range(edges.shape[2]):
        edge = edges[b, node, a]
        edge.child = NO_CHILD
        edge.visits = 0
        edge.q = 0.0
        edge.legal = legal_row[a]
        has_legal = has_legal or legal_row[a]
    record = tree.nodes[b, node]
    record.visits = 0
    record.mean = 0.0
    record.value = 0.0 if is_terminal else value
    record.reward = reward
    record.to_play = to_play
    record.expandable = has_legal and not is_terminal
    record.parent = parent
    record.parent_action = parent_action
    record.embedding_slot = slot


@njit(cache=True)
def reset_roots(tree, batch, root_prior, root_legal, root_value, root_to_play):
    """Make node 0 of the first ``batch`` trees the given roots, visited once."""
    for b in range(batch):
        init_node(tree, b, 0, root_to_play[b], 0.0, root_value[b], False, root_legal[b], -1, -1, 0)
        first_legal = -1
        for a in range(tree.edges.shape[2]):
            tree.edges[b, 0, a].prior = root_prior[b, a] if root_legal[b, a] else 0.0
            if first_legal < 0 and root_legal[b, a]:
                first_legal = a
        tree.nodes[b, 0].visits = 1
        tree.nodes[b, 0].mean = tree.nodes[b, 0].value
        tree.node_count[b] = 1
        tree.q_min[b] = np.inf
        tree.q_max[b] = -np.inf
        tree.fallback_action[b] = first_legal


@njit(cache=True)
def finish_descent(tree, descent, b, node, action):
    """Record where root b's descent ended; return 1 if it needs the model, else 0.

    ``action`` is the edge to expand from ``node``, or NO_EXPANSION when the
    descent stopped on a node that cannot be expanded. Such a root still takes a
    row of the batched step call (the search keeps one fixed-size call per
    simulation): it passes the root's own embedding with the root's first legal
    action, and the output is ignored.
    """
    descent.leaf_node[b] = node
    descent.expand_action[b] = action
    if action >= 0:
        descent.step_action[b] = action
        descent.step_to_play[b] = tree.nodes[b, node].to_play
        descent.gather_index[b] = tree.nodes[b, node].embedding_slot * tree.nodes.shape[0] + b
        return 1
    descent.step_action[b] = tree.fallback_action[b]
    descent.step_to_play[b] = tree.nodes[b, 0].to_play
    descent.gather_index[b] = b  # the root's embedding, in slot 0
    return 0


@njit(cache=True)
def expand_and_backup(tree, descent, out, batch, simulation, discount):
    """Add the nodes the model just stepped to, then back up every root's leaf value.

    A terminal child gets value 0 and is never expanded; a child with no legal
    action is a leaf too but keeps the model's value. Priors are the softmax of
    the logits over legal actions only.
    """
    edges, nodes = tree.edges, tree.nodes
    num_actions = edges.shape[2]
    for b in range(batch):
        node = descent.leaf_node[b]
        action = descent.expand_action[b]
        if action >= 0:
            new = tree.node_count[b]
            tree.node_count[b] = new + 1
            edges[b, node, action].child = new
            init_node(
                tree,
                b,
                new,
                out.to_play[b],
                out.reward[b],
                out.value[b],
                out.terminal[b],
                out.legal_mask[b],
                node,
                action,
                simulation + 1,
            )
            max_logit = -np.inf
            for a in range(num_actions):
                if out.legal_mask[b, a] and out.prior_logits[b, a] > max_logit:
                    max_logit = out.prior_logits[b, a]
            total = 0.0
            for a in range(num_actions):
                p = math.exp(out.prior_logits[b, a] - max_logit) if out.legal_mask[b, a] else 0.0
                edges[b, new, a].prior = p
                total += p
            if total > 0.0:
                for a in range(num_actions):
                    edges[b, new, a].prior /= total
            node = new
        # Backup: ``ret`` is the return from ``node``'s player's point of view.
        ret = nodes[b, node].value
        leaf = nodes[b, node]
        leaf.visits += 1
        leaf.mean += (ret - leaf.mean) / leaf.visits
        q_min, q_max = tree.q_min[b], tree.q_max[b]
        while nodes[b, node].parent >= 0:
            child = nodes[b, node]
            up = child.parent
            sign = 1.0 if nodes[b, up].to_play == child.to_play else -1.0
            ret = child.reward + discount * sign * ret
            edge = edges[b, up, child.parent_action]
            edge.visits += 1
            edge.q += (ret - edge.q) / edge.visits  # running means: nothing is divided when selecting
            parent = nodes[b, up]
            parent.visits += 1
            parent.mean += (ret - parent.mean) / parent.visits
            q_min = min(q_min, edge.q)
            q_max = max(q_max, edge.q)
            node = up
        tree.q_min[b] = q_min
        tree.q_max[b] = q_max


@njit(cache=True)
def root_statistics(tree, batch, out_visits, out_q, out_value):
    """Root children's visit counts and Q values (0 where unvisited), and the root value."""
    for b in range(batch):
        for a in range(tree.edges.shape[2]):
            edge = tree.edges[b, 0, a]
            out_visits[b, a] = edge.visits
            out_q[b, a] = edge.q
        out_value[b] = tree.nodes[b, 0].mean


class Kernel:
    """A numba kernel, called through its compiled entry point after the first call.

    Numba's dispatcher re-derives the type of every argument on every call (about
    half a microsecond per array; the tree kernels take some 30 arrays in named
    tuples, twice per simulation). The search always passes the same types: the
    tree's own arrays, step outputs converted to fixed dtypes in C order with
    checked shapes, and Python ints and floats. So the first call goes through
    the dispatcher (typing, compiling or loading from the disk cache) and later
    calls go straight to the compiled overload for those types. The entry point
    does not check types again: only call a Kernel with arguments of fixed types.
    """

    def __init__(self, dispatcher: Any):
        self.dispatcher = dispatcher
        self._entry: Any = None

    def __call__(self, *args: Any) -> Any:
        if self._entry is not None:
            return self._entry(*args)
        result = self.dispatcher(*args)
        types = tuple(self.dispatcher.typeof_pyval(arg) for arg in args)
        self._entry = self.dispatcher.overloads[types].entry_point
        return result


# --- embeddings ------------------------------------------------------------------------------


def _torch_module_of(x: Any):
    """torch, if ``x`` is a torch tensor (torch is only imported by whoever made it)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return torch
    return None


class EmbeddingStore:
    """Per-node embeddings in one buffer on the embeddings' own device.

    The buffer is slot-major: (num_simulations + 1, batch_size_max, *trailing),
    slot 0 holding the roots and slot s + 1 what simulation s's step call
    returned, so writing a simulation's outputs is one contiguous copy and only
    the gather needs indices: node n of root b lives at flat row
    ``embedding_slot[b, n] * batch_size_max + b``. Gathering is one
    ``index_select`` (torch) or ``take`` (numpy) on the flat view, so only the
    (B,) row indices cross to the device. The buffer is allocated on first use
    and again only when the embeddings' kind, device, dtype or trailing shape change.
    """

    def __init__(self, batch_size_max: int, num_slots: int):
        self.batch_size_max = batch_size_max
        self.num_slots = num_slots
        self._slots: Any = None  # (num_slots, batch_size_max, *trailing)
        self._flat: Any = None  # (num_slots * batch_size_max, *trailing) view of the same memory
        self._torch: Any = None
        self._kind: type[Any] | None = None
        self._signature: tuple | None = None
        self.trailing_shape: tuple[int, ...] = ()

    def reset(self, root_embedding: Any, batch: int) -> None:
        """Write the roots' embeddings to slot 0."""
        torch = _torch_module_of(root_embedding)
        if torch is None and not isinstance(root_embedding, np.ndarray):
            raise TypeError(f"root.embedding must be a torch.Tensor or np.ndarray, got {type(root_embedding).__name__}")
        shape = tuple(root_embedding.shape)
        if len(shape) < 1 or shape[0] != batch:
            raise ValueError(f"root.embedding: expected leading dimension {batch} (the batch), got shape {shape}")
        trailing = shape[1:]
        device = root_embedding.device if torch is not None else None
        signature = (type(root_embedding), device, root_embedding.dtype, trailing)
        if signature != self._signature:
            shape = (self.num_slots, self.batch_size_max) + trailing
            if torch is not None:
                self._slots = torch.empty(shape, dtype=root_embedding.dtype, device=device)
            else:
                self._slots = np.empty(shape, dtype=root_embedding.dtype)
            self._flat = self._slots.reshape((self.num_slots * self.batch_size_max,) + trailing)
            self._torch = torch
            self._kind = type(root_embedding)
            self._signature = signature
            self.trailing_shape = trailing
        self.write_slot(0, root_embedding)

    def check(self, embedding: Any, batch: int) -> None:
        """Raise if a step function's embedding does not match the roots'."""
        kind = self._kind
        if kind is None:
            raise RuntimeError("EmbeddingStore.check called before reset (no root embedding stored yet)")
        if type(embedding) is not kind:
            expected, got = kind.__name__, type(embedding).__name__
            raise TypeError(f"step output embedding: expected a {expected} like the root's, got {got}")
        if embedding.shape[0] != batch or tuple(embedding.shape[1:]) != self.trailing_shape:
            raise ValueError(
                f"step output embedding: expected shape {(batch,) + self.trailing_shape}, got {tuple(embedding.shape)}"
            )

    def gather(self, rows: np.ndarray) -> Any:
        """Embeddings at flat ``rows`` (int64, shape (B,))."""
        if self._torch is None:
            return self._flat.take(rows, axis=0)
        index = self._torch.from_numpy(rows).to(self._flat.device)
        with self._torch.no_grad():
            return self._flat.index_select(0, index)

    def write_slot(self, slot: int, embedding: Any) -> None:
        """Store ``embedding`` (B, ...) in rows 0..B-1 of ``slot``."""
        if self._torch is None:
            self._slots[slot, : embedding.shape[0]] = embedding
            return
        with self._torch.no_grad():
            self._slots[slot, : embedding.shape[0]].copy_(embedding)


# --- the tree ---------------------------------------------------------------------------------

DescendFn = Callable[[int, int], int]
"""(batch, simulation index) -> number of roots whose descent needs the model; fills
:class:`SearchTree`.descent."""


def masked_log_softmax(logits: np.ndarray, legal: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax over legal actions; -inf at illegal ones. float64."""
    masked = np.where(legal, logits.astype(np.float64), -np.inf)
    masked = masked - masked.max(axis=1, keepdims=True)
    return masked - np.log(np.exp(masked).sum(axis=1, keepdims=True))


class SearchTree:
    """Preallocated trees for ``batch_size_max`` roots of ``num_simulations + 1`` nodes,
    and the simulation loop every selection rule shares."""

    def __init__(self, num_actions: int, batch_size_max: int, num_simulations: int, discount: float):
        for name, value in (
            ("num_actions", num_actions),
            ("batch_size_max", batch_size_max),
            ("num_simulations", num_simulations),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        self.num_actions = int(num_actions)
        self.batch_size_max = int(batch_size_max)
        self.num_simulations = int(num_simulations)
        self.discount = float(discount)
        rows = self.batch_size_max
        nodes = (rows, self.num_simulations + 1)
        edges = nodes + (self.num_actions,)
        self.arrays = TreeArrays(
            edges=np.zeros(edges, dtype=EDGE),
            nodes=np.zeros(nodes, dtype=NODE),
            node_count=np.zeros(rows, dtype=np.int32),
            q_min=np.full(rows, np.inf),
            q_max=np.full(rows, -np.inf),
            fallback_action=np.zeros(rows, dtype=np.int64),
        )
        self.descent = Descent(
            leaf_node=np.zeros(rows, dtype=np.int32),
            expand_action=np.zeros(rows, dtype=np.int32),
            step_action=np.zeros(rows, dtype=np.int64),
            step_to_play=np.zeros(rows, dtype=np.int8),
            gather_index=np.zeros(rows, dtype=np.int64),
        )
        self.embeddings = EmbeddingStore(rows, self.num_simulations + 1)
        self._expand_and_backup = Kernel(expand_and_backup)
        # Stand-in step outputs for a simulation where no root needs the model.
        self._idle_output = StepArrays(
            np.zeros(rows, np.float32),
            np.zeros(rows, np.float32),
            np.zeros((rows, self.num_actions), np.float32),
            np.zeros(rows, np.int8),
            np.zeros((rows, self.num_actions), np.bool_),
            np.zeros(rows, np.bool_),
        )

    # -- inputs -------------------------------------------------------------------------------

    def check_root(self, root: RootInput) -> int:
        """Validate ``root``; return its batch size B."""
        if not isinstance(root, RootInput):
            raise TypeError(f"root must be a RootInput, got {type(root).__name__}")
        logits = root.prior_logits
        if not isinstance(logits, np.ndarray) or logits.ndim != 2:
            raise ValueError(f"root.prior_logits: expected a (B, {self.num_actions}) array, got {_describe(logits)}")
        batch = logits.shape[0]
        if not 1 <= batch <= self.batch_size_max:
            raise ValueError(f"root.prior_logits: batch {batch} is outside [1, {self.batch_size_max}] (batch_size_max)")
        _expect_shape("root.prior_logits", logits, (batch, self.num_actions))
        _expect_shape("root.value", root.value, (batch,))
        _expect_shape("root.legal_mask", root.legal_mask, (batch, self.num_actions))
        _expect_shape("root.to_play", root.to_play, (batch,))
        if root.legal_mask.dtype != np.bool_:
            raise TypeError(f"root.legal_mask must be a bool array, got dtype {root.legal_mask.dtype}")
        no_legal = np.flatnonzero(~root.legal_mask.any(axis=1))
        if no_legal.size:
            raise ValueError(f"root.legal_mask: roots {no_legal.tolist()} have no legal action")
        if not np.isfinite(np.where(root.legal_mask, logits, 0.0)).all():
            raise ValueError("root.prior_logits: NaN or inf at a legal action")
        if not np.isfinite(root.value).all():
            raise ValueError("root.value: NaN or inf")
        return batch

    def reset(self, root: RootInput, root_prior: np.ndarray, batch: int) -> None:
        """Start a search from ``root`` with root prior probabilities ``root_prior`` (B, A)."""
        reset_roots(
            self.arrays,
            batch,
            np.asarray(root_prior, dtype=np.float32),
            root.legal_mask,
            np.asarray(root.value, dtype=np.float64),
            np.asarray(root.to_play, dtype=np.int8),
        )
        self.embeddings.reset(root.embedding, batch)

    # -- the loop -----------------------------------------------------------------------------

    def simulate(self, batch: int, step_fn: Callable[..., StepOutput], descend: DescendFn, simulation: int) -> None:
        """One simulation for all ``batch`` roots: descend, one step call, expand and back up."""
        needs_model = descend(batch, simulation)
        if needs_model:
            embedding = self.embeddings.gather(self.descent.gather_index[:batch])
            output = step_fn(embedding, self.descent.step_action[:batch], self.descent.step_to_play[:batch])
            arrays = self._step_arrays(output, batch)
            self.embeddings.write_slot(simulation + 1, output.embedding)
        else:
            arrays = self._idle_output
        self._expand_and_backup(self.arrays, self.descent, arrays, batch, simulation, self.discount)

    def _step_arrays(self, output: StepOutput, batch: int) -> tuple[np.ndarray, ...]:
        if type(output) is not StepOutput:
            raise TypeError(f"step_fn must return a StepOutput, got {type(output).__name__}")
        # ascontiguousarray is a no-op for arrays already of the right dtype and layout.
        arrays = StepArrays(
            np.ascontiguousarray(output.reward, dtype=np.float32),
            np.ascontiguousarray(output.value, dtype=np.float32),
            np.ascontiguousarray(output.prior_logits, dtype=np.float32),
            np.ascontiguousarray(output.to_play, dtype=np.int8),
            np.ascontiguousarray(output.legal_mask, dtype=np.bool_),
            np.ascontiguousarray(output.terminal, dtype=np.bool_),
        )
        vector, matrix = (batch,), (batch, self.num_actions)
        shapes = (arrays[0].shape, arrays[1].shape, arrays[2].shape, arrays[3].shape, arrays[4].shape, arrays[5].shape)
        if shapes != (vector, vector, matrix, vector, matrix, vector):
            for name, shape, expected in zip(_STEP_FIELDS, shapes, (vector, vector, matrix, vector, matrix, vector)):
                if shape != expected:
                    raise ValueError(f"step output {name}: expected shape {expected}, got {shape}")
        self.embeddings.check(output.embedding, batch)
        return arrays

    # -- outputs ------------------------------------------------------------------------------

    def principal_variation(self, root: int, action: int, max_length: int) -> list[int]:
        """``action`` at root ``root``, then the most visited child from each node reached."""
        edges = self.arrays.edges
        line = [int(action)]
        node = int(edges[root, 0, action]["child"])
        while node != NO_CHILD and len(line) < max_length:
            visits = edges[root, node]["visits"]
            best = int(np.argmax(visits))
            if visits[best] <= 0:
                break
            line.append(best)
            node = int(edges[root, node, best]["child"])
        return line

    def root_statistics(self, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fresh arrays: visit counts (B, A) int32, Q values (B, A) float32, root value (B,) float32."""
        visits = np.empty((batch, self.num_actions), dtype=np.int32)
        q = np.empty((batch, self.num_actions), dtype=np.float32)
        value = np.empty(batch, dtype=np.float32)
        root_statistics(self.arrays, batch, visits, q, value)
        return visits, q, value


_STEP_FIELDS = ("reward", "value", "prior_logits", "to_play", "legal_mask", "terminal")


def _describe(x: Any) -> str:
    shape = getattr(x, "shape", None)
    return f"{type(x).__name__} of shape {tuple(shape)}" if shape is not None else type(x).__name__


def _expect_shape(name: str, array: Any, shape: tuple[int, ...]) -> None:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array of shape {shape}, got {type(array).__name__}")
    if array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {array.shape}")
