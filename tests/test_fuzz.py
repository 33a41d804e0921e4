"""The fuzz run (benchmarks/fuzz.py): it covers every RPC the descriptors define, and a bounded run
against real servers and Redis clears every bar."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2

from muzero.wire.v1 import checkpoint_pb2, replay_pb2
from tests.benchmark_modules import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
PER_METHOD = 200


@pytest.fixture(scope="module")
def fuzz():
    return load_benchmark("fuzz")


def every_method() -> set[str]:
    """Each "<service>/<method>" of the three files, read from the descriptors here, not from the fuzzer."""
    return {
        f"{service.full_name}/{method.name}"
        for file in (replay_pb2.DESCRIPTOR, checkpoint_pb2.DESCRIPTOR, health_pb2.DESCRIPTOR)
        for service in file.services_by_name.values()
        for method in service.methods
    }


def test_the_fuzzer_plans_every_method_of_every_service(fuzz):
    planned = [method.key for method in fuzz.plan(fuzz.enumerate_methods())]
    assert len(planned) == len(set(planned))
    assert set(planned) == every_method()
    assert {"muzero.v1.ReplayService/AppendSegments", "grpc.health.v1.Health/Watch"} <= set(planned)


def extra_service_file():
    """A file with one more service, whose method takes a replay message: as if someone added an RPC."""
    pool = descriptor_pool.DescriptorPool()
    replay_file = descriptor_pb2.FileDescriptorProto()
    replay_pb2.DESCRIPTOR.CopyToProto(replay_file)
    pool.Add(replay_file)
    extra = descriptor_pb2.FileDescriptorProto(name="extra.proto", package="extra", dependency=[replay_file.name])
    service = extra.service.add(name="Extra")
    service.method.add(name="Poke", input_type=".muzero.v1.StatsRequest", output_type=".muzero.v1.ReplayStats")
    pool.Add(extra)
    return pool.FindFileByName("extra.proto")


def test_a_method_the_fuzzer_cannot_judge_stops_it_before_it_starts(fuzz):
    methods = fuzz.enumerate_methods([*fuzz.DESCRIPTORS, extra_service_file()])
    assert "extra.Extra/Poke" in {m.key for m in methods}  # enumerated from the descriptor, so not missed
    with pytest.raises(ValueError, match="extra.Extra/Poke"):
        fuzz.plan(methods)


def test_a_skipped_method_is_noticed(fuzz):
    methods = [m for m in fuzz.enumerate_methods() if m.name != "WriteTargets"]
    with pytest.raises(ValueError, match="WriteTargets"):
        fuzz.plan(methods)


def test_drawn_requests_come_from_the_descriptor(fuzz):
    """hypothesis builds any request type from its descriptor, extremes included, deterministically."""
    drawn: list[bytes] = []
    fuzz.run_hypothesis(fuzz.request_strategy(replay_pb2.Segment), 60, 0, drawn.append)
    again: list[bytes] = []
    fuzz.run_hypothesis(fuzz.request_strategy(replay_pb2.Segment), 60, 0, again.append)
    assert drawn == again and len(drawn) == 60
    messages = [replay_pb2.Segment.FromString(payload) for payload in drawn]
    assert any(m.HasField("frames") and m.frames.shape for m in messages)
    assert any(abs(m.model_version) >= 2**53 for m in messages)


def test_the_oracle_knows_a_valid_request_from_a_broken_one(fuzz):
    import numpy as np

    ctx = fuzz.Context(num_actions=2, frame_shape=(4,), frame_stack=2, frame_dtype="float32")
    rng = np.random.default_rng(0)
    method = next(m for m in fuzz.enumerate_methods() if m.name == "AppendSegments")
    spec = fuzz.SPECS[method.key]
    segment = spec.valid(ctx, rng)
    assert fuzz.judge(method, spec, ctx, segment.SerializeToString()) is None
    assert fuzz.judge(method, spec, ctx, b"\xff\xff") == "undecodable: DecodeError"
    fuzz.m_bool_bytes(ctx, segment, rng)
    assert fuzz.judge(method, spec, ctx, segment.SerializeToString()) is not None


def test_a_bounded_fuzz_run_clears_every_bar(tmp_path):
    findings = tmp_path / "findings.json"
    command = [sys.executable, "benchmarks/fuzz.py", "--per-method", str(PER_METHOD), "--seed", "0"]
    command += ["--no-shrink", "--open-streams", "24", "--findings", str(findings)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=540)
    lines = completed.stdout.strip().splitlines()
    assert lines, completed.stderr[-3000:]
    figures = json.loads(lines[-1])
    assert set(figures) == {"methods", "server_deaths", "accepted_malformed", "fsck_clean", "stored_data_intact"}
    assert set(figures["methods"]) == every_method()
    for key, tally in figures["methods"].items():
        assert tally["sent"] == sum(tally["codes"].values()) == PER_METHOD, key
    summary = completed.stderr[-6000:]  # the findings, each with the index of its request in findings.json
    assert figures["server_deaths"] == 0, summary
    assert {k: t["unclean"] for k, t in figures["methods"].items() if t["unclean"]} == {}, summary
    assert figures["accepted_malformed"] == 0, summary
    assert figures["fsck_clean"], summary
    assert figures["stored_data_intact"], summary
    assert completed.returncode == 0, summary
