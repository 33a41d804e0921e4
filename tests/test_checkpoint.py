"""Checkpoints: round trip, digest verification, atomic writes, the manager's pointer and pruning."""

import json
import os

import pytest
import torch

import muzero.storage.checkpoint as checkpoint_module
from muzero.config import ExperimentConfig, NetworkConfig
from muzero.learning.batch import TorchBatch
from muzero.learning.trainer import Trainer
from muzero.nn.networks import build_network
from muzero.storage.checkpoint import CheckpointError, CheckpointManager, load_checkpoint, save_checkpoint

CONFIG = ExperimentConfig(
    name="checkpoint-test", network=NetworkConfig(hidden_size=16, num_layers=1, head_hidden_size=8)
)


def network(seed=0):
    torch.manual_seed(seed)
    return build_network(CONFIG.network, (4,), 2)


def trained_trainer(steps=2):
    trainer = Trainer(network(), CONFIG.training)
    batch = TorchBatch(
        observations=torch.randn(4, 4),
        actions=torch.zeros(4, 5, dtype=torch.int64),
        target_values=torch.ones(4, 6),
        target_rewards=torch.ones(4, 6),
        target_policies=torch.full((4, 6, 2), 0.5),
        value_mask=torch.ones(4, 6, dtype=torch.bool),
        reward_mask=torch.ones(4, 6, dtype=torch.bool),
        policy_mask=torch.ones(4, 6, dtype=torch.bool),
        weights=torch.ones(4),
    )
    for _ in range(steps):
        trainer.train_step(batch)
    return trainer, batch


def test_round_trip_restores_weights_optimizer_and_header(tmp_path):
    trainer, batch = trained_trainer()
    path = save_checkpoint(
        tmp_path,
        trainer.network,
        CONFIG,
        step=2,
        version=7,
        trainer_state=trainer.state_dict(),
        extra={"env_steps": 123},
    )
    assert path == tmp_path / "step_000002.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000002.json", "step_000002.safetensors"]

    loaded = load_checkpoint(path)
    assert loaded.config == CONFIG and loaded.step == 2 and loaded.version == 7
    assert loaded.header["extra"] == {"env_steps": 123}
    restored = Trainer(network(seed=1), CONFIG.training)
    restored.network.load_state_dict(loaded.state_dict)
    for name, tensor in trainer.network.state_dict().items():
        assert torch.equal(tensor, restored.network.state_dict()[name]), name
    restored.load_state_dict(loaded.trainer_state)
    assert restored.step == 2
    trainer.train_step(batch)
    restored.train_step(batch)
    for p, q in zip(trainer.network.parameters(), restored.network.parameters()):
        torch.testing.assert_close(p, q)
    assert load_checkpoint(path.with_suffix(".json")).step == 2  # either file names the checkpoint


def test_a_corrupted_byte_is_rejected_naming_the_file_and_digests(tmp_path):
    path = save_checkpoint(tmp_path / "model.safetensors", network(), CONFIG, step=1, version=1)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: sha256 mismatch"):
        load_checkpoint(path)


def test_a_truncated_file_is_rejected(tmp_path):
    path = save_checkpoint(tmp_path, network(), CONFIG, step=1, version=1)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        load_checkpoint(path)


def test_missing_header_missing_weights_and_bad_json_are_rejected(tmp_path):
    path = save_checkpoint(tmp_path, network(), CONFIG, step=1, version=1)
    path.unlink()
    with pytest.raises(CheckpointError, match="weights file named by the header not found"):
        load_checkpoint(path.with_suffix(".json"))
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable checkpoint header"):
        load_checkpoint(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="header not found"):
        load_checkpoint(path)


def test_header_cannot_point_outside_its_directory(tmp_path):
    path = save_checkpoint(tmp_path, network(), CONFIG, step=1, version=1)
    header = json.loads(path.with_suffix(".json").read_text())
    header["weights_file"] = "../elsewhere.safetensors"
    path.with_suffix(".json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="plain file name"):
        load_checkpoint(path)


def test_a_failed_write_leaves_no_temp_file_and_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path, network(seed=0), CONFIG, step=1, version=1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, network(seed=1), CONFIG, step=1, version=2)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files, nothing changed
    assert load_checkpoint(path).version == 1


def test_the_header_is_written_last(tmp_path, monkeypatch):
    manager = CheckpointManager(tmp_path, keep_last=3)
    first = manager.save(network(), CONFIG, step=10, version=10)
    original = checkpoint_module.write_atomically

    def crash_on_header(path, data):
        if path.suffix == ".json":
            raise KeyboardInterrupt  # the process dies between the weights and the header
        original(path, data)

    monkeypatch.setattr(checkpoint_module, "write_atomically", crash_on_header)
    with pytest.raises(KeyboardInterrupt):
        manager.save(network(), CONFIG, step=20, version=20)
    monkeypatch.undo()
    assert (manager.directory / "step_000020.safetensors").exists()
    with pytest.raises(CheckpointError, match="header not found"):
        load_checkpoint(manager.directory / "step_000020.safetensors")
    assert manager.latest() == first


def test_manager_keeps_the_last_checkpoints_and_points_at_the_newest(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    assert manager.latest() is None
    for step in (5, 10, 15):
        manager.save(network(seed=step), CONFIG, step=step, version=step)
    names = sorted(p.name for p in manager.directory.iterdir())
    assert names == [
        "latest",
        "step_000010.json",
        "step_000010.safetensors",
        "step_000015.json",
        "step_000015.safetensors",
    ]
    assert manager.latest() == manager.directory / "step_000015.safetensors"
    assert json.loads((manager.directory / "latest").read_text())["step"] == 15

    newest = manager.directory / "step_000015.safetensors"
    newest.write_bytes(b"\0" + newest.read_bytes()[1:])  # corrupt the newest: fall back to the one before
    assert manager.latest() == manager.directory / "step_000010.safetensors"
    assert not [name for name in os.listdir(manager.directory) if name.endswith(".tmp")]


def test_buffers_and_integer_tensors_survive(tmp_path):
    net = build_network(NetworkConfig(kind="resnet", channels=4, num_blocks=1, head_hidden_size=4), (2, 3, 3), 9)
    net.train()
    net.initial_inference(torch.randn(2, 2, 3, 3))  # moves BatchNorm running statistics
    path = save_checkpoint(tmp_path, net, CONFIG, step=0, version=0)
    state = load_checkpoint(path).state_dict
    for name, tensor in net.state_dict().items():
        assert state[name].dtype == tensor.dtype and torch.equal(state[name], tensor), name
    assert any(t.dtype == torch.int64 for t in state.values())  # BatchNorm's num_batches_tracked


def test_latest_is_the_newest_checkpoint_even_when_the_pointer_lags(tmp_path):
    # A learner killed after writing a checkpoint's files but before its pointer: the service
    # announces the newest file, so the restarted learner must resume from it, not the pointer's.
    manager = CheckpointManager(tmp_path)
    older = manager.save(network(seed=1), CONFIG, step=100, version=100)
    pointer = (manager.directory / "latest").read_bytes()
    newer = manager.save(network(seed=2), CONFIG, step=200, version=200)
    (manager.directory / "latest").write_bytes(pointer)
    assert manager.latest() == newer
    newer.write_bytes(b"torn")  # a newest file that fails verification: the next one down
    assert manager.latest() == older
