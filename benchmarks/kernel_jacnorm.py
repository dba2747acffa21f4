"""The fused Triton Jacobian-norm kernels against the torch ways of computing the same thing.

One row per (net, batch, method, pass): the median time, the speedup over eager double backward
and the largest relative error against a float64 reference (``analytic`` in float64).

- pass ``forward``: f(x) and every per-sample ‖∂f/∂x‖²_F, no gradient;
- pass ``forward+backward``: loss = MSE + λ·mean_b ‖J_b‖²_F and every parameter's gradient.

Methods: ``triton`` (:mod:`jacdistill.kernels.jacnorm`; the loss and all gradients in one fused
launch), ``eager_double_backward`` (autograd with ``create_graph=True``), ``vmap_jacrev``
(``torch.func``), ``analytic_torch`` (the closed forms in eager torch), ``compiled_analytic``
(the same under ``torch.compile``, where it works). With ``variants=True`` also the designs the
kernel did not choose: ``triton_two_pass`` (forward kernel, then a backward kernel that
recomputes the forward, through ``output_and_sqnorms(grad=True)``), ``triton_wgrad_gemm`` (every
weight gradient through factor buffers and a GEMM), ``triton_wgrad_kernel`` (every weight
gradient summed inside the kernel) and ``triton_tf32x3`` (tensor-core products).

Run: ``python benchmarks/kernel_jacnorm.py [--json] [--interpret]`` or ``jacdistill bench kernel``.
``interpret=True`` runs the Triton interpreter on CPU on a tiny grid: a correctness run, its
times mean nothing.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import time

import torch

from jacdistill.benchmarks import harness
from jacdistill.kernels import analytic
from jacdistill.teacher import MLP

BATCHES = (1024, 16384, 262144)
NETS = ((16, 64, 64, 1), (16, 128, 128, 1), (16, 256, 256, 1))
INTERPRET_BATCHES = (64,)
INTERPRET_NETS = ((16, 16, 16, 1),)
ACTIVATION = "silu"
LAM = 1e-2
METHODS = ("triton", "eager_double_backward", "vmap_jacrev", "analytic_torch", "compiled_analytic")
VARIANTS = ("triton_two_pass", "triton_wgrad_gemm", "triton_wgrad_kernel", "triton_tf32x3")
PASSES = ("forward", "forward+backward")
COLUMNS = [
    ("net", ""),
    ("batch", ""),
    ("pass", ""),
    ("method", ""),
    ("ms", ".3f"),
    ("speedup_vs_eager", ".2f"),
    ("max_rel_err", ".1e"),
    ("note", ""),
]


def parse_net(text: str) -> tuple[int, ...]:
    """``"16-64-64-1"`` -> (16, 64, 64, 1): inputs, hidden widths, outputs."""
    sizes = tuple(int(v) for v in text.split("-"))
    if len(sizes) < 3 or min(sizes) < 1:
        raise ValueError(f"a net is d-w1-…-k with at least one hidden width, got {text!r}")
    return sizes


def net_name(net) -> str:
    return "-".join(map(str, net))


def load_jacnorm(interpret: bool):
    """The kernels module; with ``interpret``, the Triton interpreter is chosen first (it only
    takes effect when nothing in this process has imported triton yet: ``available`` says)."""
    if interpret:
        os.environ["TRITON_INTERPRET"] = "1"
    return importlib.import_module("jacdistill.kernels.jacnorm")


def _params(model):
    return [p for layer in (*model.hidden, model.out) for p in (layer.weight, layer.bias)]


def _max_rel_err(got, want) -> float:
    worst = 0.0
    for g, w in zip(got, want):
        g, w = g.detach().double(), w.detach().double()
        worst = max(worst, ((g - w).abs().max() / w.abs().max().clamp_min(1e-300)).item())
    return worst


def _reference(model, x, y, lam):
    """float64 (f, per-row ‖J‖²) and (loss, parameter gradients), from the closed forms."""
    m64 = _copy(model, torch.float64)
    x64, y64 = x.double(), y.double()
    activation, weights, biases, w_out, b_out = analytic.mlp_parts(m64)
    with torch.no_grad():
        out, jac = analytic.output_and_jacobian(m64, x64)
        sq = jac.pow(2).sum((0, 2)) if jac.ndim == 3 else jac.pow(2).sum(1)
        del jac
        loss, grads = analytic.loss_and_gradients(
            x64, y64, lam, activation, list(weights), list(biases), w_out, b_out
        )
    return (out, sq), (loss, grads)


def _copy(model, dtype):
    copy = MLP(
        model.architecture["d_in"],
        tuple(model.architecture["widths"]),
        model.architecture["d_out"],
        model.activation,
    ).to(next(model.parameters()).device, dtype)
    copy.load_state_dict({k: v.to(dtype) for k, v in model.state_dict().items()})
    return copy


def _reset_compiler():
    """Forget earlier compiles: each (net, batch) gets its own, instead of recompiles that stop
    at dynamo's cache limit and silently fall back to eager."""
    import torch._dynamo

    torch._dynamo.reset()


