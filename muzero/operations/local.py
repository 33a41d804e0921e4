"""Local mode: self-play, training and evaluation in one process with the embedded store.

The loop keeps the learner at ``training.train_ratio`` samples per environment
step: after each self-play move it trains until the samples drawn catch up
with the steps played (once the store holds ``replay.min_size`` transitions).
The learner is the service's (:class:`~muzero.learning.learner.Learner`), fed
batches made by the same function the replay service uses; only where batches
come from (the embedded store) and where checkpoints go (the run folder) differ.
The acting network is a copy of the learner's, refreshed after every burst
of training, exactly as an actor would swap in a new checkpoint.
"""

from __future__ import annotations

import copy
import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from muzero.acting.evaluation import evaluate_board, evaluate_returns
from muzero.acting.selfplay import EpisodeStats, SelfPlay
from muzero.config import ExperimentConfig
from muzero.envs.vector import make_vector_env
from muzero.learning.batch import batch_from_sample
from muzero.learning.learner import Learner
from muzero.learning.supports import adapt_to_env
from muzero.operations.curves import CurvePoint, LearningCurve
from muzero.operations.progress import Progress
from muzero.operations.scalars import RunScalars
from muzero.storage.checkpoint import CheckpointManager
from muzero.storage.replay.memory import MemoryReplay


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    env_steps: int
    learner_steps: int
    wall_s: float
    curve: list[CurvePoint]
    interrupted: bool
    reached_target_at: CurvePoint | None


RESIGN_LOG_GAMES = 2_000
"""With search.resign, the resignation figures are logged every this many games."""


@dataclass
class ResignTally:
    """Self-play's resignations over a run (``search.resign``)."""

    resignations: int = 0
    checks: int = 0
    wrong: int = 0

    def add(self, stats: EpisodeStats) -> None:
        self.resignations += stats.resignations
        self.checks += stats.resign_checks
        self.wrong += stats.resign_wrong

    def summary(self, games: int) -> str:
        rate = f"{self.wrong / self.checks:.1%}" if self.checks else "none checked yet"
        return (
            f"resignations: {self.resignations:,} of {games:,} games; would-be resignations in games "
            f"played out: {self.checks:,}, wrong: {self.wrong:,} ({rate})"
        )


MODEL_QUALITY_GAMES = 50
"""Random games the learned-model diagnostics run at each evaluation of a board game."""


def model_scalars(config: ExperimentConfig, game, network) -> dict[str, float]:
    """A board game's learned model along random games (muzero/acting/model_quality.py), as
    TensorBoard scalars: errors at depths 1, K and 2K, illegal top moves, missed ends."""
    from muzero.acting.model_quality import model_quality

    oracle = None
    if config.env.id == "tictactoe":
        from muzero.envs.games.tictactoe import MinimaxPlayer

        oracle = MinimaxPlayer(game)
    quality = model_quality(config, game, network, games=MODEL_QUALITY_GAMES, oracle=oracle, seed=0)
    out = {"root_illegal_top_move": quality.root_illegal_preferred, "terminal_missed": quality.terminal_missed}
    if oracle is not None:
        out["prior_optimal"] = quality.prior_optimal
    depths = quality.depths
    for d in {depths[0], depths[config.training.unroll_steps - 1], depths[-1]}:
        out[f"reward_error_depth_{d.depth}"] = d.reward_mae
        out[f"illegal_top_move_depth_{d.depth}"] = d.illegal_preferred
        if oracle is not None:
            out[f"value_error_depth_{d.depth}"] = d.value_mae
        if d.positions_past_end:
            out[f"reward_error_past_end_depth_{d.depth}"] = d.reward_mae_past_end
    return {name: value for name, value in out.items() if value == value}  # NaN: nothing measured


def reanalysis_scalars(reanalysis, replay: MemoryReplay, learner_step: int) -> dict[str, float]:
    """Reanalysis so far, and how fresh the store's targets are: the share of stored segments
    holding reanalysed targets and their mean age in learner steps."""
    versions = np.array(list(replay.targets_versions().values()), dtype=np.int64)
    fresh = versions[versions >= 0]
    return {
        "transitions": float(reanalysis.transitions),
        "stored_share": float(fresh.size / versions.size) if versions.size else 0.0,
        "mean_age_steps": float(learner_step - fresh.mean()) if fresh.size else float("nan"),
    }


def loss_parts(out: dict) -> dict[str, float]:
    """The scalar parts of a learner update's output (losses, grad_norm, learning_rate)."""
    return {key: float(value) for key, value in out.items() if isinstance(value, (int, float))}


