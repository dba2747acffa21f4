"""The teacher: an MLP trained with Adam on MSE + λ·penalty, early-stopped on validation MSE (or
trained for all its epochs), keeping its best validation epoch's weights (or its last epoch's)."""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from jacdistill import probes
from jacdistill.contracts import Regularizer
from jacdistill.options import JacdistillError

ACTIVATIONS = {"tanh": nn.Tanh, "silu": nn.SiLU, "relu": nn.ReLU}
KEEP = ("best", "last")  # which epoch's weights a teacher keeps: best on validation, last trained


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
        self.architecture: dict[str, Any] = {
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


class MLPStack(nn.Module):
    """k MLPs of one architecture side by side, trained together: each weight is stacked along a
    leading member axis, so one batched matrix product serves every member.

    Inputs have shape (k, B, d_in), member i seeing its own rows ``x[i]``; outputs (k, B, d_out).
    Parameters: ``weights[l]`` (k, H_l, H_{l-1}), ``biases[l]`` (k, H_l), ``out_weight``
    (k, d_out, H_L), ``out_bias`` (k, d_out) — the members' ``hidden[l].weight`` etc. stacked.
    """

    def __init__(self, members: Sequence[MLP]):
        super().__init__()
        first = members[0]
        if any(m.architecture != first.architecture for m in members):
            raise ValueError("an MLPStack's members share one architecture")
        self.architecture, self.activation = first.architecture, first.activation
        self.act = ACTIVATIONS[self.activation]()

        def stacked(get) -> nn.Parameter:
            return nn.Parameter(torch.stack([get(m).detach() for m in members]))

        layers = range(len(first.hidden))
        self.weights = nn.ParameterList(stacked(lambda m, i=i: m.hidden[i].weight) for i in layers)
        self.biases = nn.ParameterList(stacked(lambda m, i=i: m.hidden[i].bias) for i in layers)
        self.out_weight = stacked(lambda m: m.out.weight)
        self.out_bias = stacked(lambda m: m.out.bias)

    def __len__(self) -> int:
        return self.out_weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for w, b in zip(self.weights, self.biases):
            x = self.act(torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2)))
        return torch.baddbmm(self.out_bias.unsqueeze(1), x, self.out_weight.transpose(1, 2))

    def stacked(self) -> list[nn.Parameter]:
        """The stacked parameters in one fixed order: weights, biases, out_weight, out_bias."""
        return [*self.weights, *self.biases, self.out_weight, self.out_bias]

    def member_weights(self, i: int) -> list[torch.Tensor]:
        """A copy of member ``i``'s weights, in the order of :meth:`stacked`."""
        return [p[i].detach().clone() for p in self.stacked()]

    def member(self, i: int) -> MLP:
        """Member ``i`` as a plain MLP (a copy of its weights)."""
        return self.as_mlp(self.member_weights(i))

    def as_mlp(self, weights: list[torch.Tensor]) -> MLP:
        """A plain MLP of this stack's architecture holding ``weights`` (from member_weights)."""
        model = MLP(**self.architecture).to(weights[0].device)
        layers = len(model.hidden)
        with torch.no_grad():
            for i in range(layers):
                layer = cast(nn.Linear, model.hidden[i])
                layer.weight.copy_(weights[i])
                layer.bias.copy_(weights[layers + i])
            model.out.weight.copy_(weights[-2])
            model.out.bias.copy_(weights[-1])
        return model

    def keep_members(self, rows: list[int], optimizer: torch.optim.Optimizer) -> None:
        """Drop every member but ``rows`` (in that order), from the weights and from the
        optimizer's per-element state (Adam's moments), so the members left train on as before."""
        for p in self.stacked():
            shape = p.shape
            p.data, p.grad = p.data[rows], None
            state = optimizer.state[p]
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == shape:
                    state[key] = value[rows]


