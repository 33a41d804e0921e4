"""The bounded chaos run: every kind of process killed with SIGKILL under load, nothing acknowledged lost.

``benchmarks/chaos.py`` for 75 s with a kill every 8-11 s (seed 0: Redis shard 1,
actor 0, the learner, the replay front, the reanalyze worker, the learner again),
each restarted 1-3 s later on the same ports and folders, over a small store
(capacity 2,000 transitions) so that evictions happen too. The run's own bars (its
exit status) and its figures are checked: every acknowledged segment stored or
evicted, fsck clean, published versions never going back and each learner restart
resuming from the last published version.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIRED_KINDS = ("replay", "actor", "learner", "redis")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_chaos_run_loses_nothing_acknowledged(tmp_path: Path):
    command = [
        sys.executable,
        "benchmarks/chaos.py",
        "--seconds",
        "75",
        "--interval",
        "8",
        "11",
        "--down",
        "1",
        "3",
        "--eval-episodes",
        "1",
        "--recent-checkpoints",
        "1",
        "--set",
        "replay.capacity=2000",
        "--run-dir",
        str(tmp_path / "chaos"),
    ]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1100)
    lines = completed.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{completed.stderr[-5000:]}"
    result = json.loads(lines[-1])
    failed = [name for name, met in result["bars"].items() if not met]
    assert completed.returncode == 0, f"bars failed: {failed}\n{json.dumps(result, indent=1)[:4000]}"

    assert all(result["kills"][kind] >= 1 for kind in REQUIRED_KINDS), result["kills"]
    assert result["acknowledged"] > 0
    assert result["lost"] == 0, result["lost_examples"]
    assert result["stored"] + result["evicted"] == result["acknowledged"]
    assert result["evicted"] > 0, "the small store should have evicted acknowledged segments"
    assert result["fsck_clean"], result["fsck_problems"]
    assert result["published_monotone"], result["published_regressions"]
    assert len(result["learner_resumes"]) == result["kills"]["learner"]
    for resume in result["learner_resumes"]:
        assert resume["resumed_from"] >= resume["published_before"] > 0, resume
    assert result["shard_kills"] and all(kill["segments_held"] > 0 for kill in result["shard_kills"])
    assert not result["restarts_not_ready"] and not result["unexpected_exits"]
    assert result["final_eval_mean_return"] is not None and result["final_eval_mean_return"] > 0
