"""A Go engine that speaks GTP version 2, for GoGui, Sabaki, match runners and KGS/OGS bridges.

``muzero gtp CHECKPOINT`` runs :func:`serve` on stdin and stdout. The protocol
(https://www.lysator.liu.se/~gunnar/gtp/gtp2-spec-draft2/gtp2-spec.html): one
command per line, optionally preceded by a numeric id; the answer is ``=[id]
text`` or ``?[id] reason`` followed by an empty line. A malformed or illegal
command is answered ``? reason`` and the engine keeps running.

Besides the standard commands the engine answers KGS's ``kgs-genmove_cleanup``
(a move that never passes while another legal move exists, so dead stones get
captured under area rules) and Leela Zero's ``lz-analyze`` (what Sabaki shows as
live analysis): a line of ``info move V visits N winrate W prior P lcb L order
K pv V V ...`` per interval until the next command arrives, win rates and
priors in units of 1/10000.
"""

from __future__ import annotations

import math
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from muzero.acting.analysis import Analysis, NetworkGoSearcher
from muzero.envs.go import GoRules, parse_vertex, vertex_name
from muzero.envs.go.coords import MAX_SIZE
from muzero.envs.go.kernels import PLAYING as PLAYING_STATUS

PROTOCOL_VERSION = "2"


class GtpCommandError(Exception):
    """A command the engine refuses: its message is the ``? reason`` answer."""


@dataclass
class Clock:
    """GTP's Canadian byo-yomi: main time, then ``byo_yomi`` seconds for each ``stones``
    moves (stones 0: no byo-yomi; main 0 and byo-yomi 0 with stones 0: no time limit)."""

    main_time: float = 0.0
    byo_yomi: float = 0.0
    stones: int = 0
    left: dict[int, tuple[float, int]] = field(default_factory=dict)  # player -> (seconds, stones)

    @property
    def unlimited(self) -> bool:
        return self.main_time == 0 and self.byo_yomi == 0 and self.stones == 0

    def budget(self, player: int, board_points: int, moves_played: int, margin: float) -> float | None:
        """Seconds to spend on the next move, or None without a time limit."""
        if self.unlimited:
            return None
        seconds, stones = self.left.get(player, (self.main_time, 0))
        if stones > 0:  # in byo-yomi: share the period's time among its stones
            return max(0.05, seconds / stones - margin)
        moves_left = max(10.0, 0.5 * board_points - 0.5 * moves_played)  # a rough share of the game
        budget = seconds / moves_left
        if self.stones > 0:
            budget += self.byo_yomi / self.stones  # the main time can lean on the byo-yomi to come
        return max(0.05, min(budget, seconds + (self.byo_yomi if self.stones else 0) - margin))