@dataclass
class TrainConfig:
    epochs: int = 500
    batch_size: int = 64
    lr: float = 3e-3
    patience: int | None = 40  # epochs without validation improvement before stopping; None: never
    device: str = "cpu"
    reg_every: int = 1  # lazy penalty: apply it every k-th step with weight k·λ
    keep: str = "best"  # the weights kept: of the best validation epoch, or of the "last" trained
    # (patience and keep are EarlyStopping's: the search builds its schedules from them)


@dataclass
class TrainResult:
    epochs_run: int
    best_epoch: int  # the epoch whose weights were kept (the last one trained with keep="last")
    best_val_mse: float  # the kept weights' validation MSE
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
    """The usual schedule: constant λ; keep the best validation epoch (``keep="best"``) or every
    epoch, so that the last one trained is what remains (``keep="last"``); stop after ``patience``
    epochs without improvement, or never (``patience=None``: all the epochs run). ``keep="last"``
    with ``patience=None`` is a network trained to the end, whatever validation says."""

    def __init__(self, lam: float, patience: int | None, keep: str = "best"):
        if keep not in KEEP:
            raise JacdistillError(f"keep must be one of {', '.join(map(repr, KEEP))}, got {keep!r}")
        self.lam, self.patience, self.keep = float(lam), patience, keep
        self.best, self.best_epoch = math.inf, 0

    @classmethod
    def of(cls, lam: float, config: TrainConfig) -> EarlyStopping:
        """The schedule of a constant-λ teacher trained with ``config`` (its patience and keep)."""
        return cls(lam, config.patience, config.keep)

    def lam_for(self, epoch: int) -> float:
        return self.lam

    def observe(self, epoch: int, val_mse: float) -> tuple[bool, bool]:
        improved = val_mse < self.best
        if improved:
            self.best, self.best_epoch = val_mse, epoch
        stop = self.patience is not None and epoch - self.best_epoch >= self.patience
        return improved or self.keep == "last", stop


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
    """Train one ``model`` in place (the kept epoch's weights restored) and report.

    ``schedule`` sets λ per epoch and decides which weights are kept and when to stop (usually
    :class:`EarlyStopping`: ``EarlyStopping.of(λ, config)`` follows ``config``'s patience and
    keep). Inputs are standardized float arrays; ``y`` has shape (n,) or (n, k). Shuffling is
    drawn from a generator seeded by ``seed`` so the same seed gives the same weights on CPU.
    """
    data = _Data(X_train, y_train, X_val, y_val, config.device)
    model.to(data.device)
    (kept, result) = _fit(model, regularizer, [schedule], data, config, [seed], on_epoch)[0]
    model.load_state_dict(kept)
    return result


def train_stack(
    models: Sequence[MLP],
    regularizer: Regularizer,
    schedules: Sequence[Schedule],
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    config: TrainConfig,
    seeds: Sequence[int],
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[tuple[MLP, TrainResult]]:
    """Train k MLPs of one architecture together, as an :class:`MLPStack`, each from its own
    initial weights with its own schedule and seed (minibatch order): member by member what
    :func:`train` gives, in one loop of batched products. A member that stops keeps its weights
    (its best epoch's or, with ``keep="last"``, those it stopped with) and leaves the stack; the
    rest go on (all to the last epoch where none stops early). Returns each member's kept MLP and
    report, in order.

    ``regularizer`` must handle stacks (``Regularizer.handles_stacks``)."""
    data = _Data(X_train, y_train, X_val, y_val, config.device)
    stack = MLPStack(models).to(data.device)
    fitted = _fit(stack, regularizer, list(schedules), data, config, list(seeds), on_epoch)
    return [(stack.as_mlp(kept), result) for kept, result in fitted]


class _Data:
    """Training and validation rows as float32 tensors on the training device."""

    def __init__(self, X_train, y_train, X_val, y_val, device):
        self.device = torch.device(device)
        as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)
        self.X, self.Xv = as_tensor(X_train), as_tensor(X_val)
        self.y = as_tensor(y_train).reshape(len(self.X), -1)
        self.yv = as_tensor(y_val).reshape(len(self.Xv), -1)


