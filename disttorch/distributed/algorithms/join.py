"""torch.distributed.algorithms.join: training on uneven inputs.

A rank that runs out of batches leaves the ``with Join(...)`` block early; in
``__exit__`` it keeps answering the collectives the other ranks still issue,
one training iteration at a time, through each joinable's ``JoinHook``. Every
iteration of a rank that has not joined starts with an all-reduce of 1 (sent
by the first joinable in ``Join.notify_join_context``); a joined rank
contributes 0 to that same all-reduce, so the sum counts the ranks still
training and everyone agrees on when to stop.
"""
import warnings
from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from ... import distributed as dist
from ...core.tensor import Tensor

__all__ = ["Join", "JoinHook", "Joinable"]

# A joined rank that has shadowed this many iterations is warned that the input skew is large.
_WARN_THRESHOLD = 1000


class JoinHook:
    """Shadows the collectives of one training iteration (``main_hook``) and finishes up once
    every rank has joined (``post_hook``)."""

    def main_hook(self):
        """Called once per iteration that some other rank is still running."""

    def post_hook(self, is_last_joiner):
        """Called once every rank has joined; ``is_last_joiner`` if this rank joined last."""


class _JoinConfig(NamedTuple):
    enable: bool
    throw_on_early_termination: bool
    is_first_joinable: bool

    @staticmethod
    def construct_disabled_join_config():
        return _JoinConfig(enable=False, throw_on_early_termination=False, is_first_joinable=False)


class Joinable(ABC):
    """A class whose per-iteration collectives a Join context can shadow."""

    @abstractmethod
    def __init__(self):
        super().__init__()
        self._join_config = _JoinConfig.construct_disabled_join_config()

    @abstractmethod
    def join_hook(self, **kwargs):
        """The JoinHook that shadows this object's collectives."""

    @property
    @abstractmethod
    def join_device(self):
        """The device of the Join context's own all-reduces."""

    @property
    @abstractmethod
    def join_process_group(self):
        """The process group of the Join context's own all-reduces."""


def _count(value, device, group, async_op=False):
    flag = Tensor._wrap(np.array([value], dtype=np.float32)).to(device)
    work = dist.all_reduce(flag, group=group, async_op=async_op)
    return work if async_op else float(flag.item())


class Join:
    """Context manager for uneven inputs: ranks that finish early shadow the others' collectives.

    ``joinables`` are iterated in order; they must share one process group. With
    ``throw_on_early_termination=True`` every rank raises as soon as one rank runs out.
    """

    def __init__(self, joinables, enable=True, throw_on_early_termination=False, **kwargs):
        if len(joinables) == 0:
            raise ValueError("The join context manager requires at least one joinable")
        self._joinables = joinables
        self._join_hooks = [joinable.join_hook(**kwargs) for joinable in joinables]
        self._enable = enable
        self._throw_on_early_termination = throw_on_early_termination
        self._set_joinable_configs()
        self._extract_dist_info()

    def _set_joinable_configs(self):
        for index, joinable in enumerate(self._joinables):
            joinable._join_config = _JoinConfig(
                enable=self._enable, throw_on_early_termination=self._throw_on_early_termination,
                is_first_joinable=index == 0)

    def _extract_dist_info(self):
        process_group, device = None, None
        for joinable in self._joinables:
            if process_group is None:
                process_group = joinable.join_process_group
            elif process_group != joinable.join_process_group:
                raise ValueError("Using join context manager with multiple process groups")
            if device is None:
                device = joinable.join_device
        self._process_group = process_group
        self._rank = dist.get_rank(process_group)
        self._device = device

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        try:
            if not self._enable or exc_type:
                return  # an exception inside the block propagates as it is
            is_last_joiner = True
            shadowed = 0
            while True:
                if shadowed > _WARN_THRESHOLD:
                    warnings.warn(
                        f"Detected uneven input skew of greater than {_WARN_THRESHOLD}. This means that "
                        f"rank {self._rank} has at least {_WARN_THRESHOLD} fewer inputs than other "
                        "currently-active ranks. This level of skew could lead to performance "
                        "degradation during training.", stacklevel=2)
                if self._get_num_nonjoined_procs() == 0:
                    break
                if self._throw_on_early_termination:
                    self._notify_procs_to_terminate()
                for join_hook in self._join_hooks:
                    join_hook.main_hook()
                is_last_joiner = False
                shadowed += 1
            for join_hook in self._join_hooks:
                join_hook.post_hook(is_last_joiner)
        finally:
            for joinable in self._joinables:
                joinable._join_config = _JoinConfig.construct_disabled_join_config()

    def _get_num_nonjoined_procs(self):
        return _count(0.0, self._device, self._process_group)

    def _notify_procs_to_terminate(self):
        _count(1.0, self._device, self._process_group)
        raise RuntimeError(f"Rank {self._rank} exhausted all inputs.")

    @staticmethod
    def notify_join_context(joinable):
        """Tell the Join context that this rank has not joined; call before each iteration's
        collectives. Only the first joinable communicates; returns its async Work (else None)."""
        if not hasattr(joinable, "_join_config"):
            raise RuntimeError(f"Check that the {type(joinable).__name__} constructor calls the "
                               "``Joinable`` constructor")
        config = joinable._join_config
        if not config.is_first_joinable or not config.enable:
            return None
        device, group = joinable.join_device, joinable.join_process_group
        work = _count(1.0, device, group, async_op=True)
        if config.throw_on_early_termination:
            if _count(0.0, device, group):
                raise RuntimeError("Detected at least one rank that exhausted inputs. "
                                   "Throwing across all ranks.")
        return work
