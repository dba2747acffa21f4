"""Fused Triton kernels: per-sample input-Jacobian norms of jacdistill's MLP, forward and backward.

For a batch X (B×d) and an MLP with L ≤ 3 hidden layers (tanh, silu or relu) and k ≤ 32 outputs,
the kernels evaluate, per row b, f(x_b) and ‖∂f/∂x(x_b)‖²_F, and the gradients of

    loss = mean over the B·k entries of (f - y)²  +  λ · Σ_b ‖J_b‖²_F / B

with respect to every weight and bias (and x), following the closed forms of
:mod:`jacdistill.kernels.analytic` (same notation: a_l, h_l = σ(a_l), s_l = σ'(a_l), q_l = σ''(a_l);
chain u_L = W_o[j], δ_l = u_l ⊙ s_l, u_{l-1} = δ_l W_l, J = u_0; then the adjoint passes).

Design
------
* Row tiles. A program owns BM rows at a time (16 or 32) and loops over the tiles pid, pid + G, …
  (a persistent grid of G ≈ 2 programs per SM). Everything about those rows stays on chip: the
  pre-activations a_l of every layer (σ, σ', σ'' are recomputed from a_l where needed, a few
  exponentials instead of three live tiles per layer), the chain u_l, the Jacobian rows, the
  adjoints ū_l, δ̄_l and the penalty's pulls. Only x and y (or the cotangents) are read from HBM
  and only f, the norms or the gradient sums are written; the weights are read from L2.
* Products. Every product with a weight matrix is ``tl.dot`` on padded tiles (widths padded to
  powers of two ≥ 16; rows past B and padded columns are masked to zero, so padded units carry
  exact zeros through both passes). On a GPU an fp32 ``tl.dot`` with ``input_precision="ieee"``
  runs on FMA units, whose operand layout replicates each operand across threads: a register
  operand of 16×256 would need hundreds of registers per thread and a 256×256 weight operand
  more shared memory than an H100 has. So the register operand is staged through a small
  per-program scratch tile (L1/L2; between ``tl.debug_barrier()`` calls) and each product is a
  loop over K in 16-wide slices, outputs wider than 64 formed in 64-column slices. Compiled
  ahead of time for sm_90 (triton 3.7, no GPU), every shape tried needs at most 18 KiB of
  shared memory in float32 (66 KiB in float64); 8 warps; nets up to 64 wide do not spill, the
  256-wide ones spill about 1 KiB per thread (2.4 KiB with three layers and 32 outputs).
* ``_fwd_kernel``: f and the per-row squared norms (forward only).
* ``_grad_kernel``: forward, chain, penalty adjoints up and MSE adjoints down in ONE launch (a
  fused recomputation of the forward, exactly the passes of ``analytic.loss_and_gradients``).
  Two modes: the training loss (targets y; the loss value comes out of the same pass) and
  generic cotangents (ḡ_f for f, ḡ_n for the per-row norms), which makes
  ``output_and_sqnorms(..., grad=True)`` an ordinary once-differentiable op.
* Weight gradients are sums over rows of outer products. For a layer whose padded weight has at
  most ``WGRAD_IN_KERNEL_MAX`` (64×64) entries, each program accumulates them over its tiles in
  its own slice of a G×TOT buffer (16-column slices, so no thread holds a big accumulator) and
  one ``torch.sum`` reduces the G slices (deterministic; no atomics). For a wider layer the
  kernel writes the two factors of the outer products (δ_l^j with ū_{l-1}^j for every output j,
  and ā_l with h_{l-1}) to HBM and one GEMM with K = (k+1)·B forms the gradient (cuBLAS is far
  better at a 256×256×B reduction than per-tile FMA dots; the design of tiny-cuda-nn's fully
  fused MLP). Biases and the output layer always accumulate in the kernel. ``wgrad="kernel"`` /
  ``"gemm"`` force one route for every layer.

Why one fused pass for the training loss (not a forward kernel plus a backward kernel): a
training step always calls ``backward()``, so ``fused_loss`` computes the loss and every gradient
in one launch at forward time (as ``analytic.fused_loss`` does) and ``backward`` only scales the
stored gradients. A separate backward kernel would have to recompute the forward pass (or read
B×H activations that the forward wrote to HBM): a third more arithmetic, or several B×H round
trips to HBM, plus a second launch, which dominates at training batch sizes (64–1024 rows).
``benchmarks/kernel_jacnorm.py`` times both (methods ``triton`` and ``triton_two_pass``) and the
weight-gradient routes (``triton_wgrad_gemm``, ``triton_wgrad_kernel``).

Limits: plain jacdistill MLPs only, 1–3 hidden layers, d and every width ≤ 256, k ≤ 32 outputs,
float32 or float64 (float64 for checks only: ``tl.dot`` runs it on FMA units). ``precision``
"ieee" (default) keeps full fp32 products; "tf32" / "tf32x3" use tensor cores on a GPU. The
backward is not differentiable again (no double backward). For the CPU interpreter,
``TRITON_INTERPRET=1`` must be set before this module (or anything else) imports triton.
"""

import contextlib
import os
import types

import torch

from jacdistill.kernels import analytic

try:
    import triton
    import triton.language as tl
except Exception as exc:  # noqa: BLE001 - any import failure means "no Triton here"
    triton = None
    tl = types.SimpleNamespace(constexpr=int)  # annotations below are evaluated at definition
    _TRITON_ERROR = f"triton is not importable ({type(exc).__name__}: {exc})"

    def _jit(fn):
        return fn
else:
    _TRITON_ERROR = None
    _jit = triton.jit

