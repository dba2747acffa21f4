"""Closed-form input Jacobian of jacdistill's MLP and the gradients of MSE + λ·mean‖J‖²_F.

Notation for an MLP with hidden layers l = 1…L (weights W_l: H_l×H_{l-1}, activation σ) and output
layer W_o (k_out×H_L):  a_l = h_{l-1} W_lᵀ + b_l,  h_l = σ(a_l),  f = h_L W_oᵀ + b_o,  s_l = σ'(a_l).
The input Jacobian is formed in reverse order, one B×H_l block per output and layer (never B×H×d):
u_L = W_o,  δ_l = u_l ⊙ s_l,  u_{l-1} = δ_l W_l,  J = u_0  (k_out×B×d).

Stacks: every function also takes an :class:`MLPStack` (k networks of one architecture, trained
together), whose parameters and inputs carry a leading member axis (x: k×B×d, member i seeing its
own rows x[i]). The code is written once over that optional axis: tensors are …×B×H with ``…``
empty for a plain MLP and k for a stack, products are ``@``/``addmm`` on matrices and
``bmm``/``baddbmm`` per member (one batched product for all members), reductions run over the
trailing axes only. So a plain MLP is the case without a member axis (no reshaping, its shapes and
speed as before), and an MLPStack's member i gets exactly what the plain MLP with its weights gets.

``fused_loss`` returns the loss (one per member for a stack) as a tensor whose backward hands out
parameter gradients computed in closed form during the forward pass: one pass of adjoints up the
Jacobian chain (which needs σ'') and one down the network, about five matrix products per layer
and no autograd graph.
"""

from __future__ import annotations

import torch

from jacdistill.teacher import MLP, MLPStack


# σ and σ' for the autograd-differentiable paths.
def _slopes_tanh(a):
    h = torch.tanh(a)
    return h, 1 - h * h


def _slopes_silu(a):
    sig = torch.sigmoid(a)
    return a * sig, sig * (1 + a * (1 - sig))


def _slopes_relu(a):
    return torch.relu(a), (a > 0).to(a.dtype)


SLOPES = {"tanh": _slopes_tanh, "silu": _slopes_silu, "relu": _slopes_relu}


# σ, σ' and σ'' (None where it vanishes) for the fused path, which runs without autograd. They
# overwrite ``a``: on a CPU a fresh B×H buffer costs more than the arithmetic (page faults).
def _curves_tanh(a):
    h = torch.tanh(a)
    s = torch.mul(h, h).neg_().add_(1)
    return h, s, torch.mul(h, s, out=a).mul_(-2)


def _curves_silu(a):
    sig = torch.sigmoid(a)
    h = a * sig
    s = torch.add(sig, h).addcmul_(h, sig, value=-1)  # σ + aσ(1-σ)
    a.add_(h, alpha=-2).add_(2)  # 2 + a(1-2σ)
    return h, s, sig.addcmul_(sig, sig, value=-1).mul_(a)  # σ(1-σ)(2 + a(1-2σ))


def _curves_relu(a):
    h = torch.relu(a)
    return h, torch.sign(h, out=a), None


CURVES = {"tanh": _curves_tanh, "silu": _curves_silu, "relu": _curves_relu}


def is_plain_mlp(model) -> bool:
    """True for jacdistill's MLP (not a subclass with its own forward): the closed forms apply."""
    return isinstance(model, MLP) and type(model).forward is MLP.forward and model.activation in SLOPES


def is_mlp_stack(model) -> bool:
    """True for jacdistill's MLPStack (not a subclass with its own forward): the closed forms apply,
    member by member (inputs k×B×d)."""
    return (
        isinstance(model, MLPStack) and type(model).forward is MLPStack.forward and model.activation in SLOPES
    )


def has_closed_form(model) -> bool:
    """True where this module's functions apply: a plain MLP or an MLPStack."""
    return is_plain_mlp(model) or is_mlp_stack(model)


def mlp_parts(model):
    """(activation, [W_1…W_L], [b_1…b_L], W_o, b_o) of a jacdistill MLP; of an MLPStack, the stacked
    parameters, each with a leading member axis (k×H_l×H_{l-1}, k×H_l, k×k_out×H_L, k×k_out)."""
    if isinstance(model, MLPStack):
        return model.activation, list(model.weights), list(model.biases), model.out_weight, model.out_bias
    return (
        model.activation,
        [layer.weight for layer in model.hidden],
        [layer.bias for layer in model.hidden],
        model.out.weight,
        model.out.bias,
    )


