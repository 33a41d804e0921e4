"""network.rules_heads: the learned model predicts legal moves and episode ends, trained on
the stored ones, and a search inside it keeps to what it predicts."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from muzero.config import ConfigError, NetworkConfig, TrainingConfig
from muzero.learning.batch import make_batch, rules_targets
from muzero.learning.segment import SegmentBuilder
from muzero.learning.trainer import Trainer
from muzero.nn.networks import build_network
from muzero.search.step_fns import LearnedModel
from muzero.wire import codec

NUM_ACTIONS = 4
UNROLL, TD = 3, 2


def play(steps=30, episode=7, time_limit=False):
    """Two envs; at step t of an episode, action t % 4 is illegal. Episodes of ``episode``
    steps end by termination (or, with ``time_limit``, by truncation)."""
    builder = SegmentBuilder(2, 5, UNROLL + TD, 1, NUM_ACTIONS, td_steps=TD, discount=0.9)
    segments = []
    for step in range(steps):
        t = step % episode
        last = t == episode - 1
        legal = np.ones((2, NUM_ACTIONS), dtype=bool)
        legal[:, t % NUM_ACTIONS] = False
        observations = np.zeros((2, 8), dtype=np.float32)
        observations[:, t] = 1.0  # the step, one-hot
        actions = np.array([(t + 1) % NUM_ACTIONS] * 2)
        segments += builder.add_step(
            observations,
            actions,
            np.zeros(2),
            np.zeros(2, dtype=np.int8),
            legal,
            np.full((2, NUM_ACTIONS), 1 / NUM_ACTIONS, dtype=np.float32),
            np.zeros(2),
            np.full(2, last and not time_limit),
            np.full(2, last and time_limit),
            np.zeros(2),
            model_version=0,
        )
    return segments


def test_rules_targets_inside_past_a_terminal_end_and_past_a_time_limit():
    for time_limit in (False, True):
        segments = [s for s in play(time_limit=time_limit) if s.num_steps < s.length + UNROLL + TD]  # episode ends
        segment = segments[0]
        positions = np.arange(segment.length)
        legal, ended, known = rules_targets([segment] * len(positions), positions, UNROLL)
        for b, start in enumerate(positions):
            for k in range(UNROLL + 1):
                at = start + k
                if at < segment.num_steps:
                    assert known[b, k] and not ended[b, k]
                    np.testing.assert_array_equal(legal[b, k], segment.legal_masks[at])
                elif time_limit:
                    assert not known[b, k]  # the episode goes on: unknown
                else:
                    assert known[b, k] and ended[b, k] and not legal[b, k].any()  # absorbing


def network(seed=0, rules=True):
    torch.manual_seed(seed)
    config = NetworkConfig(
        hidden_size=32, num_layers=1, head_hidden_size=32, value_support=2, reward_support=2, rules_heads=rules
    )
    return build_network(config, (8,), NUM_ACTIONS)


def batch_of(segments, seed=0, size=32):
    rng = np.random.default_rng(seed)
    chosen = [segments[i] for i in rng.integers(0, len(segments), size)]
    positions = np.array([rng.integers(0, s.length) for s in chosen])
    return make_batch(chosen, positions, UNROLL, TD, 0.9, 1, rng, rules=True)


def test_training_the_rules_heads_learns_the_legal_moves_and_the_ends_inside_the_model():
    segments = play(steps=70)
    batch = batch_of(segments)
    net = network()
    trainer = Trainer(net, TrainingConfig(batch_size=32, unroll_steps=UNROLL, td_steps=TD, learning_rate=3e-3))
    parts = [trainer.train_step(batch) for _ in range(300)]
    assert parts[-1]["rules"] < 0.25 * parts[0]["rules"]
    # Unroll the trained model along the batch's actions: its verdicts match the targets.
    torch_batch = batch.to_torch()
    net.eval()
    with torch.no_grad():
        output = net.initial_inference(torch_batch.observations)
        correct, total = 0, 0
        for k in range(UNROLL + 1):
            if k:
                output = net.recurrent_inference(output.hidden, torch_batch.actions[:, k - 1])
            legal_logits, ended_logits = output.rules_logits[:, :-1], output.rules_logits[:, -1]
            known = torch_batch.rules_mask[:, k]
            correct += int(((legal_logits > 0) == torch_batch.target_legal[:, k])[known].sum())
            correct += int(((ended_logits > 0) == torch_batch.target_terminal[:, k])[known].sum())
            total += int(known.sum()) * (NUM_ACTIONS + 1)
    assert correct / total > 0.95
    without = Trainer(network(rules=False), TrainingConfig(batch_size=32, unroll_steps=UNROLL, td_steps=TD))
    assert "rules" not in without.train_step(batch)


def test_a_batch_without_rules_targets_is_refused_by_name():
    segments = play()
    rng = np.random.default_rng(0)
    batch = make_batch(segments[:4], np.zeros(4, dtype=np.int64), UNROLL, TD, 0.9, 1, rng)
    trainer = Trainer(network(), TrainingConfig(batch_size=4, unroll_steps=UNROLL, td_steps=TD))
    with pytest.raises(ValueError, match="rules targets"):
        trainer.train_step(batch)


def set_verdicts(net, legal_bias, ended_bias):
    """Make the rules heads' verdicts constant: zero weights, the given biases."""
    last = net.rules_out
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([*legal_bias, ended_bias], dtype=torch.float32))