# True when the kernels below are defined for the interpreter (``triton.jit`` reads the variable
# when it decorates them). triton.language's own helpers (tl.zeros, tl.sum, …) were decorated
# when triton was first imported: both must agree.
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
_LANGUAGE_INTERPRETED = {"InterpretedFunction": True, "JITFunction": False}.get(
    type(getattr(tl, "zeros", None)).__name__
)  # None: cannot tell

MAX_LAYERS = 3
MAX_WIDTH = 256
MAX_OUTPUTS = 32
K_SLICE = 16  # products run as loops over K in slices this wide (the smallest tl.dot K on a GPU)
# A layer's weight gradient accumulates in registers when its padded weight has at most this many
# entries (64×64); wider layers go through the factor buffers and one GEMM.
WGRAD_IN_KERNEL_MAX = 64 * 64
FACTOR_BUDGET_BYTES = 1 << 30  # factor buffers beyond this are processed in row chunks
PRECISIONS = ("ieee", "tf32", "tf32x3")
_ACTIVATIONS = {"tanh": 0, "silu": 1, "relu": 2}


# --------------------------------------------------------------------------------------------
# Triton helpers
# --------------------------------------------------------------------------------------------
@_jit
def _value(a, ACT: tl.constexpr):
    """σ(a) for ACT 0 = tanh, 1 = silu, 2 = relu."""
    if ACT == 0:  # exp of a non-positive argument never overflows
        t = tl.exp(-2.0 * tl.abs(a))
        h = (1.0 - t) / (1.0 + t)
        h = tl.where(a < 0, -h, h)
    elif ACT == 1:
        h = a / (1.0 + tl.exp(-a))
    else:
        h = tl.maximum(a, 0.0)
    return h


@_jit
def _slope(a, ACT: tl.constexpr):
    """σ'(a)."""
    if ACT == 0:
        h = _value(a, ACT)
        s = 1.0 - h * h
    elif ACT == 1:
        sig = 1.0 / (1.0 + tl.exp(-a))
        s = sig * (1.0 + a * (1.0 - sig))
    else:
        s = (a > 0).to(a.dtype)
    return s


@_jit
def _curvature(a, ACT: tl.constexpr):
    """σ''(a) (zero for relu)."""
    if ACT == 0:
        h = _value(a, ACT)
        q = -2.0 * h * (1.0 - h * h)
    elif ACT == 1:
        sig = 1.0 / (1.0 + tl.exp(-a))
        q = sig * (1.0 - sig) * (2.0 + a * (1.0 - 2.0 * sig))
    else:
        q = a * 0.0
    return q


@_jit
def _stage(scr, a, R: tl.constexpr, C: tl.constexpr):
    """Write the R×C register tile ``a`` to this program's scratch (row stride C), between two
    barriers: the first lets every thread finish reading what the scratch held before, the second
    makes the new tile visible to every thread of the program."""
    r = tl.arange(0, R)
    c = tl.arange(0, C)
    tl.debug_barrier()
    tl.store(scr + r[:, None] * C + c[None, :], a)
    tl.debug_barrier()


@_jit
def _mm(
    a,
    scr,
    ptr,
    s_k,
    s_n,
    n_k,
    n_n,
    BM: tl.constexpr,
    PK: tl.constexpr,
    PN: tl.constexpr,
    KC: tl.constexpr,
    PREC: tl.constexpr,
):
    """a (BM×PK, registers) @ B (PK×PN), B[i, j] = ptr[i*s_k + j*s_n] for i < n_k, j < n_n, else 0.

    ``a`` goes through the program's scratch (L1/L2) and the product runs as a loop over K in
    KC-wide slices: an operand of an FMA ``tl.dot`` is replicated across the threads, so a wide
    one held in registers would spill. Outputs wider than 64 are formed in 64-column slices
    assembled in the second scratch tile, for the same reason."""
    _stage(scr, a, BM, PK)
    r = tl.arange(0, BM)
    kc = tl.arange(0, KC)
    if PN > 64:
        nn = tl.arange(0, 64)
        for n0 in tl.static_range(0, PN, 64):
            acc = tl.zeros((BM, 64), dtype=a.dtype)
            for k0 in range(0, n_k, KC):  # columns of a beyond n_k are zero: skip the padding
                kk = k0 + kc
                a_k = tl.load(scr + r[:, None] * PK + kk[None, :])
                b_k = tl.load(
                    ptr + kk[:, None] * s_k + (n0 + nn)[None, :] * s_n,
                    mask=(kk[:, None] < n_k) & ((n0 + nn)[None, :] < n_n),
                    other=0.0,
                )
                acc = tl.dot(a_k, b_k, acc, input_precision=PREC, out_dtype=a.dtype)
            tl.store(scr + BM * PK + r[:, None] * PN + (n0 + nn)[None, :], acc)
        tl.debug_barrier()
        out = tl.load(scr + BM * PK + r[:, None] * PN + tl.arange(0, PN)[None, :])
    else:
        nn = tl.arange(0, PN)
        out = tl.zeros((BM, PN), dtype=a.dtype)
        for k0 in range(0, n_k, KC):
            kk = k0 + kc
            a_k = tl.load(scr + r[:, None] * PK + kk[None, :])
            b_k = tl.load(
                ptr + kk[:, None] * s_k + nn[None, :] * s_n,
                mask=(kk[:, None] < n_k) & (nn[None, :] < n_n),
                other=0.0,
            )
            out = tl.dot(a_k, b_k, out, input_precision=PREC, out_dtype=a.dtype)
    return out