def _forward_methods(model, x, jacnorm, compile_ok, variants):
    """name -> () -> (f, per-row ‖J‖²) without gradients."""
    from torch.func import functional_call, jacrev, vmap

    def eager():
        xg = x.detach().requires_grad_(True)
        out = model(xg)
        sq = x.new_zeros(len(x))
        for j in range(out.shape[1]):
            (g,) = torch.autograd.grad(out[:, j].sum(), xg, retain_graph=j + 1 < out.shape[1])
            sq += g.pow(2).sum(1)
        return out.detach(), sq

    named = {n: p.detach() for n, p in model.named_parameters()}
    single = lambda p, row: functional_call(model, p, (row.unsqueeze(0),)).reshape(-1)
    per_sample = vmap(jacrev(single, argnums=1), in_dims=(None, 0))

    def func():
        with torch.no_grad():
            return model(x), per_sample(named, x).pow(2).sum((1, 2))

    def closed(x_):
        out, jac = analytic.output_and_jacobian(model, x_)
        return out, (jac.pow(2).sum((0, 2)) if jac.ndim == 3 else jac.pow(2).sum(1))

    def analytic_torch():
        with torch.no_grad():
            return closed(x)

    methods = {"eager_double_backward": eager, "vmap_jacrev": func, "analytic_torch": analytic_torch}
    if jacnorm is not None:
        methods["triton"] = lambda: jacnorm.output_and_sqnorms(model, x)
        if variants and x.is_cuda:
            methods["triton_tf32x3"] = lambda: jacnorm.output_and_sqnorms(model, x, precision="tf32x3")
    if compile_ok:
        _reset_compiler()
        compiled = torch.compile(closed)

        def compiled_analytic():
            with torch.no_grad():
                return compiled(x)

        methods["compiled_analytic"] = compiled_analytic
    return methods


def _backward_methods(model, x, y, lam, jacnorm, compile_ok, variants):
    """name -> () -> (loss, parameter gradients) after filling every .grad."""
    from torch.func import functional_call, jacrev, vmap

    from jacdistill.plugins.regularizers.jacobian import JacobianPenalty

    params = _params(model)

    def run(loss_fn):
        def step():
            for p in params:
                p.grad = None
            loss = loss_fn()
            loss.backward()
            return loss.detach(), [p.grad for p in params]

        return step

    eager_penalty = JacobianPenalty(backend="autograd")
    names = [n for n, _ in model.named_parameters()]
    single = lambda p, row: functional_call(model, p, (row.unsqueeze(0),)).reshape(-1)

    def func_loss():
        live = dict(zip(names, model.parameters()))
        jac = vmap(jacrev(single, argnums=1), in_dims=(None, 0))(live, x)
        return torch.mean((model(x) - y) ** 2) + lam * jac.pow(2).sum() / len(x)

    methods = {
        "eager_double_backward": run(lambda: eager_penalty.loss(model, x, y, lam)),
        "vmap_jacrev": run(func_loss),
        "analytic_torch": run(lambda: analytic.fused_loss(model, x, y, lam)),
    }
    if jacnorm is not None:
        methods["triton"] = run(lambda: jacnorm.fused_loss(model, x, y, lam))
        if variants:

            def two_pass():
                out, sq = jacnorm.output_and_sqnorms(model, x, grad=True)
                return torch.mean((out - y) ** 2) + lam * sq.sum() / len(x)

            methods["triton_two_pass"] = run(two_pass)
            methods["triton_wgrad_gemm"] = run(lambda: jacnorm.fused_loss(model, x, y, lam, wgrad="gemm"))
            methods["triton_wgrad_kernel"] = run(lambda: jacnorm.fused_loss(model, x, y, lam, wgrad="kernel"))
            if x.is_cuda:
                methods["triton_tf32x3"] = run(
                    lambda: jacnorm.fused_loss(model, x, y, lam, precision="tf32x3")
                )
    if compile_ok:
        _reset_compiler()
        compiled = torch.compile(analytic.loss_and_gradients)
        parts = analytic.mlp_parts(model)

        def compiled_analytic():
            for p in params:
                p.grad = None
            with torch.no_grad():
                loss, grads = compiled(
                    x,
                    y,
                    lam,
                    parts[0],
                    [w.detach() for w in parts[1]],
                    [b.detach() for b in parts[2]],
                    parts[3].detach(),
                    parts[4].detach(),
                )
            for p, g in zip(params, grads):
                p.grad = g
            return loss, grads

        methods["compiled_analytic"] = compiled_analytic
    return methods


