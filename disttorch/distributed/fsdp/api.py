"""torch.distributed.fsdp.api: the enums and config classes FSDP is configured with."""
from dataclasses import dataclass
from enum import Enum, auto
from typing import NamedTuple

__all__ = ["BackwardPrefetch", "CPUOffload", "FullStateDictConfig", "LocalStateDictConfig",
           "ShardedStateDictConfig", "ShardingStrategy", "StateDictConfig", "StateDictSettings",
           "StateDictType"]


class ShardingStrategy(Enum):
    """FULL_SHARD: parameters are gathered before a unit's forward and again before its
    backward, and freed after each. SHARD_GRAD_OP: gathered before forward and kept until the
    unit's backward. Gradients and optimizer state are sharded with both."""
    FULL_SHARD = auto()
    SHARD_GRAD_OP = auto()
    NO_SHARD = auto()
    HYBRID_SHARD = auto()
    _HYBRID_SHARD_ZERO2 = auto()


class BackwardPrefetch(Enum):
    BACKWARD_PRE = auto()
    BACKWARD_POST = auto()


class StateDictType(Enum):
    """FULL_STATE_DICT: the unsharded parameters under the original module's keys.
    SHARDED_STATE_DICT: per key, this rank's dim-0 chunk as a ShardedTensor.
    LOCAL_STATE_DICT: this rank's flat shards, as stored."""
    FULL_STATE_DICT = auto()
    LOCAL_STATE_DICT = auto()
    SHARDED_STATE_DICT = auto()


@dataclass
class CPUOffload:
    offload_params: bool = False


@dataclass
class StateDictConfig:
    offload_to_cpu: bool = False


@dataclass
class FullStateDictConfig(StateDictConfig):
    rank0_only: bool = False


@dataclass
class LocalStateDictConfig(StateDictConfig):
    pass


@dataclass
class ShardedStateDictConfig(StateDictConfig):
    _use_dtensor: bool = False


class StateDictSettings(NamedTuple):
    state_dict_type: StateDictType
    state_dict_config: StateDictConfig
    optim_state_dict_config: object