@_jit
def _acc_tn(
    acc_ptr,
    a,
    b,
    scr,
    BM: tl.constexpr,
    PA: tl.constexpr,
    PB: tl.constexpr,
    PM: tl.constexpr,
    KC: tl.constexpr,
    PREC: tl.constexpr,
):
    """acc (PA×PB, row-major in this program's own slice of the partial-sum buffer) += aᵀ b for
    register tiles a (BM×PA) and b (BM×PB): a weight gradient summed over the rows of a tile.

    The accumulator lives in memory and is updated in KC-column slices, so a thread never holds
    more than PA×KC/threads sums and the operands of one KC×KC-deep dot."""
    r = tl.arange(0, BM)
    ca = tl.arange(0, PA)
    cb = tl.arange(0, KC)
    kc = tl.arange(0, KC)
    tl.debug_barrier()
    tl.store(scr + r[:, None] * PA + ca[None, :], a)
    tl.store(scr + BM * PM + r[:, None] * PB + tl.arange(0, PB)[None, :], b)
    tl.debug_barrier()
    for n0 in tl.static_range(0, PB, KC):
        acc = tl.load(acc_ptr + ca[:, None] * PB + (n0 + cb)[None, :])
        for k0 in tl.static_range(0, BM, KC):
            a_t = tl.load(scr + (k0 + kc)[None, :] * PA + ca[:, None])  # aᵀ slice, PA×KC
            b_k = tl.load(scr + BM * PM + (k0 + kc)[:, None] * PB + (n0 + cb)[None, :])
            acc = tl.dot(a_t, b_k, acc, input_precision=PREC, out_dtype=acc.dtype)
        tl.store(acc_ptr + ca[:, None] * PB + (n0 + cb)[None, :], acc)


@_jit
def _layer(
    h_in,
    scr,
    w,
    b,
    n_in,
    n_out,
    BM: tl.constexpr,
    PIN: tl.constexpr,
    POUT: tl.constexpr,
    KC: tl.constexpr,
    PREC: tl.constexpr,
):
    """The pre-activation a = h_in W^T + b (W: n_out×n_in, row-major). Only a is kept per layer:
    σ, σ' and σ'' are recomputed from it where needed (a few exps instead of three live tiles)."""
    cols = tl.arange(0, POUT)
    a = _mm(h_in, scr, w, 1, n_in, n_in, n_out, BM, PIN, POUT, KC, PREC)
    return a + tl.load(b + cols, mask=cols < n_out, other=0.0)[None, :]


@_jit
def _times_w(
    v,
    scr,
    w,
    n_in,
    n_out,
    BM: tl.constexpr,
    PIN: tl.constexpr,
    POUT: tl.constexpr,
    KC: tl.constexpr,
    PREC: tl.constexpr,
):
    """v (BM×POUT) @ W (W: n_out×n_in): the chain step u_{l-1} = δ_l W_l and h̄_{l-1} = ā_l W_l."""
    return _mm(v, scr, w, n_in, 1, n_out, n_in, BM, POUT, PIN, KC, PREC)


@_jit
def _times_wt(
    v,
    scr,
    w,
    n_in,
    n_out,
    BM: tl.constexpr,
    PIN: tl.constexpr,
    POUT: tl.constexpr,
    KC: tl.constexpr,
    PREC: tl.constexpr,
):
    """v (BM×PIN) @ W^T: δ̄_l = ū_{l-1} W_l^T."""
    return _mm(v, scr, w, 1, n_in, n_in, n_out, BM, PIN, POUT, KC, PREC)


@_jit
def _store_rows(ptr, val, rows, rmask, n_rows, width, slot, PW: tl.constexpr):
    """val (BM×PW) into rows ``rows`` of slot ``slot`` of a (slots×n_rows×width) buffer."""
    cols = tl.arange(0, PW)
    tl.store(
        ptr + slot * n_rows * width + rows[:, None] * width + cols[None, :],
        val,
        mask=rmask[:, None] & (cols[None, :] < width),
    )


# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------
@_jit
def _fwd_kernel(
    x_ptr,
    w1,
    b1,
    w2,
    b2,
    w3,
    b3,
    wo,
    bo,
    out_ptr,
    sq_ptr,
    scr_ptr,
    n_rows,
    d,
    h1,
    h2,
    h3,
    hl,
    k,
    n_tiles,
    ACT: tl.constexpr,
    NL: tl.constexpr,
    BM: tl.constexpr,
    D: tl.constexpr,
    P1: tl.constexpr,
    P2: tl.constexpr,
    P3: tl.constexpr,
    PL: tl.constexpr,
    KP: tl.constexpr,
    PM: tl.constexpr,
    KC: tl.constexpr,
    PREC: tl.constexpr,
    SQ: tl.constexpr,
):
    """f (n_rows×k) and, when SQ, ‖J‖²_F per row, for the row tiles pid, pid + G, …"""
    pid = tl.program_id(0)
    scr = scr_ptr + pid * (2 * BM * PM)
    cd = tl.arange(0, D)
    ck = tl.arange(0, KP)
    cl = tl.arange(0, PL)
    for tile in range(pid, n_tiles, tl.num_programs(0)):
        rows = tile * BM + tl.arange(0, BM)
        rmask = rows < n_rows
        x = tl.load(
            x_ptr + rows[:, None] * d + cd[None, :], mask=rmask[:, None] & (cd[None, :] < d), other=0.0
        )
        a1 = _layer(x, scr, w1, b1, d, h1, BM, D, P1, KC, PREC)
        hl_v = _value(a1, ACT)
        if NL >= 2:
            a2 = _layer(hl_v, scr, w2, b2, h1, h2, BM, P1, P2, KC, PREC)
            hl_v = _value(a2, ACT)
        if NL >= 3:
            a3 = _layer(hl_v, scr, w3, b3, h2, h3, BM, P2, P3, KC, PREC)
            hl_v = _value(a3, ACT)
        f = _mm(hl_v, scr, wo, 1, hl, hl, k, BM, PL, KP, KC, PREC)
        f += tl.load(bo + ck, mask=ck < k, other=0.0)[None, :]
        tl.store(out_ptr + rows[:, None] * k + ck[None, :], f, mask=rmask[:, None] & (ck[None, :] < k))
        if SQ:
            sq = tl.zeros((BM,), dtype=f.dtype)
            for j in range(k):
                u = tl.load(wo + j * hl + cl, mask=cl < hl, other=0.0)[None, :]  # u_L = W_o[j]
                if NL >= 3:
                    u = _times_w(u * _slope(a3, ACT), scr, w3, h2, h3, BM, P2, P3, KC, PREC)
                if NL >= 2:
                    u = _times_w(u * _slope(a2, ACT), scr, w2, h1, h2, BM, P1, P2, KC, PREC)
                jac = _times_w(u * _slope(a1, ACT), scr, w1, d, h1, BM, D, P1, KC, PREC)
                sq += tl.sum(jac * jac, 1)
            tl.store(sq_ptr + rows, sq, mask=rmask)


