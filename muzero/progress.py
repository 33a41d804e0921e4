"""Live progress for long runs: a rich panel on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

FIELDS = (
    ("env_steps", "env steps", "{:,}"),
    ("episodes", "episodes", "{:,}"),
    ("mean_return", "mean return (last 20)", "{:.1f}"),
    ("eval_return", "last eval return", "{:.1f}"),
    ("learner_steps", "learner steps", "{:,}"),
    ("loss", "loss", "{:.3f}"),
    ("sims_per_s", "simulations/s", "{:,.0f}"),
    ("env_steps_per_s", "env steps/s", "{:,.0f}"),
    ("elapsed_s", "elapsed", "{:.0f} s"),
)


def _format(value: Any, pattern: str) -> str:
    if value is None:
        return "-"
    return pattern.format(value)


class Progress:
    """Call :meth:`update` as often as you like; it redraws at most every ``interval_s``."""

    def __init__(self, title: str, stream: TextIO | None = None, interval_s: float = 1.0, live: bool | None = None):
        self.title = title
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self.live_enabled = self.stream.isatty() if live is None else live
        self._last = 0.0
        self._live: Live | None = None
        self._values: dict[str, Any] = {}

    def __enter__(self) -> "Progress":
        if self.live_enabled:
            self._live = Live(self._table(), console=Console(file=self.stream), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.update(force=True)
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def _table(self) -> Table:
        table = Table(title=self.title, show_header=False)
        for key, label, pattern in FIELDS:
            table.add_row(label, _format(self._values.get(key), pattern))
        return table

    def update(self, force: bool = False, **values: Any) -> None:
        self._values.update(values)
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        if self._live is not None:
            self._live.update(self._table())
        else:
            parts = [f"{label}={_format(self._values.get(key), pattern)}" for key, label, pattern in FIELDS
                     if self._values.get(key) is not None]
            print(f"[{self.title}] " + "  ".join(parts), file=self.stream, flush=True)

    def log(self, message: str) -> None:
        if self._live is not None:
            self._live.console.print(message)
        else:
            print(message, file=self.stream, flush=True)