class GtpEngine:
    """The state of one GTP session and the handler of each command."""

    def __init__(
        self,
        searcher: NetworkGoSearcher,
        size: int = 9,
        komi: float = 7.5,
        *,
        simulations: int = 400,
        resign_threshold: float = 0.05,
        name: str = "muzero",
        version: str = "0.1.0",
        time_margin_s: float = 0.2,
    ):
        if not searcher.supports_size(size):
            raise ValueError(f"the network cannot play {size}x{size}")
        self.searcher = searcher
        self.simulations = simulations
        self.resign_threshold = resign_threshold
        self.name = name
        self.version = version
        self.time_margin_s = time_margin_s
        self.clock = Clock()
        self._new_game(size, komi)
        self.commands: dict[str, Callable[[list[str]], str]] = {
            "protocol_version": lambda args: PROTOCOL_VERSION,
            "name": lambda args: self.name,
            "version": lambda args: self.version,
            "known_command": self._known_command,
            "list_commands": lambda args: "\n".join(sorted(self.commands)),
            "quit": lambda args: "",
            "boardsize": self._boardsize,
            "clear_board": self._clear_board,
            "komi": self._komi,
            "play": self._play,
            "genmove": self._genmove,
            "kgs-genmove_cleanup": self._genmove_cleanup,
            "undo": self._undo,
            "showboard": lambda args: "\n" + self.rules.render(self.state[0]),
            "final_score": lambda args: self.rules.score_text(self.state[0]),
            "final_status_list": self._final_status_list,
            "time_settings": self._time_settings,
            "time_left": self._time_left,
            "lz-analyze": self._unused,  # streamed by serve(); see _analyze
        }

    # --- the game ----------------------------------------------------------------------------

    def _new_game(self, size: int, komi: float) -> None:
        self.rules = GoRules(size, komi)
        self.state = self.rules.initial_states(1)
        self.history: list[np.ndarray] = []

    def _color(self, text: str) -> int:
        word = text.lower()
        if word in ("b", "black"):
            return 0
        if word in ("w", "white"):
            return 1
        raise GtpCommandError(f"invalid color {text!r} (black, b, white or w)")

    def _to_move(self, player: int) -> np.ndarray:
        """The current state with ``player`` to move (GTP lets either colour play at any time,
        and play on after two passes: a finished game is reopened)."""
        state = self.state.copy()
        fields = self.rules.fields
        state[0, fields["TO_PLAY"]] = player
        if state[0, fields["STATUS"]] == PLAYING_STATUS:
            return state
        state[0, fields["STATUS"]] = PLAYING_STATUS
        state[0, fields["PASSES"]] = 0
        return state

    def _apply(self, player: int, action: int) -> None:
        state = self._to_move(player)
        if not self.rules.legal_mask(state)[0, action]:
            raise GtpCommandError("illegal move")
        self.history.append(self.state)
        self.state, _, _ = self.rules.step(state, np.array([action]))

    # --- commands ------------------------------------------------------------------------------

    def _unused(self, args: list[str]) -> str:
        raise GtpCommandError("lz-analyze streams: it is handled by serve()")

    def _known_command(self, args: list[str]) -> str:
        if len(args) != 1:
            raise GtpCommandError("known_command takes one command name")
        return "true" if args[0] in self.commands else "false"

    def _boardsize(self, args: list[str]) -> str:
        if len(args) != 1 or not args[0].isdigit():
            raise GtpCommandError("boardsize takes one integer")
        size = int(args[0])
        if not 2 <= size <= MAX_SIZE or not self.searcher.supports_size(size):
            raise GtpCommandError("unacceptable size")
        self._new_game(size, self.rules.komi)
        return ""

    def _clear_board(self, args: list[str]) -> str:
        self._new_game(self.rules.size, self.rules.komi)
        return ""

    def _komi(self, args: list[str]) -> str:
        try:
            komi = float(args[0]) if len(args) == 1 else math.nan
        except ValueError:
            komi = math.nan
        if not math.isfinite(komi):
            raise GtpCommandError("komi takes one number")
        self.rules = GoRules(self.rules.size, komi)  # the state does not depend on komi
        return ""

    def _play(self, args: list[str]) -> str:
        if len(args) != 2:
            raise GtpCommandError("play takes a color and a vertex")
        player = self._color(args[0])
        try:
            action = parse_vertex(args[1], self.rules.size)
        except ValueError as error:
            raise GtpCommandError(f"invalid vertex: {error}") from None
        self._apply(player, action)
        return ""

    def _genmove(self, args: list[str], cleanup: bool = False) -> str:
        if len(args) != 1:
            raise GtpCommandError("genmove takes a color")
        player = self._color(args[0])
        state = self._to_move(player)
        budget = self.clock.budget(
            player, self.rules.points, int(state[0, self.rules.fields["MOVES"]]), self.time_margin_s
        )
        deadline = None if budget is None else time.monotonic() + budget
        analysis = self.searcher.analyse(
            self.rules, state, max_simulations=self.simulations, deadline=deadline, allow_pass=not cleanup
        )
        if not cleanup and analysis.root_winrate < self.resign_threshold and analysis.simulations > 0:
            return "resign"
        self._apply(player, analysis.best)
        return vertex_name(analysis.best, self.rules.size)

    def _genmove_cleanup(self, args: list[str]) -> str:
        return self._genmove(args, cleanup=True)

    def _undo(self, args: list[str]) -> str:
        if not self.history:
            raise GtpCommandError("cannot undo")
        self.state = self.history.pop()
        return ""

    def _final_status_list(self, args: list[str]) -> str:
        if len(args) != 1 or args[0] not in ("alive", "dead", "seki"):
            raise GtpCommandError("final_status_list takes alive, dead or seki")
        if args[0] != "alive":
            return ""  # Tromp-Taylor: every stone on the board counts; clean-up captures the dead
        board = self.rules.boards(self.state)[0]
        rows, columns = np.nonzero(board)
        return " ".join(vertex_name(int(r) * self.rules.size + int(c), self.rules.size) for r, c in zip(rows, columns))

    def _time_settings(self, args: list[str]) -> str:
        try:
            main_time, byo_yomi, stones = float(args[0]), float(args[1]), int(args[2])
        except (IndexError, ValueError):
            raise GtpCommandError("time_settings takes main_time byo_yomi_time byo_yomi_stones") from None
        if len(args) != 3 or min(main_time, byo_yomi, stones) < 0:
            raise GtpCommandError("time_settings takes three numbers >= 0")
        self.clock = Clock(main_time, byo_yomi, stones)
        return ""

    def _time_left(self, args: list[str]) -> str:
        if len(args) != 3:
            raise GtpCommandError("time_left takes a color, seconds and stones")
        player = self._color(args[0])
        try:
            seconds, stones = float(args[1]), int(args[2])
        except ValueError:
            raise GtpCommandError("time_left takes a color, seconds and stones") from None
        self.clock.left[player] = (seconds, stones)
        return ""

    # --- analysis ------------------------------------------------------------------------------

    def analysis_line(self, analysis: Analysis) -> str:
        size = self.rules.size
        parts = []
        for order, c in enumerate(analysis.candidates):
            if c.visits == 0:
                continue
            winrate = round(10000 * c.winrate)
            # lower confidence bound of the win rate: a rough normal bound, as Leela Zero prints one
            lcb = max(0, round(10000 * (c.winrate - 1.96 * math.sqrt(0.25 / max(1, c.visits)))))
            pv = " ".join(vertex_name(a, size) for a in c.pv)
            parts.append(
                f"info move {vertex_name(c.action, size)} visits {c.visits} winrate {winrate} "
                f"prior {round(10000 * c.prior)} lcb {lcb} order {order} pv {pv}"
            )
        return " ".join(parts)

    def analyze(self, args: list[str], write: Callable[[str], None], interrupted: Callable[[], bool]) -> None:
        """lz-analyze [color] [interval]: search the position and write an info line every
        interval (centiseconds, default 100) until ``interrupted()``."""
        player = int(self.state[0, self.rules.fields["TO_PLAY"]])
        interval_cs = 100
        words = list(args)
        if words and words[0].lower() in ("b", "black", "w", "white"):
            player = self._color(words.pop(0))
        if words and words[0] == "interval":
            words.pop(0)
        if words:
            if not words[0].isdigit():
                raise GtpCommandError(f"invalid interval {words[0]!r}")
            interval_cs = int(words[0])
        state = self._to_move(player)
        if self.rules.is_terminal(state)[0]:
            raise GtpCommandError("the game is over")
        write("=\n")
        self.searcher.analyse(
            self.rules,
            state,
            max_simulations=self.simulations * 1000,
            report=lambda analysis: write(self.analysis_line(analysis) + "\n"),
            report_every_s=max(0.01, interval_cs / 100),
            stop=interrupted,
        )

    # --- one command ---------------------------------------------------------------------------

    def handle(self, line: str) -> tuple[str, bool]:
        """(the answer to one command line, whether to quit). Empty lines and comments get ""."""
        text = line.split("#", 1)[0].replace("\t", " ").strip()
        text = "".join(ch for ch in text if ch >= " " or ch == "\n")
        if not text:
            return "", False
        words = text.split()
        command_id = ""
        if words[0].isdigit():
            command_id = words.pop(0)
            if not words:
                return f"?{command_id} no command\n\n", False
        name, args = words[0], words[1:]
        handler = self.commands.get(name)
        if handler is None:
            return f"?{command_id} unknown command\n\n", False
        try:
            answer = handler(args)
        except GtpCommandError as error:
            return f"?{command_id} {error}\n\n", False
        separator = " " if answer and not answer.startswith("\n") else ""
        return f"={command_id}{separator}{answer}\n\n", name == "quit"