@_jit
def _grad_kernel(
    x_ptr,
    t_ptr,
    gsq_ptr,
    coef_ptr,
    xg_ptr,
    w1,
    b1,
    w2,
    b2,
    w3,
    b3,
    wo,
    bo,
    part_ptr,
    scr_ptr,
    f1l,
    f1r,
    f2l,
    f2r,
    f3l,
    f3r,
    n_rows,
    d,
    h1,
    h2,
    h3,
    hl,
    k,
    n_tiles,
    ACT: tl.constexpr,
    NL: tl.constexpr,
    BM: tl.constexpr,
    D: tl.constexpr,
    P1: tl.constexpr,
    P2: tl.constexpr,
    P3: tl.constexpr,
    PL: tl.constexpr,
    KP: tl.constexpr,
    PM: tl.constexpr,
    KC: tl.constexpr,
    PREC: tl.constexpr,
    MODE: tl.constexpr,
    FIT: tl.constexpr,
    PEN: tl.constexpr,
    XGRAD: tl.constexpr,
    GW1: tl.constexpr,
    GW2: tl.constexpr,
    GW3: tl.constexpr,
    O_W1: tl.constexpr,
    O_B1: tl.constexpr,
    O_W2: tl.constexpr,
    O_B2: tl.constexpr,
    O_W3: tl.constexpr,
    O_B3: tl.constexpr,
    O_WO: tl.constexpr,
    O_BO: tl.constexpr,
    O_LOSS: tl.constexpr,
    TOT: tl.constexpr,
):
    """Forward, Jacobian chain, penalty adjoints (up) and MSE adjoints (down) for the row tiles
    pid, pid + G, …; per-program partial sums of the gradients go to part[pid, :].

    MODE 1 (training loss): t = y; r̄ = c_mse (f - y), penalty weight c_pen on every row,
    coef = [c_mse, c_pen]. MODE 2 (cotangents): t = ḡ_f, so r̄ = ḡ_f; penalty weight 2 ḡ_n[b].
    FIT / PEN: whether the output / the penalty term has a cotangent at all.
    GWl: layer l's weight gradient accumulates here, else its factors go to fll / flr."""
    pid = tl.program_id(0)
    scr = scr_ptr + pid * (2 * BM * PM)
    cd = tl.arange(0, D)
    c1 = tl.arange(0, P1)
    c2 = tl.arange(0, P2)
    c3 = tl.arange(0, P3)
    cl = tl.arange(0, PL)
    ck = tl.arange(0, KP)
    dt = x_ptr.dtype.element_ty
    c_mse = tl.load(coef_ptr)
    c_pen = tl.load(coef_ptr + 1)

    # weight-gradient sums live in this program's slice of the (zeroed) partial buffer
    base = part_ptr + pid * TOT
    acc_b1 = tl.zeros((P1,), dtype=dt)
    if NL >= 2:
        acc_b2 = tl.zeros((P2,), dtype=dt)
    if NL >= 3:
        acc_b3 = tl.zeros((P3,), dtype=dt)
    acc_bo = tl.zeros((KP,), dtype=dt)
    acc_res = tl.zeros((BM,), dtype=dt)
    acc_jac = tl.zeros((BM,), dtype=dt)

    for tile in range(pid, n_tiles, tl.num_programs(0)):
        rows = tile * BM + tl.arange(0, BM)
        rmask = rows < n_rows
        omask = rmask[:, None] & (ck[None, :] < k)
        x = tl.load(
            x_ptr + rows[:, None] * d + cd[None, :], mask=rmask[:, None] & (cd[None, :] < d), other=0.0
        )
        # forward: only the pre-activations a_l stay (in registers)
        a1 = _layer(x, scr, w1, b1, d, h1, BM, D, P1, KC, PREC)
        hl_v = _value(a1, ACT)
        if NL >= 2:
            a2 = _layer(hl_v, scr, w2, b2, h1, h2, BM, P1, P2, KC, PREC)
            hl_v = _value(a2, ACT)
        if NL >= 3:
            a3 = _layer(hl_v, scr, w3, b3, h2, h3, BM, P2, P3, KC, PREC)
            hl_v = _value(a3, ACT)
        # output cotangent r̄ and per-row penalty weight
        if MODE == 1:
            f = _mm(hl_v, scr, wo, 1, hl, hl, k, BM, PL, KP, KC, PREC)
            f += tl.load(bo + ck, mask=ck < k, other=0.0)[None, :]
            y = tl.load(t_ptr + rows[:, None] * k + ck[None, :], mask=omask, other=0.0)
            res = tl.where(omask, f - y, 0.0)
            acc_res += tl.sum(res * res, 1)
            r_bar = res * c_mse
            pen_w = tl.where(rmask, c_pen, 0.0)
        else:
            if FIT:
                r_bar = tl.load(t_ptr + rows[:, None] * k + ck[None, :], mask=omask, other=0.0)
            if PEN:
                pen_w = 2.0 * tl.load(gsq_ptr + rows, mask=rmask, other=0.0)

        # penalty: the chain down to J, then its adjoints back up, once per output j
        pull1 = tl.zeros((BM, P1), dtype=dt)
        if NL >= 2:
            pull2 = tl.zeros((BM, P2), dtype=dt)
        if NL >= 3:
            pull3 = tl.zeros((BM, P3), dtype=dt)
        if PEN:
            for j in range(k):
                u_top = tl.load(wo + j * hl + cl, mask=cl < hl, other=0.0)[None, :]  # u_L
                if NL == 3:
                    u3 = u_top
                    u2 = _times_w(u3 * _slope(a3, ACT), scr, w3, h2, h3, BM, P2, P3, KC, PREC)
                    u1 = _times_w(u2 * _slope(a2, ACT), scr, w2, h1, h2, BM, P1, P2, KC, PREC)
                elif NL == 2:
                    u2 = u_top
                    u1 = _times_w(u2 * _slope(a2, ACT), scr, w2, h1, h2, BM, P1, P2, KC, PREC)
                else:
                    u1 = u_top
                jac = _times_w(u1 * _slope(a1, ACT), scr, w1, d, h1, BM, D, P1, KC, PREC)
                acc_jac += tl.where(rmask, tl.sum(jac * jac, 1), 0.0)
                # ū_0 = 2λ/B·J (or 2ḡ_n J); per layer: grad W_l += δ_lᵀ ū_{l-1},
                # δ̄_l = ū_{l-1} W_lᵀ, pull_l += δ̄_l ⊙ u_l ⊙ σ''(a_l), ū_l = δ̄_l ⊙ s_l
                u_bar = jac * pen_w[:, None]
                s_l = _slope(a1, ACT)
                if GW1:
                    _acc_tn(base + O_W1, u1 * s_l, u_bar, scr, BM, P1, D, PM, KC, PREC)
                else:
                    _store_rows(f1l, u1 * s_l, rows, rmask, n_rows, h1, j, P1)
                    _store_rows(f1r, u_bar, rows, rmask, n_rows, d, j, D)
                d_bar = _times_wt(u_bar, scr, w1, d, h1, BM, D, P1, KC, PREC)
                if ACT != 2:
                    pull1 += d_bar * u1 * _curvature(a1, ACT)
                u_bar = d_bar * s_l
                if NL >= 2:
                    s_l = _slope(a2, ACT)
                    if GW2:
                        _acc_tn(base + O_W2, u2 * s_l, u_bar, scr, BM, P2, P1, PM, KC, PREC)
                    else:
                        _store_rows(f2l, u2 * s_l, rows, rmask, n_rows, h2, j, P2)
                        _store_rows(f2r, u_bar, rows, rmask, n_rows, h1, j, P1)
                    d_bar = _times_wt(u_bar, scr, w2, h1, h2, BM, P1, P2, KC, PREC)
                    if ACT != 2:
                        pull2 += d_bar * u2 * _curvature(a2, ACT)
                    u_bar = d_bar * s_l
                if NL >= 3:
                    s_l = _slope(a3, ACT)
                    if GW3:
                        _acc_tn(base + O_W3, u3 * s_l, u_bar, scr, BM, P3, P2, PM, KC, PREC)
                    else:
                        _store_rows(f3l, u3 * s_l, rows, rmask, n_rows, h3, j, P3)
                        _store_rows(f3r, u_bar, rows, rmask, n_rows, h2, j, P2)
                    d_bar = _times_wt(u_bar, scr, w3, h2, h3, BM, P2, P3, KC, PREC)
                    if ACT != 2:
                        pull3 += d_bar * u3 * _curvature(a3, ACT)
                    u_bar = d_bar * s_l
                # u_L = W_o[j] on every row: its gradient is the column sum of ū_L
                wo_row = base + O_WO + j * PL + cl
                tl.debug_barrier()
                tl.store(wo_row, tl.load(wo_row) + tl.sum(u_bar, 0))

        # MSE adjoints down the network, plus the penalty's pull on every a_l
        if FIT:
            _acc_tn(base + O_WO, r_bar, hl_v, scr, BM, KP, PL, PM, KC, PREC)
            acc_bo += tl.sum(r_bar, 0)
            h_bar = _times_w(r_bar, scr, wo, hl, k, BM, PL, KP, KC, PREC)
        if NL >= 3:
            if FIT:
                a_bar = h_bar * _slope(a3, ACT) + pull3
            else:
                a_bar = pull3
            acc_b3 += tl.sum(a_bar, 0)
            if GW3:
                _acc_tn(base + O_W3, a_bar, _value(a2, ACT), scr, BM, P3, P2, PM, KC, PREC)
            else:
                _store_rows(f3l, a_bar, rows, rmask, n_rows, h3, k, P3)
                _store_rows(f3r, _value(a2, ACT), rows, rmask, n_rows, h2, k, P2)
            h_bar = _times_w(a_bar, scr, w3, h2, h3, BM, P2, P3, KC, PREC)
        if NL >= 2:
            if FIT or NL >= 3:
                a_bar = h_bar * _slope(a2, ACT) + pull2
            else:
                a_bar = pull2
            acc_b2 += tl.sum(a_bar, 0)
            if GW2:
                _acc_tn(base + O_W2, a_bar, _value(a1, ACT), scr, BM, P2, P1, PM, KC, PREC)
            else:
                _store_rows(f2l, a_bar, rows, rmask, n_rows, h2, k, P2)
                _store_rows(f2r, _value(a1, ACT), rows, rmask, n_rows, h1, k, P1)
            h_bar = _times_w(a_bar, scr, w2, h1, h2, BM, P1, P2, KC, PREC)
        if FIT or NL >= 2:
            a_bar = h_bar * _slope(a1, ACT) + pull1
        else:
            a_bar = pull1
        acc_b1 += tl.sum(a_bar, 0)
        if GW1:
            _acc_tn(base + O_W1, a_bar, x, scr, BM, P1, D, PM, KC, PREC)
        else:
            _store_rows(f1l, a_bar, rows, rmask, n_rows, h1, k, P1)
            _store_rows(f1r, x, rows, rmask, n_rows, d, k, D)
        if XGRAD:
            x_bar = _times_w(a_bar, scr, w1, d, h1, BM, D, P1, KC, PREC)
            tl.store(xg_ptr + rows[:, None] * d + cd[None, :], x_bar, mask=rmask[:, None] & (cd[None, :] < d))

    tl.store(base + O_B1 + c1, acc_b1)
    if NL >= 2:
        tl.store(base + O_B2 + c2, acc_b2)
    if NL >= 3:
        tl.store(base + O_B3 + c3, acc_b3)
    tl.store(base + O_BO + ck, acc_bo)
    tl.store(base + O_LOSS, tl.sum(acc_res, 0))
    tl.store(base + O_LOSS + 1, tl.sum(acc_jac, 0))


