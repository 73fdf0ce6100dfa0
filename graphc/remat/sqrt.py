"""The "sqrt" policy (Chen et al. 2016): a checkpoint every k-th segment, k ≈ √n, or a ladder of k under a budget."""

from __future__ import annotations

import functools
import math


from graphc.ir import Node
from graphc.dataflow import Dataflow
from graphc.remat.candidates import Candidate, Deadline
from graphc.remat.segments import checkpoint_recompute_flops, checkpoint_segments


def _sqrt_candidates(flow: Dataflow, segments: list[list[Node]], budget: int | None,
                     deadline: Deadline | None = None) -> list[Candidate]:
    """√n checkpointing at the ladder of settings (one setting, k ≈ √n, without a budget).

    A setting's recompute is counted without rewriting the flow
    (:func:`~graphc.remat.segments.checkpoint_recompute_flops`); only the settings
    :func:`~graphc.remat.candidates.choose` measures are built, each once. The ladder stops
    growing at ``deadline``.
    """
    count = len(segments)
    settings = [max(1, round(math.sqrt(count)))] if budget is None else _ladder(count)
    candidates = []
    for k in settings:
        if candidates and deadline is not None and deadline.passed():
            break
        candidates.append(Candidate(f"sqrt, a checkpoint every {k} segments",
                                    checkpoint_recompute_flops(flow, segments, k),
                                    functools.cache(functools.partial(checkpoint_segments, flow, segments, k))))
    return candidates


def _ladder(count: int) -> list[int]:
    """Settings 1…32, then a geometric ladder (×1.25) up to ``count``: the candidates tried under a budget."""
    settings = list(range(1, min(count, 32) + 1))
    s = 32
    while s < count:
        s = min(count, int(s * 1.25) + 1)
        settings.append(s)
    return settings
