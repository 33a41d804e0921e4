"""A client for a Go engine that speaks GTP version 2 over its stdin and stdout (GNU Go, ...).

    with GtpClient(["/usr/games/gnugo", "--mode", "gtp", "--level", "1"]) as engine:
        engine.command("boardsize 9")
        engine.command("play black D4")
        move = engine.command("genmove white")

A command answers the text after "= " or raises :class:`GtpError` with the
engine's "? reason". The protocol: https://www.lysator.liu.se/~gunnar/gtp/
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

GNUGO_CANDIDATES = ("gnugo", "/usr/games/gnugo")
"""Where Debian's gnugo package puts the binary (/usr/games is not on every PATH)."""


class GtpError(RuntimeError):
    """The engine answered "? reason", or stopped answering."""


def find_gnugo() -> str | None:
    """The path of GNU Go's binary, or None when it is not installed (``apt-get install gnugo``)."""
    override = os.environ.get("MUZERO_GNUGO")
    for candidate in (override, *GNUGO_CANDIDATES) if override else GNUGO_CANDIDATES:
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    return None


def gnugo_command(
    size: int, level: int = 1, komi: float = 7.5, *, positional_superko: bool = False, binary: str | None = None
) -> list[str]:
    """The command line of GNU Go as an opponent that counts like Tromp-Taylor: Chinese
    (area) rules, and dead stones played out (``--capture-all-dead``) so area counts apply."""
    binary = binary or find_gnugo()
    if binary is None:
        raise FileNotFoundError("GNU Go is not installed: apt-get install gnugo (or set MUZERO_GNUGO to its path)")
    if not 0 <= level <= 10:
        raise ValueError(f"GNU Go's level must be in [0, 10], got {level}")
    command = [binary, "--mode", "gtp", "--boardsize", str(size), "--komi", f"{komi:g}", "--level", str(level)]
    command += ["--chinese-rules", "--capture-all-dead"]
    if positional_superko:
        command.append("--positional-superko")
    return command


class GtpClient:
    """One engine process; commands are answered in order, one at a time."""

    def __init__(self, command: Sequence[str], *, stderr: int | None = subprocess.DEVNULL):
        self.command_line = list(command)
        self._process = subprocess.Popen(
            self.command_line,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
        )

    def command(self, text: str) -> str:
        """Send one command; return the engine's answer (without "= "), or raise GtpError."""
        if "\n" in text:
            raise ValueError(f"a GTP command is one line, got {text!r}")
        process = self._process
        if process.stdin is None or process.stdout is None or process.poll() is not None:
            raise GtpError(f"{self.command_line[0]} is not running (exit status {process.poll()})")
        try:
            process.stdin.write(text + "\n")
            process.stdin.flush()
        except BrokenPipeError as error:
            raise GtpError(f"{self.command_line[0]} closed its input") from error
        lines = []
        while True:
            line = process.stdout.readline()
            if not line:
                raise GtpError(f"{self.command_line[0]} stopped answering after {text!r}")
            line = line.rstrip("\r\n")
            if not line and lines:
                break
            if line or lines:
                lines.append(line)
        answer = "\n".join(lines)
        if answer.startswith("="):
            return answer[1:].strip()
        if answer.startswith("?"):
            raise GtpError(f"{text!r}: {answer[1:].strip()}")
        raise GtpError(f"{text!r}: not a GTP answer: {answer!r}")

    def close(self) -> None:
        process = self._process
        if process.poll() is None:
            try:
                self.command("quit")
            except GtpError:
                pass
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> GtpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