# --------------------------------------------------------------------------------------------
# Launch wrappers
# --------------------------------------------------------------------------------------------
def available(device) -> str | None:
    """None when the Triton kernels can run on tensors on ``device``, else a one-line reason."""
    if _TRITON_ERROR:
        return _TRITON_ERROR
    device = torch.device(device)
    if _LANGUAGE_INTERPRETED is not None and _LANGUAGE_INTERPRETED != INTERPRETED:
        return (
            "triton was imported before TRITON_INTERPRET was set (or unset) and its own "
            "helpers are in the other mode; set the variable before anything imports triton"
        )
    if INTERPRETED:
        return None
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "TRITON_INTERPRET=1 was set after triton was imported; set it before anything imports triton"
    if device.type != "cuda":
        return f"tensors are on '{device.type}', not a CUDA device"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


def _pad(n: int) -> int:
    return max(16, 1 << (int(n) - 1).bit_length())


def unsupported(model, x=None) -> str | None:
    """None when the kernels cover ``model`` (and ``x``'s dtype), else a one-line reason."""
    if not analytic.is_plain_mlp(model):
        return f"needs jacdistill's MLP, not {type(model).__name__}"
    n_layers = len(model.hidden)
    widths = [model.hidden[0].in_features] + [layer.out_features for layer in model.hidden]
    if not 1 <= n_layers <= MAX_LAYERS:
        return f"supports 1 to {MAX_LAYERS} hidden layers, not {n_layers}"
    if max(widths) > MAX_WIDTH:
        return f"supports input and hidden widths up to {MAX_WIDTH}, not {max(widths)}"
    if model.out.out_features > MAX_OUTPUTS:
        return f"supports up to {MAX_OUTPUTS} outputs, not {model.out.out_features}"
    dtypes = {p.dtype for p in model.parameters()} | ({x.dtype} if x is not None else set())
    if len(dtypes) != 1 or not dtypes <= {torch.float32, torch.float64}:
        return f"needs float32 or float64 parameters and inputs of one dtype, not {sorted(map(str, dtypes))}"
    return None