# Products with an optional leading member axis: matrices (plain MLP) or batches of them (stack).
def _affine(h, w, b):
    """h Wᵀ + b: h …×B×H_in, w …×H×H_in, b …×H."""
    return torch.addmm(b, h, w.t()) if h.ndim == 2 else torch.baddbmm(b.unsqueeze(-2), h, w.mT)


def _add_product_(acc, a, b):
    """acc += a b, in place."""
    return acc.addmm_(a, b) if acc.ndim == 2 else acc.baddbmm_(a, b)


def _chain_product(u, w):
    """u W for a chain block u of …×k_out×B×H: every output's rows in one product."""
    return (u.flatten(-3, -2) @ w).unflatten(-2, u.shape[-3:-1])


def output_and_jacobian(model, x):
    """(f(x), J), differentiable by autograd (the ``analytic`` penalty path).

    Plain MLP: x B×d → f B×k_out, J k_out×B×d. MLPStack: x k×B×d → f k×B×k_out, J k×k_out×B×d.
    """
    activation, weights, biases, w_out, b_out = mlp_parts(model)
    h, slopes = x, []
    for w, b in zip(weights, biases):
        h, s = SLOPES[activation](_affine(h, w, b))
        slopes.append(s.unsqueeze(-3))  # one B×H block, shared by every output
    u = w_out.unsqueeze(-2)  # …×k_out×1×H_L: every row starts from W_o
    for w, s in zip(reversed(weights), reversed(slopes)):
        u = _chain_product(u * s, w)
    return _affine(h, w_out, b_out), u


def loss_and_gradients(x, y, lam, activation, weights, biases, w_out, b_out):
    """MSE(f(x), y) + lam·mean_b‖J(x_b)‖²_F and its gradient for every parameter, in closed form.

    Returns (loss, [dW_1, db_1, …, dW_L, db_L, dW_o, db_o]), the gradients shaped like the
    parameters (those of :func:`mlp_parts`). Plain MLP: x B×d, y B×k_out, lam a float; the loss a
    scalar. MLPStack: x k×B×d, y k×B×k_out, lam a float or a tensor of one λ per member (k); one
    loss per member (k), member i's own MSE + λ_i·penalty, whose gradients fill slice i of the
    stacked gradients. Runs without autograd (it overwrites its own temporaries in place).
    """
    curves = CURVES[activation]
    n_layers, batch = len(weights), x.shape[-2]
    if torch.is_tensor(lam):
        lam = lam.to(device=x.device, dtype=x.dtype)
    inputs, slopes, curvatures = [], [], []  # h_{l-1}, σ'(a_l), σ''(a_l): …×B×H_l
    h = x
    for w, b in zip(weights, biases):
        inputs.append(h)
        h, s, s2 = curves(_affine(h, w, b))
        slopes.append(s)
        curvatures.append(s2)
    residual = _affine(h, w_out, b_out).sub_(y)

    # The chain's blocks are …×k_out×B×H (an output axis) for several outputs, …×B×H for one (no
    # output axis: fewer ops, which is what a small network's step costs on a CPU). ``per_output``
    # lifts a …×B×H tensor to the blocks' rank, ``rows`` flattens a block to its rows.
    several = residual.shape[-1] > 1
    per_output = (lambda t: t.unsqueeze(-3)) if several else (lambda t: t)
    rows = (lambda t: t.flatten(-3, -2)) if several else (lambda t: t)
    times = _chain_product if several else torch.matmul

    # Jacobian chain, top down: u_L = W_o, δ_l = u_l ⊙ s_l, u_{l-1} = δ_l W_l.
    chain_in, deltas = [None] * n_layers, [None] * n_layers
    u = w_out.unsqueeze(-2) if several else w_out  # one row per output: …×k_out×1×H_L or …×1×H_L
    for l in reversed(range(n_layers)):
        chain_in[l] = u
        deltas[l] = u * per_output(slopes[l])
        u = times(deltas[l], weights[l])
    jac = u
    loss = residual.square().mean((-2, -1)).add_(rows(jac).square().sum((-2, -1)).mul_(lam / batch))

    # Adjoints of λ·penalty up the chain, bottom up: ū_0 = 2λJ/B, δ̄_l = ū_{l-1} W_lᵀ,
    # s̄_l = Σ_k δ̄_l ⊙ u_l (how the penalty moves with σ'(a_l)), ū_l = δ̄_l ⊙ s_l.
    grad_w_pen, pulls = [None] * n_layers, [None] * n_layers
    scale = 2 * lam / batch  # a float, or one per member (k) to spread over the member's block
    u_bar = jac.mul_(scale.reshape(scale.shape + (1,) * (jac.ndim - 1)) if torch.is_tensor(scale) else scale)
    for l in range(n_layers):
        grad_w_pen[l] = rows(deltas[l]).mT @ rows(u_bar)
        delta_bar = times(u_bar, weights[l].mT)
        if curvatures[l] is not None:  # the penalty's pull on a_l, s̄_l ⊙ σ''(a_l)
            pull = (
                (delta_bar * chain_in[l]).sum(-3)
                if several
                else torch.mul(delta_bar, chain_in[l], out=deltas[l])
            )
            pulls[l] = pull.mul_(curvatures[l])
        u_bar = delta_bar.mul_(per_output(slopes[l]))
    grad_w_out = u_bar.sum(-2, keepdim=not several)  # u_L = W_o for every row

    # Adjoints of the MSE (each member's own mean), plus the penalty's pull on each a_l, down the
    # network.
    r_bar = residual.mul_(2 / (batch * residual.shape[-1]))
    grads = [_add_product_(grad_w_out, r_bar.mT, h), r_bar.sum(-2)]
    h_bar = r_bar @ w_out if several else r_bar * w_out  # an outer product: BLAS is slow at K=1
    for l in reversed(range(n_layers)):
        a_bar = h_bar.mul_(slopes[l])
        if pulls[l] is not None:
            a_bar.add_(pulls[l])
        grads[:0] = [_add_product_(grad_w_pen[l], a_bar.mT, inputs[l]), a_bar.sum(-2)]
        if l:
            h_bar = a_bar @ weights[l]
    return loss, grads