def _fit(model, regularizer, schedules, data, config, seeds, on_epoch) -> list[tuple[Any, TrainResult]]:
    """The training loop, for one plain model or an MLPStack (one schedule and seed per member),
    with each member's penalty draws from its own stream (:func:`probes.streams`). Returns each
    member's kept weights (a state dict, or member_weights of a stack) and report."""
    penalty_streams = [_penalty_stream(seed, data.device) for seed in seeds]
    with probes.streams(penalty_streams):
        return _loop(model, regularizer, schedules, data, config, seeds, on_epoch, penalty_streams)


def _penalty_stream(seed: int, device: torch.device) -> torch.Generator:
    """The generator of a teacher's penalty draws: seeded by its seed, apart from its shuffling."""
    return torch.Generator(device).manual_seed(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))


def _loop(model, regularizer, schedules, data, config, seeds, on_epoch, penalty_streams):
    stacked = isinstance(model, MLPStack)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    alive = list(range(len(schedules)))  # the members still training, in the stack's order
    kept: list = [None] * len(schedules)
    histories: list[list[dict]] = [[] for _ in schedules]
    n, step = len(data.X), 0
    for epoch in range(1, config.epochs + 1):
        lams = [schedules[i].lam_for(epoch) for i in alive]
        order = torch.stack([torch.randperm(n, generator=generators[i]) for i in alive]).to(data.device)
        model.train()
        totals = torch.zeros(len(alive), dtype=torch.float64)
        for rows in order.split(config.batch_size, dim=1):
            step += 1
            weights = [lazy_weight(lam, step, config.reg_every) for lam in lams]
            weight: float | torch.Tensor
            if stacked:
                x, y, weight = data.X[rows], data.y[rows], torch.tensor(weights, device=data.device)
            else:
                x, y, weight = data.X[rows[0]], data.y[rows[0]], weights[0]
            losses = training_step(model, optimizer, regularizer, x, y, weight).reshape(-1).double().cpu()
            if not torch.isfinite(losses).all():
                raise JacdistillError(
                    f"teacher training diverged at epoch {epoch} (loss {losses.max().item()}); "
                    f"try a smaller --lam or learning rate"
                )
            totals += losses * rows.shape[1]
        model.eval()
        with torch.no_grad():
            Xv = data.Xv.expand(len(alive), -1, -1) if stacked else data.Xv
            val_mses = (model(Xv) - data.yv).square().mean(dim=(-2, -1)).reshape(-1).tolist()
        leaving = []
        for j, (i, lam, val_mse) in enumerate(zip(alive, lams, val_mses)):
            histories[i].append(
                {"epoch": epoch, "lam": lam, "train_loss": totals[j].item() / n, "val_mse": val_mse}
            )
            keep, stop = schedules[i].observe(epoch, val_mse)
            if keep or kept[i] is None:
                weights_now = model.member_weights(j) if stacked else copy.deepcopy(model.state_dict())
                kept[i] = (epoch, val_mse, lam, weights_now)
            if stop:
                leaving.append(j)
        if on_epoch:
            on_epoch(epoch, val_mses[0])
        if leaving:
            staying = [j for j in range(len(alive)) if j not in leaving]
            alive = [alive[j] for j in staying]
            if not alive:
                break
            model.keep_members(staying, optimizer)
            penalty_streams[:] = [penalty_streams[j] for j in staying]
    return [
        (weights, TrainResult(len(history), epoch, val_mse, lam, history))
        for (epoch, val_mse, lam, weights), history in zip(kept, histories)
    ]


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
    lam: float | torch.Tensor,
) -> torch.Tensor:
    """One optimisation step on MSE + λ·penalty; returns the loss before the step (one value per
    member for an MLPStack, whose ``lam`` is then a tensor with one λ per member)."""
    loss = regularizer.loss(model, x, y, lam)
    optimizer.zero_grad(set_to_none=True)
    loss.sum().backward()
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
