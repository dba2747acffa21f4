"""The teacher: an MLP trained with Adam on MSE + λ·penalty, early-stopped on validation MSE."""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from jacdistill.contracts import Regularizer
from jacdistill.options import JacdistillError

ACTIVATIONS = {"tanh": nn.Tanh, "silu": nn.SiLU, "relu": nn.ReLU}


class MLP(nn.Module):
    """Fully connected network ``d_in -> widths... -> d_out`` with one activation throughout.

    The plain structure (``hidden`` linear layers, each followed by ``activation``, then ``out``)
    is what fast Jacobian paths recognise.
    """

    def __init__(
        self, d_in: int, widths: tuple[int, ...] = (64, 64), d_out: int = 1, activation: str = "silu"
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise JacdistillError(f"unknown activation '{activation}'; known: {', '.join(ACTIVATIONS)}")
        if not widths or any(int(w) < 1 for w in widths):
            raise JacdistillError(f"widths must be one or more positive integers, got {widths}")
        sizes = [d_in, *widths]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(sizes[-1], d_out)
        self.architecture = {
            "d_in": d_in,
            "widths": [int(w) for w in widths],
            "d_out": d_out,
            "activation": activation,
        }
        self.activation = activation
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = self.act(layer(x))
        return self.out(x)


@dataclass
class TrainConfig:
    epochs: int = 500
    batch_size: int = 64
    lr: float = 3e-3
    patience: int = 40  # epochs without validation improvement before stopping (EarlyStopping)
    device: str = "cpu"
    reg_every: int = 1  # lazy penalty: apply it every k-th step with weight k·λ


@dataclass
class TrainResult:
    epochs_run: int
    best_epoch: int  # the epoch whose weights were kept
    best_val_mse: float
    lam: float  # λ in force at that epoch
    history: list[dict]  # per epoch: λ, train loss, validation MSE


class Schedule(ABC):
    """How λ moves during one training run and which epochs' weights are kept.

    ``lam_for(epoch)`` is the λ of an epoch; ``observe(epoch, val_mse)`` returns (keep this
    epoch's weights, stop now). Tuners that move λ during training (the ``adaptive`` tuner)
    subclass it.
    """

    @abstractmethod
    def lam_for(self, epoch: int) -> float:
        """λ during ``epoch`` (counted from 1)."""

    @abstractmethod
    def observe(self, epoch: int, val_mse: float) -> tuple[bool, bool]:
        """(keep this epoch's weights, stop training) after seeing its validation MSE."""


class EarlyStopping(Schedule):
    """The usual schedule: constant λ; keep the best validation epoch; stop after ``patience``
    epochs without improvement."""

    def __init__(self, lam: float, patience: int):
        self.lam, self.patience, self.best, self.best_epoch = float(lam), patience, math.inf, 0

    def lam_for(self, epoch: int) -> float:
        return self.lam

    def observe(self, epoch: int, val_mse: float) -> tuple[bool, bool]:
        if val_mse < self.best:
            self.best, self.best_epoch = val_mse, epoch
            return True, False
        return False, epoch - self.best_epoch >= self.patience


def train(
    model: nn.Module,
    regularizer: Regularizer,
    schedule: Schedule,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    config: TrainConfig,
    seed: int,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place (the kept epoch's weights restored) and report.

    ``schedule`` sets λ per epoch and decides which weights are kept and when to stop (usually
    :class:`EarlyStopping`). Inputs are standardized float arrays; ``y`` has shape (n,) or (n, k).
    Shuffling is drawn from a generator seeded by ``seed`` so the same seed gives the same weights
    on CPU.
    """
    device = torch.device(config.device)
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)
    Xt, Xv = as_tensor(X_train), as_tensor(X_val)
    yt, yv = as_tensor(y_train).reshape(len(Xt), -1), as_tensor(y_val).reshape(len(Xv), -1)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(seed)
    kept = None
    history, step = [], 0
    for epoch in range(1, config.epochs + 1):
        epoch_lam = schedule.lam_for(epoch)
        model.train()
        total, count = 0.0, 0
        for batch in torch.randperm(len(Xt), generator=generator).to(device).split(config.batch_size):
            step += 1
            loss = training_step(
                model,
                optimizer,
                regularizer,
                Xt[batch],
                yt[batch],
                lazy_weight(epoch_lam, step, config.reg_every),
            ).item()
            if not math.isfinite(loss):
                raise JacdistillError(
                    f"teacher training diverged at epoch {epoch} (loss {loss}); "
                    f"try a smaller --lam or learning rate"
                )
            total += loss * len(batch)
            count += len(batch)
        model.eval()
        with torch.no_grad():
            val_mse = torch.mean((model(Xv) - yv) ** 2).item()
        history.append({"epoch": epoch, "lam": epoch_lam, "train_loss": total / count, "val_mse": val_mse})
        if on_epoch:
            on_epoch(epoch, val_mse)
        keep, stop = schedule.observe(epoch, val_mse)
        if keep or kept is None:
            kept = (epoch, val_mse, epoch_lam, copy.deepcopy(model.state_dict()))
        if stop:
            break
    assert kept is not None  # the first epoch is always kept
    model.load_state_dict(kept[3])
    return TrainResult(len(history), kept[0], kept[1], kept[2], history)


def lazy_weight(lam: float, step: int, every: int) -> float:
    """λ for step ``step`` (counted from 1) when the penalty is applied every ``every`` steps with
    weight every·λ, so its average weight stays λ (the StyleGAN2 lazy-regularization trick)."""
    return lam * every if step % every == 0 else 0.0


def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    regularizer: Regularizer,
    x: torch.Tensor,
    y: torch.Tensor,
    lam: float,
) -> torch.Tensor:
    """One optimisation step on MSE + λ·penalty; returns the loss before the step."""
    loss = regularizer.loss(model, x, y, lam)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def predict(model: nn.Module, X: np.ndarray) -> np.ndarray:
    """Teacher predictions for standardized inputs, as float64 (n,) or (n, k)."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(torch.as_tensor(X, dtype=torch.float32, device=device)).double().cpu().numpy()
    return out[:, 0] if out.shape[1] == 1 else out


def checkpoint(model: MLP, **meta) -> dict:
    """What a teacher file holds: architecture, weights and ``meta`` (plain lists and strings only,
    so that ``torch.load(..., weights_only=True)`` can read it)."""
    return {"architecture": model.architecture, "state_dict": model.state_dict(), **meta}


def load(path) -> tuple[MLP, dict]:
    """Rebuild a teacher saved with :func:`checkpoint`; returns (model, the whole checkpoint)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = MLP(**saved["architecture"])
    model.load_state_dict(saved["state_dict"])
    return model.eval(), saved
