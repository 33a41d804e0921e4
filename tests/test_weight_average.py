"""training.weight_average_decay: the model that plays and is checkpointed is an EMA of the trained weights."""

import dataclasses

import pytest
import torch

from muzero import config as config_module
from muzero.learning.averaging import WeightAverage, average_decay_at
from muzero.learning.learner import Learner
from muzero.learning.trainer import Trainer
from muzero.storage.checkpoint import CheckpointManager, load_checkpoint
from tests.test_trainer import NUM_ACTIONS, OBS_SHAPE, config, fixed_batch, small_network


def test_decay_warms_up_then_holds():
    assert average_decay_at(0, 0.999) == pytest.approx(0.1)
    assert average_decay_at(90, 0.999) == pytest.approx(0.91)
    assert average_decay_at(100_000, 0.999) == 0.999
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(torch.nn.Linear(2, 2), 1.0)


def test_average_follows_the_trained_weights_as_an_exponential_moving_average():
    decay = 0.5
    trainer = Trainer(small_network(), config(weight_average_decay=decay))
    assert trainer.model is not trainer.network
    batch = fixed_batch()
    expected = {name: p.detach().clone() for name, p in trainer.network.named_parameters()}
    for step in range(5):
        trainer.train_step(batch)
        d = average_decay_at(step, decay)
        for name, p in trainer.network.named_parameters():
            expected[name] = d * expected[name] + (1 - d) * p.detach()
    for name, p in trainer.model.named_parameters():
        assert torch.allclose(p, expected[name], atol=1e-6), name
        assert not torch.equal(p, dict(trainer.network.named_parameters())[name]), name  # it is not a copy
        assert not p.requires_grad


def test_off_by_default_the_model_is_the_trained_network():
    trainer = Trainer(small_network(), config())
    assert trainer.average is None and trainer.model is trainer.network


def test_checkpoint_holds_the_average_as_model_and_resumes_the_trained_weights(tmp_path):
    experiment = config_module.load("cartpole", ["training.weight_average_decay=0.9", "training.bootstrap=stored"])
    learner = Learner(experiment, OBS_SHAPE, NUM_ACTIONS, network=small_network())
    batch = fixed_batch()
    for _ in range(4):
        learner.trainer.train_step(batch)
    manager = CheckpointManager(tmp_path)
    checkpoint = load_checkpoint(manager.save_learner(learner))
    for name, tensor in learner.model.state_dict().items():
        assert torch.equal(checkpoint.state_dict[name], tensor), name  # what eval, actors, GTP load
    assert not all(torch.equal(checkpoint.state_dict[n], t) for n, t in learner.network.state_dict().items())

    resumed = Learner(experiment, OBS_SHAPE, NUM_ACTIONS, network=small_network(seed=3))
    assert manager.resume_learner(resumed) == 4
    for name, tensor in learner.network.state_dict().items():
        assert torch.equal(resumed.network.state_dict()[name], tensor), name
    for name, tensor in learner.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    learner.trainer.train_step(batch)
    resumed.trainer.train_step(batch)  # the same next update, average included
    for name, tensor in learner.model.state_dict().items():
        assert torch.allclose(resumed.model.state_dict()[name], tensor, atol=1e-6), name

    # Turned off for the resumed run: training goes on from the trained weights, not the average.
    plain = dataclasses.replace(experiment, training=dataclasses.replace(experiment.training, weight_average_decay=0.0))
    off = Learner(plain, OBS_SHAPE, NUM_ACTIONS, network=small_network(seed=3))
    manager.resume_learner(off)
    reloaded = load_checkpoint(manager.latest())
    trained = {
        k[len("trained.") :]: v for k, v in reloaded.trainer_state["tensors"].items() if k.startswith("trained.")
    }
    for name, tensor in off.network.state_dict().items():
        assert torch.equal(tensor, trained[name]), name


def test_bad_decay_is_refused_by_the_config():
    with pytest.raises(config_module.ConfigError, match="weight_average_decay"):
        config_module.load("cartpole", ["training.weight_average_decay=1.0"])
