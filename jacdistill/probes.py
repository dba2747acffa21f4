"""Random draws of the stochastic penalty estimators (hutchinson, hessian): probe directions and
row subsets, each teacher's from its own random stream.

The training loop opens :func:`streams` with one generator per teacher it trains (one for a plain
MLP, k for an MLPStack, seeded from the teachers' seeds), so a member of a stack draws what it
would draw trained alone. Outside training (a penalty evaluated by hand) draws come from torch's
global generator.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch

DISTRIBUTIONS = ("rademacher", "gaussian")

_active: ContextVar[Sequence[torch.Generator] | None] = ContextVar("jacdistill_streams", default=None)


@contextmanager
def streams(generators: Sequence[torch.Generator]) -> Iterator[None]:
    """Draws inside come from ``generators``, one per teacher being trained (the list may shrink
    in place as members leave a stack)."""
    token = _active.set(generators)
    try:
        yield
    finally:
        _active.reset(token)


def _generators(members: int | None) -> Sequence[torch.Generator | None]:
    """One generator per member (None: the global one); ``members`` None for a plain model."""
    active = _active.get()
    if active is None:
        return [None] * (members or 1)
    if len(active) != (members or 1):
        raise ValueError(f"{len(active)} random streams are open for {members or 1} teacher(s)")
    return active


def _draw(shape, dist: str, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = like.device if generator is None else generator.device
    if dist == "gaussian":
        out = torch.randn(shape, dtype=like.dtype, device=device, generator=generator)
    else:
        out = torch.randint(0, 2, shape, device=device, generator=generator).to(like.dtype).mul_(2).sub_(1)
    return out.to(like.device)


def draw_probes(shape, dist: str, like: torch.Tensor, member_axis: int | None = None) -> torch.Tensor:
    """Random directions with E[v vᵀ] = I: Rademacher (±1) or standard Gaussian, of ``shape``.

    ``member_axis``: for a stack, the axis that indexes its members; member i's slice is drawn
    from member i's stream with the shape it would have alone."""
    if member_axis is None:
        return _draw(shape, dist, like, _generators(None)[0])
    alone = (*shape[:member_axis], *shape[member_axis + 1 :])
    draws = [_draw(alone, dist, like, g) for g in _generators(shape[member_axis])]
    return torch.stack(draws, dim=member_axis)


def choose_rows(n: int, m: int, like: torch.Tensor, members: int | None = None) -> torch.Tensor:
    """``m`` of ``n`` rows at random, without repetition: shape (m,), or (members, m) for a stack."""
    picks = [
        torch.randperm(n, device=like.device if g is None else g.device, generator=g)[:m].to(like.device)
        for g in _generators(members)
    ]
    return picks[0] if members is None else torch.stack(picks)


def squared_sum(t: torch.Tensor, member_axis: int | None = None) -> torch.Tensor:
    """Σ t² over every axis (a scalar) or, for a stack, over every axis but ``member_axis``."""
    t = t.pow(2)
    return t.sum() if member_axis is None else t.movedim(member_axis, 0).flatten(1).sum(1)
