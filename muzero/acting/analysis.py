"""Analysing one Go position with a network and pUCT: what the GTP engine plays and shows.

:class:`NetworkGoSearcher` searches in steps (a few simulations at a time) so it
can stop at a deadline, at a caller's signal, or after a simulation budget, and
report the candidates (visits, win rate, prior, principal variation) as it goes.
By default the search steps through the true rules (the network gives priors
and values); ``model="learned"`` searches inside the network's own dynamics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from muzero.envs.go import GoRules
from muzero.nn.board import BoardNetwork
from muzero.nn.networks import MuZeroNetwork
from muzero.search.mcts import MCTS
from muzero.search.step_fns import LearnedModel, NetworkEvaluator, SimulatorModel
from muzero.search.types import RootInput, StepFn

CHUNK_SIMULATIONS = 8
"""Simulations between two looks at the clock and the stop signal."""


@dataclass
class Candidate:
    action: int
    visits: int
    winrate: float
    """For the player to move, in [0, 1]."""
    prior: float
    pv: list[int]
    """The principal variation, starting with ``action``."""


@dataclass
class Analysis:
    """What a search found at one position, the most visited move first."""

    candidates: list[Candidate]
    root_winrate: float
    simulations: int

    @property
    def best(self) -> int:
        return self.candidates[0].action


class NetworkGoSearcher:
    """Searches Go positions with ``network`` (trained on boards of ``size``).

    ``analyse(rules, state, ...)`` searches ``state`` (1, L): at most
    ``max_simulations`` simulations, until ``time.monotonic() >= deadline`` (None:
    no clock) or ``stop()`` returns true; ``report(analysis)`` runs every
    ``report_every_s`` seconds; the pass is left out unless ``allow_pass`` or it
    is the only legal move.
    """

    def __init__(
        self,
        network: MuZeroNetwork,
        size: int,
        *,
        model: str = "simulator",
        device: str = "cpu",
        pb_c_init: float = 1.25,
        pb_c_base: float = 19652.0,
        tree_simulations: int = 4096,
    ):
        if model not in ("simulator", "learned"):
            raise ValueError(f"model must be 'simulator' or 'learned', got {model!r}")
        self.network = network.eval()
        self.size = size
        self.model = model
        self.device = device
        self.pb_c_init = pb_c_init
        self.pb_c_base = pb_c_base
        self.tree_simulations = tree_simulations
        self._searches: dict[int, MCTS] = {}

    def supports_size(self, size: int) -> bool:
        """Any size for a board network (fully convolutional); only its own board for others,
        whose heads are sized for it."""
        return size == self.size or isinstance(self.network, BoardNetwork)

    def _search(self, num_actions: int) -> MCTS:
        if num_actions not in self._searches:
            self._searches[num_actions] = MCTS(
                num_actions, 1, self.tree_simulations, 1.0, pb_c_init=self.pb_c_init, pb_c_base=self.pb_c_base
            )
        return self._searches[num_actions]

    @torch.inference_mode()
    def analyse(
        self,
        rules: GoRules,
        state: np.ndarray,
        *,
        max_simulations: int,
        deadline: float | None = None,
        allow_pass: bool = True,
        report: Callable[[Analysis], None] | None = None,
        report_every_s: float | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> Analysis:
        legal = rules.legal_mask(state)
        if not legal.any():
            raise ValueError("analyse: the game is over")
        if not allow_pass and legal[0, : rules.points].any():
            legal[0, rules.pass_action] = False
        step_fn: StepFn
        if self.model == "simulator":
            simulator = SimulatorModel(rules, NetworkEvaluator(rules, self.network, self.device))
            root = simulator.initial(state)
            step_fn = simulator
        else:
            learned = LearnedModel(self.network, self.device, num_players=2)
            root = learned.initial(rules.observe(state), legal, rules.to_play(state))
            step_fn = learned
        root = RootInput(root.prior_logits, root.value, root.embedding, legal, root.to_play)
        search = self._search(rules.num_actions)
        search.start(root, np.random.default_rng(0), add_noise=False)
        budget = min(max_simulations, search.num_simulations)
        next_report = time.monotonic() + report_every_s if report_every_s is not None else None
        while search.simulations_done < budget:
            search.simulate(step_fn, min(CHUNK_SIMULATIONS, budget - search.simulations_done))
            now = time.monotonic()
            if report is not None and next_report is not None and now >= next_report:
                report(self._analysis(search, legal[0]))
                next_report = now + (report_every_s or 0.0)
            if (deadline is not None and now >= deadline) or (stop is not None and stop()):
                break
        analysis = self._analysis(search, legal[0])
        if report is not None:
            report(analysis)
        return analysis

    def _analysis(self, search: MCTS, legal: np.ndarray) -> Analysis:
        visits, q, root_value, prior = search.statistics()
        order = sorted(np.flatnonzero(legal), key=lambda a: (-int(visits[0, a]), -float(prior[0, a])))
        candidates = [
            Candidate(
                action=int(a),
                visits=int(visits[0, a]),
                winrate=float((q[0, a] + 1) / 2) if visits[0, a] else float((root_value[0] + 1) / 2),
                prior=float(prior[0, a]),
                pv=search.principal_variation(0, int(a)) if visits[0, a] else [int(a)],
            )
            for a in order
        ]
        return Analysis(candidates, float((root_value[0] + 1) / 2), search.simulations_done)
