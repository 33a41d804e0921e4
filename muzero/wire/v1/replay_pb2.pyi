from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("segment_id", "experiment", "frames", "actions", "rewards", "to_play", "legal_masks", "policies", "root_values", "priorities", "length", "terminated", "bootstrap_value", "bootstrap_to_play", "model_version", "final_ownership")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    TO_PLAY_FIELD_NUMBER: _ClassVar[int]
    LEGAL_MASKS_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    ROOT_VALUES_FIELD_NUMBER: _ClassVar[int]
    PRIORITIES_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_TO_PLAY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FINAL_OWNERSHIP_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    experiment: str
    frames: Tensor
    actions: Tensor
    rewards: Tensor
    to_play: Tensor
    legal_masks: Tensor
    policies: Tensor
    root_values: Tensor
    priorities: Tensor
    length: int
    terminated: bool
    bootstrap_value: float
    bootstrap_to_play: int
    model_version: int
    final_ownership: Tensor
    def __init__(self, segment_id: _Optional[str] = ..., experiment: _Optional[str] = ..., frames: _Optional[_Union[Tensor, _Mapping]] = ..., actions: _Optional[_Union[Tensor, _Mapping]] = ..., rewards: _Optional[_Union[Tensor, _Mapping]] = ..., to_play: _Optional[_Union[Tensor, _Mapping]] = ..., legal_masks: _Optional[_Union[Tensor, _Mapping]] = ..., policies: _Optional[_Union[Tensor, _Mapping]] = ..., root_values: _Optional[_Union[Tensor, _Mapping]] = ..., priorities: _Optional[_Union[Tensor, _Mapping]] = ..., length: _Optional[int] = ..., terminated: _Optional[bool] = ..., bootstrap_value: _Optional[float] = ..., bootstrap_to_play: _Optional[int] = ..., model_version: _Optional[int] = ..., final_ownership: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class StoredSegment(_message.Message):
    __slots__ = ("segment_id", "experiment", "frame_shape", "frame_dtype", "actions", "rewards", "to_play", "legal_masks", "policies", "root_values", "length", "terminated", "bootstrap_value", "bootstrap_to_play", "model_version", "final_ownership")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    FRAME_SHAPE_FIELD_NUMBER: _ClassVar[int]
    FRAME_DTYPE_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    TO_PLAY_FIELD_NUMBER: _ClassVar[int]
    LEGAL_MASKS_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    ROOT_VALUES_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_TO_PLAY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FINAL_OWNERSHIP_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    experiment: str
    frame_shape: _containers.RepeatedScalarFieldContainer[int]
    frame_dtype: str
    actions: Tensor
    rewards: Tensor
    to_play: Tensor
    legal_masks: Tensor
    policies: Tensor
    root_values: Tensor
    length: int
    terminated: bool
    bootstrap_value: float
    bootstrap_to_play: int
    model_version: int
    final_ownership: Tensor
    def __init__(self, segment_id: _Optional[str] = ..., experiment: _Optional[str] = ..., frame_shape: _Optional[_Iterable[int]] = ..., frame_dtype: _Optional[str] = ..., actions: _Optional[_Union[Tensor, _Mapping]] = ..., rewards: _Optional[_Union[Tensor, _Mapping]] = ..., to_play: _Optional[_Union[Tensor, _Mapping]] = ..., legal_masks: _Optional[_Union[Tensor, _Mapping]] = ..., policies: _Optional[_Union[Tensor, _Mapping]] = ..., root_values: _Optional[_Union[Tensor, _Mapping]] = ..., length: _Optional[int] = ..., terminated: _Optional[bool] = ..., bootstrap_value: _Optional[float] = ..., bootstrap_to_play: _Optional[int] = ..., model_version: _Optional[int] = ..., final_ownership: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class ReanalysedTargets(_message.Message):
    __slots__ = ("segment_id", "policies", "root_values", "model_version")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    ROOT_VALUES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    policies: Tensor
    root_values: Tensor
    model_version: int
    def __init__(self, segment_id: _Optional[str] = ..., policies: _Optional[_Union[Tensor, _Mapping]] = ..., root_values: _Optional[_Union[Tensor, _Mapping]] = ..., model_version: _Optional[int] = ...) -> None: ...

class AppendAck(_message.Message):
    __slots__ = ("segment_id", "duplicate")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    duplicate: bool
    def __init__(self, segment_id: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class SampleRequest(_message.Message):
    __slots__ = ("batch_size", "num_batches", "uniform", "bootstrap_observations")
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_BATCHES_FIELD_NUMBER: _ClassVar[int]
    UNIFORM_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    num_batches: int
    uniform: bool
    bootstrap_observations: bool
    def __init__(self, batch_size: _Optional[int] = ..., num_batches: _Optional[int] = ..., uniform: _Optional[bool] = ..., bootstrap_observations: _Optional[bool] = ...) -> None: ...

class TrainingBatch(_message.Message):
    __slots__ = ("observations", "actions", "target_values", "target_rewards", "target_policies", "value_mask", "reward_mask", "policy_mask", "weights", "segment_ids", "positions", "model_versions", "bootstrap_mask", "bootstrap_scale", "bootstrap_stored_values", "bootstrap_observations", "target_ownership", "ownership_mask", "next_observations", "next_observation_mask", "target_legal", "target_terminal", "rules_mask")
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    TARGET_VALUES_FIELD_NUMBER: _ClassVar[int]
    TARGET_REWARDS_FIELD_NUMBER: _ClassVar[int]
    TARGET_POLICIES_FIELD_NUMBER: _ClassVar[int]
    VALUE_MASK_FIELD_NUMBER: _ClassVar[int]
    REWARD_MASK_FIELD_NUMBER: _ClassVar[int]
    POLICY_MASK_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_MASK_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_SCALE_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_STORED_VALUES_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    TARGET_OWNERSHIP_FIELD_NUMBER: _ClassVar[int]
    OWNERSHIP_MASK_FIELD_NUMBER: _ClassVar[int]
    NEXT_OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_OBSERVATION_MASK_FIELD_NUMBER: _ClassVar[int]
    TARGET_LEGAL_FIELD_NUMBER: _ClassVar[int]
    TARGET_TERMINAL_FIELD_NUMBER: _ClassVar[int]
    RULES_MASK_FIELD_NUMBER: _ClassVar[int]
    observations: Tensor
    actions: Tensor
    target_values: Tensor
    target_rewards: Tensor
    target_policies: Tensor
    value_mask: Tensor
    reward_mask: Tensor
    policy_mask: Tensor
    weights: Tensor
    segment_ids: _containers.RepeatedScalarFieldContainer[str]
    positions: Tensor
    model_versions: Tensor
    bootstrap_mask: Tensor
    bootstrap_scale: Tensor
    bootstrap_stored_values: Tensor
    bootstrap_observations: Tensor
    target_ownership: Tensor
    ownership_mask: Tensor
    next_observations: Tensor
    next_observation_mask: Tensor
    target_legal: Tensor
    target_terminal: Tensor
    rules_mask: Tensor
    def __init__(self, observations: _Optional[_Union[Tensor, _Mapping]] = ..., actions: _Optional[_Union[Tensor, _Mapping]] = ..., target_values: _Optional[_Union[Tensor, _Mapping]] = ..., target_rewards: _Optional[_Union[Tensor, _Mapping]] = ..., target_policies: _Optional[_Union[Tensor, _Mapping]] = ..., value_mask: _Optional[_Union[Tensor, _Mapping]] = ..., reward_mask: _Optional[_Union[Tensor, _Mapping]] = ..., policy_mask: _Optional[_Union[Tensor, _Mapping]] = ..., weights: _Optional[_Union[Tensor, _Mapping]] = ..., segment_ids: _Optional[_Iterable[str]] = ..., positions: _Optional[_Union[Tensor, _Mapping]] = ..., model_versions: _Optional[_Union[Tensor, _Mapping]] = ..., bootstrap_mask: _Optional[_Union[Tensor, _Mapping]] = ..., bootstrap_scale: _Optional[_Union[Tensor, _Mapping]] = ..., bootstrap_stored_values: _Optional[_Union[Tensor, _Mapping]] = ..., bootstrap_observations: _Optional[_Union[Tensor, _Mapping]] = ..., target_ownership: _Optional[_Union[Tensor, _Mapping]] = ..., ownership_mask: _Optional[_Union[Tensor, _Mapping]] = ..., next_observations: _Optional[_Union[Tensor, _Mapping]] = ..., next_observation_mask: _Optional[_Union[Tensor, _Mapping]] = ..., target_legal: _Optional[_Union[Tensor, _Mapping]] = ..., target_terminal: _Optional[_Union[Tensor, _Mapping]] = ..., rules_mask: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class PriorityUpdate(_message.Message):
    __slots__ = ("segment_ids", "positions", "priorities")
    SEGMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    PRIORITIES_FIELD_NUMBER: _ClassVar[int]
    segment_ids: _containers.RepeatedScalarFieldContainer[str]
    positions: Tensor
    priorities: Tensor
    def __init__(self, segment_ids: _Optional[_Iterable[str]] = ..., positions: _Optional[_Union[Tensor, _Mapping]] = ..., priorities: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class PriorityAck(_message.Message):
    __slots__ = ("updated", "stale")
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    updated: int
    stale: int
    def __init__(self, updated: _Optional[int] = ..., stale: _Optional[int] = ...) -> None: ...

class ReadSegmentsRequest(_message.Message):
    __slots__ = ("count", "uniform")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    UNIFORM_FIELD_NUMBER: _ClassVar[int]
    count: int
    uniform: bool
    def __init__(self, count: _Optional[int] = ..., uniform: _Optional[bool] = ...) -> None: ...

class WriteTargetsAck(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    def __init__(self, stored: _Optional[bool] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShardStats(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.ScalarMap[str, float]
    def __init__(self, values: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ReplayStats(_message.Message):
    __slots__ = ("totals", "shards")
    class TotalsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    totals: _containers.ScalarMap[str, float]
    shards: _containers.RepeatedCompositeFieldContainer[ShardStats]
    def __init__(self, totals: _Optional[_Mapping[str, float]] = ..., shards: _Optional[_Iterable[_Union[ShardStats, _Mapping]]] = ...) -> None: ...
