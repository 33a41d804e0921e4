"""Waiting for a condition in tests: poll it, with a generous deadline only as a guard."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    timeout_s: float,
    what: str,
    *,
    interval_s: float = 0.05,
    alive: Callable[[], None] = lambda: None,
) -> T:
    """``condition()``'s first truthy value; TimeoutError naming ``what`` after ``timeout_s``.
    ``alive`` runs before each poll (e.g. to raise when the process waited on has died)."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s} s for {what}")
        time.sleep(interval_s)
