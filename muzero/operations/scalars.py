"""A run's curves as TensorBoard scalars, next to its CSV and PNG.

TensorBoard is what users of muzero-general, LightZero and EfficientZero already
read: ``tensorboard --logdir runs`` shows every run folder's ``tensorboard/``.
Every scalar is plotted against environment steps, the x-axis of ``curve.csv``,
so evaluation, losses and model diagnostics line up in one view. Tags:

- ``eval/mean_return``, ``eval/stderr``, ``eval/std``: each evaluation (for board
  games the score, win 1, draw 0, loss -1, against the game's opponent);
- ``selfplay/mean_return`` (last 20 episodes), ``selfplay/env_steps_per_s``,
  ``selfplay/simulations_per_s``;
- ``loss/<part>``: the learner's loss parts (value, reward, policy, total, and
  whatever the config switches on), averaged over the learner steps since the
  last write; ``learner/steps``;
- ``<group>/<name>``: anything else a caller adds (model diagnostics).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

LOSS_WRITE_STEPS = 50
"""Loss parts are averaged over this many learner steps per scalar point."""


class RunScalars:
    """Writes ``run_dir/tensorboard``; events are flushed on :meth:`close` and every 30 s."""

    def __init__(self, directory: Path):
        from torch.utils.tensorboard import SummaryWriter  # tensorboard's writer: imported only by runs

        self.directory = directory
        self._writer = SummaryWriter(log_dir=str(directory), flush_secs=30)
        self._loss_sums: dict[str, float] = defaultdict(float)
        self._loss_steps = 0
        self._last_steps = (0, 0)

    def add(self, tag: str, value: float, env_steps: int) -> None:
        self._writer.add_scalar(tag, float(value), global_step=int(env_steps))

    def add_group(self, group: str, values: dict[str, float], env_steps: int) -> None:
        for name, value in values.items():
            self.add(f"{group}/{name}", value, env_steps)

    def add_loss(self, parts: dict[str, float], env_steps: int, learner_steps: int) -> None:
        """One learner step's loss parts; every :data:`LOSS_WRITE_STEPS` steps their means are written."""
        for name, value in parts.items():
            self._loss_sums[name] += float(value)
        self._loss_steps += 1
        self._last_steps = (env_steps, learner_steps)
        if self._loss_steps >= LOSS_WRITE_STEPS:
            self._write_losses()

    def _write_losses(self) -> None:
        env_steps, learner_steps = self._last_steps
        self.add_group("loss", {name: total / self._loss_steps for name, total in self._loss_sums.items()}, env_steps)
        self.add("learner/steps", learner_steps, env_steps)
        self._loss_sums.clear()
        self._loss_steps = 0

    def close(self) -> None:
        """Writes the losses of the steps since the last point, then closes the event file."""
        if self._loss_steps:
            self._write_losses()
        self._writer.close()