class _FusedLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, lam, activation, *params):
        n = (len(params) - 2) // 2
        loss, grads = loss_and_gradients(
            x,
            y,
            lam,
            activation,
            list(params[0 : 2 * n : 2]),
            list(params[1 : 2 * n : 2]),
            params[-2],
            params[-1],
        )
        ctx.save_for_backward(*grads)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        # A scalar (plain MLP), or one incoming gradient per member that scales its slice.
        scale = (
            (lambda g: grad_loss.reshape(-1, *(1,) * (g.ndim - 1)))
            if grad_loss.ndim
            else (lambda g: grad_loss)
        )
        return (None, None, None, None, *(g * scale(g) for g in ctx.saved_tensors))


def fused_loss(model, x, y, lam):
    """MSE + lam·mean‖J‖²_F for a jacdistill MLP or MLPStack; ``backward()`` fills every parameter
    gradient (computed in closed form during this call).

    Plain MLP: x B×d, y B×k_out (or B), lam a float → a scalar. MLPStack: x k×B×d, y k×B×k_out
    (or k×B), lam a float or a tensor of shape k (one λ per member) → one loss per member (shape
    k), member i's MSE + λ_i·penalty; ``loss.backward(w)`` (``loss.sum().backward()`` for w = 1)
    gives member i's slice of each parameter w_i times the gradient of its own loss.
    """
    activation, weights, biases, w_out, b_out = mlp_parts(model)
    params = [p for w, b in zip(weights, biases) for p in (w, b)] + [w_out, b_out]
    lam = lam.detach() if torch.is_tensor(lam) and lam.ndim and is_mlp_stack(model) else float(lam)
    return _FusedLoss.apply(x, y.reshape(*x.shape[:-1], -1), lam, activation, *params)


def output_and_directional(model, x, v):
    """(f(x), J·v) for P input directions v, differentiable by autograd.

    Plain MLP: x B×d, v P×B×d → f B×k_out, J·v P×B×k_out. MLPStack: x k×B×d, v P×k×B×d (direction
    p of member i's rows is v[p, i], as ``torch.stack`` of P draws shaped like x gives) → f
    k×B×k_out, J·v P×k×B×k_out.

    Forward-mode in closed form: the tangent t_l = (t_{l-1} W_lᵀ) ⊙ s_l rides along the forward
    pass, so P directions cost P extra B×H products per layer, not a backward pass each.
    """
    activation, weights, biases, w_out, b_out = mlp_parts(model)
    rows = v.shape[0], v.shape[-2]  # P directions of B rows, for each member: …×P×B×H tangents
    h, t = x, v.movedim(0, -3).flatten(-3, -2)
    for w, b in zip(weights, biases):
        h, s = SLOPES[activation](_affine(h, w, b))
        t = ((t @ w.mT).unflatten(-2, rows) * s.unsqueeze(-3)).flatten(-3, -2)
    return _affine(h, w_out, b_out), (t @ w_out.mT).unflatten(-2, rows).movedim(-3, 0)