class _Net:
    """Shapes, padded sizes and launch settings of one MLP, and its parameters as contiguous
    tensors (3 hidden-layer slots; absent layers repeat layer 1's tensors, never read)."""

    def __init__(self, activation, weights, biases, w_out, b_out, precision):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        self.act = _ACTIVATIONS[activation]
        self.n_layers = len(weights)
        self.weights = [w.detach().contiguous() for w in weights]
        self.biases = [b.detach().contiguous() for b in biases]
        self.w_out, self.b_out = w_out.detach().contiguous(), b_out.detach().contiguous()
        self.dtype = self.w_out.dtype
        self.d = self.weights[0].shape[1]
        self.widths = [w.shape[0] for w in self.weights]
        self.k = self.w_out.shape[0]
        self.D = _pad(self.d)
        self.P = [_pad(h) for h in self.widths]
        self.KP = _pad(self.k)
        # tf32 only for float32 (fp64 products always run in full precision)
        self.precision = precision if self.dtype == torch.float32 else "ieee"
        self.widest = max(self.D, *self.P, self.KP)
        # Chosen from ahead-of-time compiles for sm_90 (registers, spills; see the module doc):
        # 32 rows for widths ≤ 64, 16 rows above; 8 warps.
        self.block_rows = 32 if self.widest <= 64 and not INTERPRETED else 16
        self.num_warps = 8

    def slots(self):
        """(W, b) pointers for the 3 hidden-layer slots, then (W_o, b_o)."""
        ws = self.weights + [self.weights[0]] * (MAX_LAYERS - self.n_layers)
        bs = self.biases + [self.biases[0]] * (MAX_LAYERS - self.n_layers)
        return [t for pair in zip(ws, bs) for t in pair] + [self.w_out, self.b_out]

    def sizes(self):
        hs = self.widths + [1] * (MAX_LAYERS - self.n_layers)
        return [self.d, *hs, self.widths[-1], self.k]

    def constexprs(self):
        ps = self.P + [16] * (MAX_LAYERS - self.n_layers)
        return dict(
            ACT=self.act,
            NL=self.n_layers,
            BM=self.block_rows,
            D=self.D,
            P1=ps[0],
            P2=ps[1],
            P3=ps[2],
            PL=self.P[-1],
            KP=self.KP,
            PM=self.widest,
            KC=K_SLICE,
            PREC=self.precision,
        )

    def scratch(self, programs, device):
        """Two BM×PM tiles per program: the staged operands of the products."""
        return torch.empty(programs * 2 * self.block_rows * self.widest, dtype=self.dtype, device=device)


