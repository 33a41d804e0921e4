"""Local mode and the learner service run one update: same batches and seed, same parameters.

Local mode draws from its embedded store and builds batches with ``batch_from_sample``;
the learner service receives batches the replay service built with that same function,
over real gRPC on loopback, and sends priorities back with UpdatePriorities. Both feed
:class:`~muzero.learning.learner.Learner`. After N updates (target-network refreshes and
priority changes included) the two networks must be bit-identical.
"""

from __future__ import annotations

import numpy as np
import torch

from muzero import config as config_module
from muzero.learning.batch import BATCH_ARRAYS, Batch, batch_from_sample
from muzero.learning.learner import Learner
from muzero.storage.replay.factory import EnvSpec, build_store
from muzero.transport.grpc_util import make_server
from muzero.transport.replay_client import ReplayClient
from muzero.transport.replay_server import ReplayServicer, add_to_server
from muzero.wire import codec
from tests.factories import random_segment

UPDATES = 12
SEED = 7


def make_config():
    return config_module.load(
        "cartpole",
        [
            "training.bootstrap=target_network",
            "training.target_update_interval=4",
            "training.batch_size=16",
            "training.unroll_steps=3",
            "training.td_steps=4",
            "replay.min_size=1",
            "replay.priority_alpha=1.0",
            "network.hidden_size=32",
            f"training.seed={SEED}",
        ],
    )


def filled_store(config, spec):
    store = build_store(config, spec)
    rng = np.random.default_rng(0)
    for _ in range(20):
        store.insert(
            random_segment(
                rng,
                num_actions=spec.num_actions,
                frame_shape=spec.observation_shape,
                frame_stack=1,
                steps=int(rng.integers(5, 15)),
                terminated=bool(rng.random() < 0.5),
            )
        )
    return store


def child_rngs(seed: int):
    """The generator of each Sample call, derived as the replay servicer derives them."""
    parent = np.random.default_rng(seed)
    while True:
        yield np.random.default_rng(parent.integers(2**63))


def parameters(network) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in network.state_dict().items()}


def test_local_mode_and_the_learner_service_reach_the_same_parameters():
    config = make_config()
    spec = EnvSpec.of(config)

    # Local mode: the embedded store, batches made in process.
    local_store = filled_store(config, spec)
    local = Learner(config, spec.observation_shape, spec.num_actions)
    rngs = child_rngs(SEED)
    local_losses = []
    for _ in range(UPDATES):
        rng = next(rngs)
        batch = batch_from_sample(
            local_store.sample(config.training.batch_size, rng, frames="window"),
            config.training,
            config.env.frame_stack,
            rng,
            bootstrap_observations=local.wants_bootstrap_observations,
        )
        out = local.train(batch)
        local_store.update_priorities(batch.keys, out["priorities"])
        local_losses.append(out["total"])

    # The learner service's path: a real replay server on loopback, batches over the wire.
    servicer = ReplayServicer(config, spec, filled_store(config, spec), seed=SEED)
    server = make_server()
    add_to_server(server, servicer)
    port = server.add_port("127.0.0.1:0")
    server.start()
    client = ReplayClient(f"127.0.0.1:{port}")
    try:
        remote = Learner(config, spec.observation_shape, spec.num_actions)
        remote_losses = []
        for _ in range(UPDATES):
            (batch,) = client.sample(
                config.training.batch_size, num_batches=1, bootstrap_observations=remote.wants_bootstrap_observations
            )
            assert batch.bootstrap is not None and batch.bootstrap.mask.any()
            out = remote.train(batch)
            client.update_priorities(batch.keys, out["priorities"])
            remote_losses.append(out["total"])
    finally:
        client.close()
        server.stop(grace=None).wait()

    assert remote.step == local.step == UPDATES
    assert remote_losses == local_losses
    local_parameters, remote_parameters = parameters(local.network), parameters(remote.network)
    assert local_parameters.keys() == remote_parameters.keys()
    for name in local_parameters:
        assert torch.equal(local_parameters[name], remote_parameters[name]), name
    # Training moved them: the check above compares trained networks, not two fresh ones.
    fresh = Learner(config, spec.observation_shape, spec.num_actions)
    assert any(not torch.equal(value, parameters(fresh.network)[name]) for name, value in local_parameters.items())


def test_a_batch_crosses_the_wire_whole():
    """Every field of the one Batch declaration survives the codec, bootstrap terms included."""
    config = make_config()
    spec = EnvSpec.of(config)
    store = filled_store(config, spec)
    rng = np.random.default_rng(1)
    batch = batch_from_sample(store.sample(8, rng), config.training, 1, rng, bootstrap_observations=True)
    message = codec.training_batch_to_proto(batch)
    decoded = codec.training_batch_from_proto(type(message).FromString(message.SerializeToString()))
    assert isinstance(decoded, Batch)
    for name in BATCH_ARRAYS:
        np.testing.assert_array_equal(getattr(decoded, name), getattr(batch, name), err_msg=name)
        assert getattr(decoded, name).dtype == getattr(batch, name).dtype, name
    np.testing.assert_array_equal(decoded.keys.positions, batch.keys.positions)
    assert list(decoded.keys.segment_ids) == [str(i) for i in batch.keys.segment_ids]
    np.testing.assert_array_equal(decoded.model_versions, batch.model_versions)
    for name in ("mask", "scale", "stored_values", "observations"):
        np.testing.assert_array_equal(getattr(decoded.bootstrap, name), getattr(batch.bootstrap, name), err_msg=name)


def test_the_batch_declaration_is_the_one_the_loss_and_wire_use():
    from muzero.wire.v1 import replay_pb2

    assert BATCH_ARRAYS == (
        "observations",
        "actions",
        "target_values",
        "target_rewards",
        "target_policies",
        "value_mask",
        "reward_mask",
        "policy_mask",
        "weights",
    )
    wire_fields = set(replay_pb2.TrainingBatch.DESCRIPTOR.fields_by_name)
    assert set(BATCH_ARRAYS) <= wire_fields
