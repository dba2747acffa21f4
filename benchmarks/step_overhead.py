"""Per-step cost of each penalty relative to a plain MSE step (forward + backward + Adam).

Every cell trains its own copy of the same MLP on the same batch; cells take turns so all see the
same machine. Run: ``python benchmarks/step_overhead.py`` or ``jacdistill bench step [--json]``.
"""

from __future__ import annotations

import sys

import torch

from jacdistill.benchmarks import harness
from jacdistill.registry import registry
from jacdistill.teacher import MLP, lazy_weight, training_step

NETS = [((8, 64, 64, 1), 256), ((8, 256, 256, 256, 1), 1024)]
ACTIVATIONS = ("tanh", "silu")
# (regularizer, its options, reg_every)
METHODS = [
    ("none", {}, 1),
    ("jacobian", {"backend": "autograd"}, 1),
    ("jacobian", {"backend": "analytic"}, 1),
    ("jacobian", {"backend": "analytic"}, 8),
    ("hutchinson", {"mode": "jvp"}, 1),
    ("hutchinson", {"mode": "vjp"}, 1),
    ("hutchinson", {"mode": "fd"}, 1),
    ("hutchinson", {"mode": "fd"}, 8),
    ("hutchinson", {"mode": "fd", "rows": 0.25}, 1),
    ("hessian", {}, 1),
]
LAM = 1e-2


def method_label(options: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items() if k != "backend") or "-"


def cell(net, batch, activation, regularizer, options, every, device):
    torch.manual_seed(0)
    d, *widths, k = net
    model = MLP(d, tuple(widths), k, activation).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    penalty = registry().get("regularizer", regularizer)(**options)
    x = torch.randn(batch, d, device=device)
    y = torch.randn(batch, k, device=device)
    step = 0

    def run_step():
        nonlocal step
        step += 1
        training_step(model, optimizer, penalty, x, y, lazy_weight(LAM, step, every))

    return run_step


def measure(rounds: int = 10, repeats: int = 24, warmup: int = 16, device: str = "cpu") -> list[dict]:
    """One row per (net, batch, activation, method): median ms per step and ratio to plain."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows = []
    for net, batch in NETS:
        for activation in ACTIVATIONS:
            cells = {
                i: cell(net, batch, activation, reg, opts, every, device)
                for i, (reg, opts, every) in enumerate(METHODS)
            }
            seconds = harness.interleaved_medians(cells, rounds, repeats, warmup, sync)
            for i, (reg, opts, every) in enumerate(METHODS):
                rows.append(
                    {
                        "net": "-".join(map(str, net)),
                        "batch": batch,
                        "activation": activation,
                        "regularizer": reg,
                        "options": method_label(opts),
                        "backend": opts.get("backend", "-"),
                        "reg_every": every,
                        "ms_per_step": seconds[i] * 1e3,
                        "ratio": seconds[i] / seconds[0],
                    }
                )
    return rows


COLUMNS = [
    ("net", ""),
    ("batch", ""),
    ("activation", ""),
    ("regularizer", ""),
    ("options", ""),
    ("backend", ""),
    ("reg_every", ""),
    ("ms_per_step", ".3f"),
    ("ratio", ".2f"),
]


if __name__ == "__main__":
    from jacdistill.benchmarks.commands import run_standalone

    run_standalone("step", sys.argv[1:])