def _net_of(model, precision):
    activation, weights, biases, w_out, b_out = analytic.mlp_parts(model)
    return _Net(activation, weights, biases, w_out, b_out, precision)


def _check(net, x):
    reason = available(x.device)
    if reason:
        raise RuntimeError(f"jacnorm: the Triton kernels cannot run here: {reason}")
    if net.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"jacnorm: needs float32 or float64 parameters, not {net.dtype}")
    if x.dtype != net.dtype or x.device != net.w_out.device:
        raise ValueError(
            f"jacnorm: x is {x.dtype} on {x.device}, the model {net.dtype} on {net.w_out.device}"
        )
    if x.ndim != 2 or x.shape[1] != net.d:
        raise ValueError(f"jacnorm: x must be B×{net.d}, got {tuple(x.shape)}")


def _device_ctx(x):
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def _forward(net, x, with_sq=True):
    _check(net, x)
    x = x.detach().contiguous()
    n_rows = x.shape[0]
    out = torch.empty(n_rows, net.k, dtype=net.dtype, device=x.device)
    sq = torch.empty(n_rows, dtype=net.dtype, device=x.device)
    if n_rows == 0:
        return out, sq.zero_()
    n_tiles = triton.cdiv(n_rows, net.block_rows)
    programs = _programs(n_tiles, x.device)
    with _device_ctx(x):
        _fwd_kernel[(programs,)](
            x,
            *net.slots(),
            out,
            sq,
            net.scratch(programs, x.device),
            n_rows,
            *net.sizes(),
            n_tiles,
            **net.constexprs(),
            SQ=with_sq,
            num_warps=net.num_warps,
            num_stages=1,
        )
    return out, sq


_SM_COUNT = {}


def _programs(n_tiles, device):
    if INTERPRETED or device.type != "cuda":
        return max(1, min(n_tiles, 2))  # two programs: the persistent loop still runs ≥ 2 tiles
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _SM_COUNT:
        _SM_COUNT[index] = torch.cuda.get_device_properties(index).multi_processor_count
    return max(1, min(n_tiles, 2 * _SM_COUNT[index]))


