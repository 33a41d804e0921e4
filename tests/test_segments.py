"""Segment validation, frame stacking, and cutting lockstep play into overlapping segments."""

from dataclasses import replace

import numpy as np
import pytest

from muzero.learning.segment import FrameStacker, Segment, SegmentBuilder, stack_frames, stacked_observation_shape
from muzero.learning.targets import segment_value_targets

NUM_ACTIONS = 2


class FakePlay:
    """N envs whose every step is identifiable: obs = (env, step number within the episode, episode)."""

    def __init__(self, num_envs, episode_lengths, truncate, seed=0):
        self.num_envs = num_envs
        self.episode_lengths = episode_lengths  # per env, cycled
        self.truncate = truncate
        self.rng = np.random.default_rng(seed)
        self.step_in_episode = np.zeros(num_envs, dtype=np.int64)
        self.episode = np.zeros(num_envs, dtype=np.int64)
        self.played = [[] for _ in range(num_envs)]  # per env: list of (episode, step) played

    def step(self):
        n = self.num_envs
        obs = np.stack([np.arange(n), self.step_in_episode, self.episode], axis=1).astype(np.float32)
        lengths = np.array([self.episode_lengths[i][self.episode[i] % len(self.episode_lengths[i])] for i in range(n)])
        ended = self.step_in_episode + 1 >= lengths
        truncated = ended & np.array([self.truncate[i] for i in range(n)])
        terminated = ended & ~truncated
        policies = self.rng.dirichlet(np.ones(NUM_ACTIONS), size=n).astype(np.float32)
        step = dict(
            obs=obs,
            actions=(self.step_in_episode % NUM_ACTIONS),
            rewards=self.step_in_episode * 1.0,
            to_play=np.zeros(n, dtype=np.int8),
            legal_masks=np.ones((n, NUM_ACTIONS), dtype=bool),
            policies=policies,
            root_values=self.step_in_episode * 10.0,
            terminated=terminated,
            truncated=truncated,
            final_bootstrap_values=np.full(n, -5.0),
        )
        for i in range(n):
            self.played[i].append((int(self.episode[i]), int(self.step_in_episode[i])))
        self.step_in_episode = np.where(ended, 0, self.step_in_episode + 1)
        self.episode = self.episode + ended
        return step


def run_builder(builder, play, num_steps, model_version=0):
    segments = []
    for _ in range(num_steps):
        segments += builder.add_step(**play.step(), model_version=model_version)
    return segments


def steps_of(segment, start=0, stop=None):
    """(episode, step) ids of a segment's steps read back from its frames."""
    frames = segment.observations[segment.frame_stack - 1 :]
    return [(int(f[2]), int(f[1])) for f in frames[start:stop]]


@pytest.mark.parametrize("frame_stack", [1, 3])
def test_builder_loses_no_step_and_context_equals_the_next_segments_first_steps(frame_stack):
    length, context = 4, 3
    play = FakePlay(3, episode_lengths=[[30, 2], [9], [11, 5]], truncate=[False, True, False])
    builder = SegmentBuilder(3, length, context, frame_stack, NUM_ACTIONS)
    segments = run_builder(builder, play, 60)
    by_env = {i: [s for s in segments if s.observations[0, 0] == i] for i in range(3)}

    for env, env_segments in by_env.items():
        owned = [step for s in env_segments for step in steps_of(s, 0, s.length)]
        pending = int(builder.pending_steps[env])
        assert owned == play.played[env][: len(play.played[env]) - pending]  # in order, no gap, no repeat
        for segment, following in zip(env_segments, env_segments[1:]):
            segment.validate(NUM_ACTIONS, (3,), frame_stack)
            context_steps = segment.num_steps - segment.length
            if segment.terminated or context_steps == 0:
                assert following.observations[frame_stack - 1, 1] == 0  # the next one starts an episode
                continue
            assert segment.length == length and context_steps == context
            assert steps_of(segment, segment.length) == steps_of(following, 0, context)
            np.testing.assert_array_equal(segment.policies[length:], following.policies[:context])
            # The bootstrap is the search value of the step right after the segment.
            assert segment.bootstrap_value == following.root_values[context]
    assert sum(s.num_transitions for s in segments) == 3 * 60 - builder.pending_steps.sum()


def test_episode_end_segments_own_everything_left():
    play = FakePlay(2, episode_lengths=[[3], [3]], truncate=[False, True])
    builder = SegmentBuilder(2, 10, 5, 1, NUM_ACTIONS)
    segments = run_builder(builder, play, 3)
    terminated, truncated = sorted(segments, key=lambda s: s.observations[0, 0])
    assert terminated.terminated and terminated.length == terminated.num_steps == 3
    assert terminated.bootstrap_value == 0.0
    assert not truncated.terminated and truncated.length == 3 and truncated.bootstrap_value == -5.0
    assert builder.pending_steps.tolist() == [0, 0]