def measure(
    batches=None,
    nets=None,
    device: str = "cuda",
    interpret: bool = False,
    *,
    activation: str = ACTIVATION,
    lam: float = LAM,
    rounds: int | None = None,
    repeats: int | None = None,
    warmup: int | None = None,
    variants: bool = True,
    compile: bool | None = None,
) -> list[dict]:
    """Rows with keys net, batch, method, pass, ms, speedup_vs_eager, max_rel_err, note.

    Defaults: the grid BATCHES × NETS (``interpret``: B = 64 and a 16-16-16-1 net on CPU, one
    round). ``repeats`` defaults to enough calls for ~50 ms per timed block (at most 20).
    ``compile``: try torch.compile (default: on CUDA only). A method that cannot run (no Triton
    here, out of memory, a compiler error) gets a row with empty timings and the reason in note.
    """
    if interpret:
        device = "cpu"
    batches = list(batches or (INTERPRET_BATCHES if interpret else BATCHES))
    nets = nets or (INTERPRET_NETS if interpret else NETS)
    nets = [parse_net(n) if isinstance(n, str) else tuple(n) for n in nets]
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rounds = rounds or (1 if interpret else 5)
    warmup = (1 if interpret else 3) if warmup is None else warmup
    compile_ok = dev.type == "cuda" if compile is None else compile

    jacnorm, triton_note = None, ""
    try:
        module = load_jacnorm(interpret)
        triton_note = module.available(dev) or ""
        jacnorm = None if triton_note else module
    except Exception as exc:  # noqa: BLE001
        triton_note = f"{type(exc).__name__}: {exc}"

    rows = []
    for net in nets:
        d, *widths, k = net
        for batch in batches:
            torch.manual_seed(0)
            model = MLP(d, tuple(widths), k, activation).to(dev)
            x = torch.randn(batch, d, device=dev)
            y = torch.randn(batch, k, device=dev)
            (ref_out, ref_sq), (ref_loss, ref_grads) = _reference(model, x, y, lam)
            for pass_ in PASSES:
                if pass_ == "forward":
                    methods = _forward_methods(model, x, jacnorm, compile_ok, variants)
                    want = [ref_out, ref_sq]
                    flatten = lambda result: list(result)
                else:
                    methods = _backward_methods(model, x, y, lam, jacnorm, compile_ok, variants)
                    want = [ref_loss, *ref_grads]
                    flatten = lambda result: [result[0], *result[1]]
                errors, notes, cells = {}, {}, {}
                for name, fn in methods.items():
                    try:
                        for _ in range(max(1, warmup)):
                            result = fn()
                        sync()
                        errors[name] = _max_rel_err(flatten(result), want)
                        cells[name] = fn
                    except Exception as exc:  # noqa: BLE001 - report, keep measuring the rest
                        notes[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                        if dev.type == "cuda":
                            torch.cuda.empty_cache()
                n = repeats or _repeats(cells, sync)
                seconds = harness.interleaved_medians(cells, rounds, n, 0, sync) if cells else {}
                eager = seconds.get("eager_double_backward")
                order = [m for m in (*METHODS, *VARIANTS) if m in methods or m in notes]
                if jacnorm is None:
                    order = ["triton", *order]
                    notes["triton"] = f"triton cannot run here: {triton_note}"
                for name in order:
                    ms = seconds[name] * 1e3 if name in seconds else None
                    speedup = eager / seconds[name] if eager and name in seconds else None
                    rows.append(
                        {
                            "net": net_name(net),
                            "batch": batch,
                            "method": name,
                            "pass": pass_,
                            "ms": ms,
                            "speedup_vs_eager": speedup,
                            "max_rel_err": errors.get(name),
                            "note": notes.get(name, ""),
                        }
                    )
                del methods, cells
    return rows


def _repeats(cells, sync) -> int:
    """Calls per timed block: about 50 ms for the slowest method, between 1 and 20."""
    slowest = 0.0
    for fn in cells.values():
        start = time.perf_counter()
        fn()
        sync()
        slowest = max(slowest, time.perf_counter() - start)
    return max(1, min(20, math.ceil(0.05 / max(slowest, 1e-6))))


def settings(interpret: bool = False, activation: str = ACTIVATION, lam: float = LAM) -> dict:
    return {
        "activation": activation,
        "lam": lam,
        "interpret": interpret,
        "dtype": "float32",
        "triton_precision": "ieee",
    }


if __name__ == "__main__":
    from jacdistill.benchmarks.commands import run_standalone

    run_standalone("kernel", sys.argv[1:])