def _gradients(net, x, target, g_sq, coef, mode, fit, pen, need_x, wgrad):
    """Run ``_grad_kernel`` over all rows: (loss partial sums [Σr², ΣJ²], [dW_1, db_1, …, dW_o,
    db_o], dx or None)."""
    _check(net, x)
    if wgrad not in ("auto", "kernel", "gemm"):
        raise ValueError(f"wgrad must be 'auto', 'kernel' or 'gemm', not {wgrad!r}")
    x = x.detach().contiguous()
    n_rows, dt, dev = x.shape[0], net.dtype, x.device
    if n_rows == 0:  # an empty batch: nothing to sum
        zeros = [torch.zeros_like(p) for p in net.slots()[: 2 * net.n_layers] + [net.w_out, net.b_out]]
        return torch.zeros(2, dtype=dt, device=dev), zeros, torch.zeros_like(x) if need_x else None
    pads = [net.D, *net.P]
    sizes = [net.d, *net.widths]
    in_kernel = [
        wgrad == "kernel" or (wgrad == "auto" and pads[l + 1] * pads[l] <= WGRAD_IN_KERNEL_MAX)
        for l in range(net.n_layers)
    ]
    # offsets of the per-program partial sums
    offsets, tot = {}, 0
    for l in range(MAX_LAYERS):
        exists = l < net.n_layers
        offsets[f"O_W{l + 1}"] = tot
        tot += pads[l + 1] * pads[l] if exists and in_kernel[l] else 0
        offsets[f"O_B{l + 1}"] = tot
        tot += pads[l + 1] if exists else 0
    offsets["O_WO"] = tot
    tot += net.KP * net.P[-1]
    offsets["O_BO"] = tot
    tot += net.KP
    offsets["O_LOSS"] = tot
    tot += 2
    # rows per launch: the factor buffers of GEMM layers stay within FACTOR_BUDGET_BYTES and every
    # flat index within int32
    slots = net.k + 1
    per_row = sum(slots * (sizes[l + 1] + sizes[l]) for l in range(net.n_layers) if not in_kernel[l])
    elem = torch.finfo(dt).bits // 8
    chunk = n_rows
    if per_row:
        chunk = min(chunk, max(1, FACTOR_BUDGET_BYTES // (per_row * elem)))
        chunk = min(chunk, (2**31 - 1) // (slots * max(sizes)))
    chunk = max(1, min(chunk, (2**31 - 1) // max(sizes + [net.k])))

    totals, gemm = None, [None] * net.n_layers
    x_grad = torch.empty_like(x) if need_x else None
    dummy = coef  # any tensor on the device: pointers the kernel never reads
    for start in range(0, n_rows, chunk):
        stop = min(n_rows, start + chunk)
        rows = stop - start
        n_tiles = triton.cdiv(rows, net.block_rows)
        programs = _programs(n_tiles, dev)
        part = torch.zeros(programs, tot, dtype=dt, device=dev)
        factors = []
        for l in range(MAX_LAYERS):
            if l < net.n_layers and not in_kernel[l]:
                factors += [
                    torch.empty(slots, rows, sizes[l + 1], dtype=dt, device=dev),
                    torch.empty(slots, rows, sizes[l], dtype=dt, device=dev),
                ]
            else:
                factors += [dummy, dummy]
        with _device_ctx(x):
            _grad_kernel[(programs,)](
                x[start:stop],
                target[start:stop] if fit else dummy,
                g_sq[start:stop] if mode == 2 and pen else dummy,
                coef,
                x_grad[start:stop] if need_x else dummy,
                *net.slots(),
                part,
                net.scratch(programs, dev),
                *factors,
                rows,
                *net.sizes(),
                n_tiles,
                **net.constexprs(),
                MODE=mode,
                FIT=fit,
                PEN=pen,
                XGRAD=need_x,
                GW1=in_kernel[0],
                GW2=net.n_layers > 1 and in_kernel[1],
                GW3=net.n_layers > 2 and in_kernel[2],
                **offsets,
                TOT=tot,
                num_warps=net.num_warps,
                num_stages=1,
            )
        part = part.sum(0) if programs > 1 else part[0]
        totals = part if totals is None else totals.add_(part)
        for l in range(net.n_layers):
            if not in_kernel[l]:
                left, right = factors[2 * l], factors[2 * l + 1]
                if not pen:  # only the last slot (ā_l, h_{l-1}) was written
                    left, right = left[-1:], right[-1:]
                prod = left.reshape(-1, sizes[l + 1]).t() @ right.reshape(-1, sizes[l])
                gemm[l] = prod if gemm[l] is None else gemm[l].add_(prod)

    grads = []
    for l in range(net.n_layers):
        if in_kernel[l]:
            o = offsets[f"O_W{l + 1}"]
            gw = totals[o : o + pads[l + 1] * pads[l]].view(pads[l + 1], pads[l])[: sizes[l + 1], : sizes[l]]
        else:
            gw = gemm[l] if gemm[l] is not None else torch.zeros(sizes[l + 1], sizes[l], dtype=dt, device=dev)
        o = offsets[f"O_B{l + 1}"]
        grads += [gw, totals[o : o + sizes[l + 1]]]
    o = offsets["O_WO"]
    grads.append(totals[o : o + net.KP * net.P[-1]].view(net.KP, net.P[-1])[: net.k, : net.widths[-1]])
    o = offsets["O_BO"]
    grads.append(totals[o : o + net.k])
    o = offsets["O_LOSS"]
    return totals[o : o + 2], [g.contiguous() for g in grads], x_grad


def _param_list(model):
    return [p for layer in (*model.hidden, model.out) for p in (layer.weight, layer.bias)]


def _net_from_params(activation, params, precision):
    n = (len(params) - 2) // 2
    return _Net(
        activation,
        list(params[0 : 2 * n : 2]),
        list(params[1 : 2 * n : 2]),
        params[-2],
        params[-1],
        precision,
    )


class _FusedLossFunction(torch.autograd.Function):
    """Loss and every gradient in one kernel launch at forward time; backward scales them."""

    @staticmethod
    def forward(ctx, x, y, lam, activation, precision, wgrad, *params):
        net = _net_from_params(activation, params, precision)
        n_rows = x.shape[0]
        y = y.detach().reshape(n_rows, -1 if n_rows else net.k).to(net.dtype).contiguous()
        if y.shape[1] != net.k:
            raise ValueError(f"jacnorm: y must be B×{net.k} or B, got {tuple(y.shape)}")
        coef = torch.tensor(
            [2.0 / max(1, y.numel()), 2.0 * lam / max(1, n_rows)], dtype=net.dtype, device=x.device
        )
        need_x = ctx.needs_input_grad[0]
        sums, grads, x_grad = _gradients(
            net, x, y, None, coef, mode=1, fit=True, pen=lam != 0, need_x=need_x, wgrad=wgrad
        )
        loss = sums[0] / max(1, y.numel()) + sums[1] * (lam / max(1, n_rows))
        ctx.save_for_backward(*([x_grad] if need_x else []), *grads)
        ctx.need_x = need_x
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        saved = ctx.saved_tensors
        x_grad = saved[0] * grad_loss if ctx.need_x else None
        grads = saved[1:] if ctx.need_x else saved
        return (x_grad, None, None, None, None, None, *(g * grad_loss for g in grads))


class _OutputSqnormFunction(torch.autograd.Function):
    """(f, ‖J‖²_F per row) from the forward kernel; backward is the gradient kernel with the
    incoming cotangents (it recomputes the forward for each tile)."""

    @staticmethod
    def forward(ctx, x, activation, precision, wgrad, *params):
        net = _net_from_params(activation, params, precision)
        out, sq = _forward(net, x)
        ctx.save_for_backward(x, *params)
        ctx.settings = (activation, precision, wgrad)
        return out, sq

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out, g_sq):
        x, *params = ctx.saved_tensors
        activation, precision, wgrad = ctx.settings
        net = _net_from_params(activation, params, precision)
        fit, pen = g_out is not None, g_sq is not None
        g_out = g_out.contiguous() if fit else None
        g_sq = g_sq.contiguous() if pen else None
        coef = torch.zeros(2, dtype=net.dtype, device=x.device)
        _, grads, x_grad = _gradients(
            net, x, g_out, g_sq, coef, mode=2, fit=fit, pen=pen, need_x=ctx.needs_input_grad[0], wgrad=wgrad
        )
        return (x_grad, None, None, None, *grads)


def output_and_sqnorms(model, x, *, grad=False, precision="ieee", wgrad="auto"):
    """(f(x) as B×k, ‖∂f/∂x(x_b)‖²_F as B) for a jacdistill MLP.

    Forward only by default (the results carry no autograd graph); with ``grad=True`` both are
    differentiable once with respect to x and every parameter (the backward is a second kernel)."""
    if not grad:
        with torch.no_grad():
            return _forward(_net_of(model, precision), x)
    return _OutputSqnormFunction.apply(x, model.activation, precision, wgrad, *_param_list(model))


def fused_loss(model, x, y, lam, *, precision="ieee", wgrad="auto"):
    """mean (f - y)² + lam·mean_b‖J_b‖²_F for a jacdistill MLP as a scalar tensor; ``backward()``
    fills every parameter's gradient (and x's when x requires grad). ``y`` is B×k or B."""
    return _FusedLossFunction.apply(x, y, float(lam), model.activation, precision, wgrad, *_param_list(model))