def test_frame_history_repeats_the_first_frame_then_uses_real_frames():
    play = FakePlay(1, episode_lengths=[[100]], truncate=[False])
    builder = SegmentBuilder(1, 2, 1, 3, NUM_ACTIONS)
    first, second = run_builder(builder, play, 6)[:2]
    assert [int(f[1]) for f in first.observations] == [0, 0, 0, 1, 2]
    assert [int(f[1]) for f in second.observations] == [0, 1, 2, 3, 4]  # real frames before step 2


def test_flush_emits_pending_play_and_keeps_the_last_step():
    play = FakePlay(2, episode_lengths=[[100], [100]], truncate=[False, False])
    builder = SegmentBuilder(2, 10, 2, 1, NUM_ACTIONS)
    assert run_builder(builder, play, 5) == []
    flushed = builder.flush()
    assert [s.length for s in flushed] == [4, 4]
    assert all(s.bootstrap_value == 40.0 for s in flushed)  # root value of the kept step 4
    assert builder.pending_steps.tolist() == [1, 1]
    later = run_builder(builder, play, 12)
    assert [steps_of(s, 0, 1) for s in later] == [[(0, 4)], [(0, 4)]]  # play resumes where the flush stopped


def test_initial_priorities_are_n_step_td_errors():
    play = FakePlay(1, episode_lengths=[[6]], truncate=[False])
    builder = SegmentBuilder(1, 10, 3, 1, NUM_ACTIONS, td_steps=2, discount=0.5)
    (segment,) = run_builder(builder, play, 6)

    # rewards r_t = t, root values v_t = 10 t, terminated after step 5.
    def target(t):
        return t + (0.5 * (t + 1) if t + 1 < 6 else 0.0) + (0.25 * 10 * (t + 2) if t + 2 < 6 else 0.0)

    expected = [abs(10 * t - target(t)) for t in range(6)]
    np.testing.assert_allclose(segment.priorities, expected, rtol=1e-6)
    np.testing.assert_allclose(segment.priorities, np.abs(segment.root_values - segment_value_targets(segment, 2, 0.5)))


def test_model_version_is_the_oldest_that_played_the_segment():
    play = FakePlay(1, episode_lengths=[[4]], truncate=[False])
    builder = SegmentBuilder(1, 10, 3, 1, NUM_ACTIONS)
    run_builder(builder, play, 2, model_version=7)
    (segment,) = run_builder(builder, play, 2, model_version=9)
    assert segment.model_version == 7


def test_add_step_rejects_wrong_shapes():
    builder = SegmentBuilder(2, 4, 1, 1, NUM_ACTIONS)
    step = FakePlay(2, [[5], [5]], [False, False]).step()
    step["policies"] = step["policies"][:, :1]
    with pytest.raises(ValueError, match="policies"):
        builder.add_step(**step, model_version=0)


def valid_segment():
    play = FakePlay(1, episode_lengths=[[3]], truncate=[False])
    (segment,) = run_builder(SegmentBuilder(1, 10, 3, 2, NUM_ACTIONS), play, 3)
    segment.validate(NUM_ACTIONS, (3,), 2)
    return segment


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("actions", np.array([0, 1, 2]), "actions"),
        ("rewards", np.array([0, np.nan, 0], dtype=np.float32), "rewards"),
        ("rewards", np.zeros(3), "rewards"),  # float64
        ("policies", np.ones((3, NUM_ACTIONS), dtype=np.float32), "policies"),
        ("observations", np.zeros((3, 3), dtype=np.float32), "observations"),  # frame history missing
        ("length", 4, "length"),
        ("priorities", np.ones(2, dtype=np.float32), "priorities"),
        ("bootstrap_value", 1.0, "bootstrap_value"),  # terminated
        ("segment_id", "", "segment_id"),
    ],
)
def test_validate_names_the_bad_field(field, value, message):
    segment = replace(valid_segment(), **{field: value})
    with pytest.raises(ValueError, match=message):
        segment.validate(NUM_ACTIONS, (3,), 2)


def test_frame_stacker_matches_segment_stacking():
    stacker = FrameStacker(2, (2,), 3)
    first = stacker.push(np.array([[1, 1], [5, 5]], dtype=np.float32), np.array([True, True]))
    np.testing.assert_array_equal(first[0], [1, 1, 1, 1, 1, 1])
    second = stacker.push(np.array([[2, 2], [6, 6]], dtype=np.float32), np.array([False, True]))
    np.testing.assert_array_equal(second[0], [1, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(second[1], [6, 6, 6, 6, 6, 6])
    assert stacked_observation_shape((4, 3, 3), 2) == (8, 3, 3)
    frames = np.arange(2 * 2 * 4 * 3 * 3).reshape(2, 2, 4, 3, 3)
    np.testing.assert_array_equal(stack_frames(frames)[1, 4:], frames[1, 1])


def test_segment_stacked_observation_reads_the_frames_before_the_step():
    segment = valid_segment()
    np.testing.assert_array_equal(segment.stacked_observation(1), np.concatenate(segment.observations[1:3]))
    assert isinstance(segment, Segment) and segment.frame_stack == 2