def serve(engine: GtpEngine, stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> int:
    """Answer GTP commands from ``stdin`` until ``quit`` or the end of input."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:  # a reader thread, so a streaming analysis notices the next command
        for line in stdin:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, name="gtp-stdin", daemon=True).start()
    pending: str | None = None
    while True:
        line = pending if pending is not None else lines.get()
        pending = None
        if line is None:
            return 0
        words = line.split("#", 1)[0].split()
        command_id = words[0] if words and words[0].isdigit() else ""
        name = words[1] if command_id and len(words) > 1 else (words[0] if words else "")
        if name == "lz-analyze":
            args = words[2:] if command_id else words[1:]

            def write(text: str) -> None:
                stdout.write(f"={command_id}\n" if text == "=\n" else text)
                stdout.flush()

            def interrupted() -> bool:
                nonlocal pending
                if pending is None:
                    try:
                        pending = lines.get_nowait()
                    except queue.Empty:
                        return False
                return True

            try:
                engine.analyze(args, write, interrupted)
            except GtpCommandError as error:
                stdout.write(f"?{command_id} {error}\n\n")
                stdout.flush()
                continue
            if pending is None:  # the search used its whole budget: the stream ends with the next command
                pending = lines.get()
            stdout.write("\n")
            stdout.flush()
            continue
        answer, quit_now = engine.handle(line)
        if answer:
            stdout.write(answer)
            stdout.flush()
        if quit_now:
            return 0
