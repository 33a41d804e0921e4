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


CLIPPED_FIELDS = (("value_targets_clipped", "value"), ("reward_targets_clipped", "reward"))
"""Optional: the loss's fractions of targets outside their support, shown only when one is nonzero."""


def _format(value: Any, pattern: str) -> str:
    if value is None:
        return "-"
    return pattern.format(value)


def _percent(fraction: float) -> str:
    # Two significant digits, so a small but nonzero share never reads as 0%.
    return f"{100 * fraction:.2g}%"


def clipped_targets_text(values: dict[str, Any]) -> str | None:
    """The "clipped targets" row, e.g. "value 0.3%, reward 0%", while any target is clipped; else None."""
    shown = [(label, values.get(key)) for key, label in CLIPPED_FIELDS]
    if not any(fraction for _, fraction in shown):
        return None
    return ", ".join(f"{label} {_percent(fraction)}" for label, fraction in shown if fraction is not None)


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

    def __enter__(self) -> Progress:
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
        clipped = clipped_targets_text(self._values)
        if clipped is not None:
            table.add_row("clipped targets", clipped)
        return table

    def update(self, force: bool = False, **values: Any) -> None:
        """Set any of FIELDS' keys, and optionally value_targets_clipped / reward_targets_clipped
        (fractions, as the loss reports them: a "clipped targets" row appears while one is nonzero)."""
        self._values.update(values)
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        if self._live is not None:
            self._live.update(self._table())
        else:
            parts = [
                f"{label}={_format(self._values.get(key), pattern)}"
                for key, label, pattern in FIELDS
                if self._values.get(key) is not None
            ]
            clipped = clipped_targets_text(self._values)
            if clipped is not None:
                parts.append(f"clipped targets={clipped}")
            print(f"[{self.title}] " + "  ".join(parts), file=self.stream, flush=True)

    def log(self, message: str) -> None:
        if self._live is not None:
            self._live.console.print(message)
        else:
            print(message, file=self.stream, flush=True)