def evaluate_point(config: ExperimentConfig, selfplay: SelfPlay, network, seed: int) -> tuple[float, float]:
    """(mean, std) evaluation score: return for single-player envs; for board games
    the score (win 1, draw 0, loss -1) against the game's ``eval_opponent`` (its
    registry spec: minimax for tic-tac-toe, GNU Go for Go when it is installed, plain
    UCT for most games)."""
    from muzero.envs.registry import get_game
    from muzero.transport.gtp_players import register_gnugo

    register_gnugo()  # Go games evaluate against GNU Go where it is installed
    episodes = config.training.eval_episodes
    if selfplay.env.num_players == 1:
        report = evaluate_returns(config, network, episodes, seed)
        return report.mean, report.std
    opponent = get_game(config.env.id).eval_opponent
    result = evaluate_board(config, selfplay.env.game, network, episodes, seed, opponents=(opponent,))[opponent]
    scores = np.array([1.0] * result["wins"] + [0.0] * result["draws"] + [-1.0] * result["losses"])
    return float(scores.mean()), float(scores.std())


def train(config: ExperimentConfig, run_dir: Path, progress: Progress | None = None) -> TrainResult:
    """Run the whole local training job; Ctrl-C stops it cleanly with a last checkpoint.

    The supports are fitted to the env first (``network.supports``), and the config
    written to ``run_dir/config.json`` is the one the run uses, with what was fitted."""
    config, support_fit = adapt_to_env(config)
    training = config.training
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    if training.torch_threads:
        torch.set_num_threads(training.torch_threads)
    torch.manual_seed(training.seed)
    rng = np.random.default_rng(training.seed)
    device = training.device

    shape_env = make_vector_env(config.env.id, 1, training.seed, config.env.max_episode_steps, config.env.wrappers)
    learner = Learner(config, shape_env.observation_shape, shape_env.num_actions)
    model = learner.model  # what plays and is evaluated: the trained network or its weight average
    del shape_env
    acting_network = copy.deepcopy(model)
    selfplay = SelfPlay(config, acting_network, seed=training.seed, device=device)
    replay = MemoryReplay(
        config.replay,
        num_actions=selfplay.env.num_actions,
        observation_shape=selfplay.env.observation_shape,
        frame_stack=config.env.frame_stack,
    )
    reanalysis = None
    if config.reanalyze.local:
        from muzero.acting.reanalyze import LocalReanalysis

        reanalysis = LocalReanalysis(
            config, acting_network, replay, selfplay.env.num_actions, num_players=selfplay.env.num_players
        )
    checkpoints = CheckpointManager(run_dir, keep_last=3)
    curve = LearningCurve(run_dir / "curve.csv")
    scalars = RunScalars(run_dir / "tensorboard")

    progress = progress or Progress(config.name)
    recent_returns: deque[float] = deque(maxlen=20)
    episodes = 0
    samples_trained = 0
    last_loss = None
    clipped: dict[str, float] = {}
    next_eval = training.eval_interval if training.eval_interval else None
    reached: CurvePoint | None = None
    evals_left_after_target = training.evals_after_target
    interrupted = False
    start = time.monotonic()
    last_eval_return = None
    resigns = ResignTally()
    next_resign_log = RESIGN_LOG_GAMES

    def save() -> None:
        checkpoints.save_learner(learner)

    def evaluate() -> CurvePoint:
        nonlocal last_eval_return
        model.eval()
        mean, std = evaluate_point(config, selfplay, model, seed=training.seed + 10_000 + selfplay.env_steps)
        last_eval_return = mean
        episodes_evaluated = training.eval_episodes
        point = CurvePoint(
            env_steps=selfplay.env_steps,
            learner_steps=learner.step,
            wall_s=time.monotonic() - start,
            eval_mean_return=mean,
            eval_std_return=std,
            train_mean_return=float(np.mean(recent_returns)) if recent_returns else float("nan"),
            eval_episodes=episodes_evaluated,
            eval_stderr_return=std / np.sqrt(episodes_evaluated),
        )
        curve.add(point)
        scalars.add_group(
            "eval", {"mean_return": mean, "std": std, "stderr": point.eval_stderr_return}, point.env_steps
        )
        if selfplay.env.num_players == 2 and config.search.model == "learned":
            scalars.add_group("model", model_scalars(config, selfplay.env.game, model), point.env_steps)
        progress.log(
            f"eval at {point.env_steps:,} env steps ({point.wall_s:.0f} s): {mean:.2f} "
            f"(standard error {point.eval_stderr_return:.2f}, std {std:.2f}, {episodes_evaluated} episodes)"
        )
        if config.search.resign:
            progress.log(resigns.summary(episodes))
        if reanalysis is not None:
            figures = reanalysis_scalars(reanalysis, replay, learner.step)
            scalars.add_group("reanalyze", {k: v for k, v in figures.items() if v == v}, point.env_steps)
            progress.log(
                f"reanalysed {reanalysis.transitions:,} transitions; {figures['stored_share']:.0%} of the stored "
                f"segments hold reanalysed targets, {figures['mean_age_steps']:.0f} learner steps old on average"
            )
        return point

    with progress:
        progress.log(support_fit.summary())
        try:
            if config.warm_start.enabled:
                from muzero.operations.warm_start import warm_start  # Go only: GTP, SGF

                warm_start(config, run_dir, learner, replay, rng, progress)
                selfplay.set_weights(model.state_dict(), version=learner.step)
                save()
            while selfplay.env_steps < training.max_env_steps:
                if training.max_wall_s and time.monotonic() - start > training.max_wall_s:
                    progress.log(f"stopping: wall-time limit of {training.max_wall_s:.0f} s reached")
                    break
                segments, stats = selfplay.step()
                for segment in segments:
                    replay.insert(segment)
                episodes += len(stats.returns)
                recent_returns.extend(stats.returns)
                resigns.add(stats)
                if config.search.resign and episodes >= next_resign_log:
                    next_resign_log += RESIGN_LOG_GAMES
                    progress.log(resigns.summary(episodes))

                if replay.num_transitions >= config.replay.min_size:
                    trained_before = learner.step
                    while samples_trained < training.train_ratio * selfplay.env_steps:
                        batch = batch_from_sample(
                            replay.sample(training.batch_size, rng),
                            training,
                            config.env.frame_stack,
                            rng,
                            bootstrap_observations=learner.wants_bootstrap_observations,
                            rules=config.network.rules_heads,
                        )
                        out = learner.train(batch)
                        replay.update_priorities(batch.keys, out["priorities"])
                        scalars.add_loss(loss_parts(out), selfplay.env_steps, learner.step)
                        samples_trained += batch.size
                        last_loss = out["total"]
                        clipped = {
                            key: out[key] for key in ("value_targets_clipped", "reward_targets_clipped") if key in out
                        }
                        if learner.checkpoint_due:
                            save()
                    if learner.step != trained_before:
                        selfplay.set_weights(model.state_dict(), version=learner.step)
                        if reanalysis is not None:
                            reanalysis.run(learner.step)

                if next_eval is not None and selfplay.env_steps >= next_eval:
                    next_eval += training.eval_interval
                    point = evaluate()
                    if reached is not None:
                        evals_left_after_target -= 1
                    elif training.target_return and point.eval_mean_return >= training.target_return:
                        reached = point
                        progress.log(f"target return {training.target_return} reached")
                    if reached is not None and evals_left_after_target <= 0:
                        break

                elapsed = time.monotonic() - start
                if stats.returns:
                    scalars.add("selfplay/mean_return", float(np.mean(recent_returns)), selfplay.env_steps)
                    scalars.add("selfplay/env_steps_per_s", selfplay.env_steps / max(elapsed, 1e-9), selfplay.env_steps)
                    scalars.add(
                        "selfplay/simulations_per_s", selfplay.simulations / max(elapsed, 1e-9), selfplay.env_steps
                    )
                progress.update(
                    env_steps=selfplay.env_steps,
                    episodes=episodes,
                    mean_return=float(np.mean(recent_returns)) if recent_returns else None,
                    eval_return=last_eval_return,
                    learner_steps=learner.step,
                    loss=last_loss,
                    sims_per_s=selfplay.simulations / max(elapsed, 1e-9),
                    env_steps_per_s=selfplay.env_steps / max(elapsed, 1e-9),
                    elapsed_s=elapsed,
                    **clipped,
                )
        except KeyboardInterrupt:
            interrupted = True
            progress.log("interrupted: writing a last checkpoint")
        save()
        if config.search.resign:
            progress.log(resigns.summary(episodes))
        if not curve.points or curve.points[-1].env_steps != selfplay.env_steps:
            if not interrupted and training.eval_interval:
                evaluate()
        scalars.close()
        if curve.points:
            curve.plot(run_dir / "curve.png", title=f"{config.name}: {config.env.id}")
        else:
            curve.plot(run_dir / "curve.png", title=f"{config.name}: no evaluation yet")
    return TrainResult(
        run_dir=run_dir,
        env_steps=selfplay.env_steps,
        learner_steps=learner.step,
        wall_s=time.monotonic() - start,
        curve=list(curve.points),
        interrupted=interrupted,
        reached_target_at=reached,
    )