def test_the_learned_model_hands_its_verdicts_to_the_search():
    net = network()
    model = LearnedModel(net)
    root = model.initial(np.zeros((3, 8), dtype=np.float32))
    actions = np.array([0, 1, 2])
    to_play = np.zeros(3, dtype=np.int8)

    set_verdicts(net, [-3.0, 2.0, 2.0, -1.0], -4.0)
    out = model(root.embedding, actions, to_play)
    np.testing.assert_array_equal(out.legal_mask, np.tile([False, True, True, False], (3, 1)))
    assert not out.terminal.any()

    set_verdicts(net, [-3.0, -3.0, -3.0, -3.0], 4.0)  # ended: nothing legal
    out = model(root.embedding, actions, to_play)
    assert out.terminal.all() and not out.legal_mask.any()

    set_verdicts(net, [-3.0, -3.0, -3.0, -3.0], -4.0)  # not ended, yet nothing legal: unsure, all open
    out = model(root.embedding, actions, to_play)
    assert out.legal_mask.all() and not out.terminal.any()

    plain = LearnedModel(network(rules=False))
    out = plain(plain.initial(np.zeros((3, 8), dtype=np.float32)).embedding, actions, to_play)
    assert out.legal_mask.all() and not out.terminal.any()


def test_a_search_inside_the_model_never_expands_what_the_model_calls_illegal():
    from muzero.config import SearchConfig
    from muzero.search.mcts import make_search

    net = network()
    set_verdicts(net, [-3.0, 2.0, 2.0, 2.0], -4.0)  # action 0 illegal below the root
    model = LearnedModel(net)
    search = make_search(SearchConfig(num_simulations=64), NUM_ACTIONS, 2, 0.9)
    root = model.initial(np.zeros((2, 8), dtype=np.float32))
    seen: list[np.ndarray] = []

    class Recording:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, embedding, action, to_play):
            seen.append(np.asarray(action).copy())
            return self.inner(embedding, action, to_play)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    search.run(root, Recording(model), np.random.default_rng(0), temperature=0.0, add_noise=False)
    steps = np.concatenate(seen)
    # Action 0 is legal at the root (all legal there), so at most the root's child through it.
    assert (steps == 0).sum() <= 2
    assert len(steps) >= 64


def test_rules_targets_cross_the_wire():
    batch = batch_of(play(), size=6)
    batch = replace(batch, model_versions=np.zeros(6, dtype=np.int64))
    decoded = codec.training_batch_from_proto(codec.training_batch_to_proto(batch))
    for name in ("target_legal", "target_terminal", "rules_mask"):
        np.testing.assert_array_equal(getattr(decoded, name), getattr(batch, name))
    message = codec.training_batch_to_proto(batch)
    message.rules_mask.shape[:] = [6, UNROLL]
    with pytest.raises(codec.WireError, match="rules_mask"):
        codec.training_batch_from_proto(message)


def test_rules_heads_on_a_board_network_are_refused():
    with pytest.raises(ConfigError, match="network.rules_heads"):
        NetworkConfig(kind="board", rules_heads=True).validate()


@pytest.mark.parametrize("rules", [True, False])
def test_a_checkpoint_of_the_per_head_mlp_layout_loads_with_the_same_outputs(rules):
    """MLP checkpoints written before the heads' first layers were stacked (one Sequential per
    head: policy_head, value_head, rules_head.body) load into the stacked layout unchanged."""
    net = network(seed=3, rules=rules)
    head = net.config.head_hidden_size
    old = {
        k: v
        for k, v in net.state_dict().items()
        if not k.startswith(("prediction_hidden", "policy_out", "value_out", "rules_out"))
    }
    names = ["policy_head.0", "value_head.0"] + (["rules_head.body.0"] if rules else [])
    for i, name in enumerate(names):
        old[f"{name}.weight"] = net.prediction_hidden.weight[i * head : (i + 1) * head].clone()
        old[f"{name}.bias"] = net.prediction_hidden.bias[i * head : (i + 1) * head].clone()
    for name, module in [("policy_head.2", net.policy_out), ("value_head.2", net.value_out)] + (
        [("rules_head.body.2", net.rules_out)] if rules else []
    ):
        old[f"{name}.weight"], old[f"{name}.bias"] = module.weight.clone(), module.bias.clone()
    loaded = network(seed=4, rules=rules)
    loaded.load_state_dict(old)
    observations = torch.randn(5, 8)
    expected, got = net.initial_inference(observations), loaded.initial_inference(observations)
    for name in ("policy_logits", "value_logits") + (("rules_logits",) if rules else ()):
        torch.testing.assert_close(getattr(got, name), getattr(expected, name))
    assert (got.rules_logits is None) == (not rules)


def test_a_resnet_network_has_rules_heads_too():
    torch.manual_seed(0)
    config = NetworkConfig(kind="resnet", channels=8, num_blocks=1, head_hidden_size=16, rules_heads=True)
    net = build_network(config, (3, 3, 3), 9)
    output = net.recurrent_inference(net.initial_inference(torch.zeros(2, 3, 3, 3)).hidden, torch.tensor([0, 4]))
    assert output.rules_logits.shape == (2, 10)
    plain = build_network(replace(config, rules_heads=False), (3, 3, 3), 9)
    assert plain.initial_inference(torch.zeros(2, 3, 3, 3)).rules_logits is None
