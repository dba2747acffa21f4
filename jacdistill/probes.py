"""Random probe directions for the stochastic penalty estimators (hutchinson, hessian)."""

import torch

DISTRIBUTIONS = ("rademacher", "gaussian")


def draw_probes(shape, dist: str, like: torch.Tensor) -> torch.Tensor:
    """Random directions with E[v vᵀ] = I: Rademacher (±1) or standard Gaussian."""
    if dist == "gaussian":
        return torch.randn(shape, dtype=like.dtype, device=like.device)
    return torch.randint(0, 2, shape, device=like.device).to(like.dtype).mul_(2).sub_(1)
