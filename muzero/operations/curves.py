"""The learning curve of a run: a CSV appended as evaluations happen, a PNG at the end
(and the same points as TensorBoard scalars, ``muzero.operations.scalars``)."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class CurvePoint:
    env_steps: int
    learner_steps: int
    wall_s: float
    eval_mean_return: float
    eval_std_return: float
    train_mean_return: float
    eval_episodes: int = 0
    eval_stderr_return: float = float("nan")
    """std / sqrt(episodes): the noise of the evaluation's mean, how far two points may
    differ by chance alone (about 2 standard errors either way)."""


class LearningCurve:
    """Rows are flushed one by one, so an interrupted run keeps every evaluation it made."""

    def __init__(self, path: Path):
        self.path = path
        self.points: list[CurvePoint] = []
        with path.open("w", newline="") as file:
            csv.writer(file).writerow([f.name for f in fields(CurvePoint)])

    def add(self, point: CurvePoint) -> None:
        self.points.append(point)
        with self.path.open("a", newline="") as file:
            csv.DictWriter(file, fieldnames=[f.name for f in fields(CurvePoint)]).writerow(asdict(point))

    def plot(self, path: Path, title: str) -> Path:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(7, 4))
        steps = [p.env_steps for p in self.points]
        axis.plot(steps, [p.eval_mean_return for p in self.points], marker="o", label="evaluation (greedy search)")
        axis.fill_between(
            steps,
            [p.eval_mean_return - p.eval_std_return for p in self.points],
            [p.eval_mean_return + p.eval_std_return for p in self.points],
            alpha=0.2,
        )
        axis.plot(steps, [p.train_mean_return for p in self.points], label="self-play (last 20 episodes)")
        axis.set_xlabel("environment steps")
        axis.set_ylabel("return")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend()
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path
