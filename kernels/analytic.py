"""Closed-form input Jacobian of jacdistill's MLP and the gradients of MSE + λ·mean‖J‖²_F.

Notation for an MLP with hidden layers l = 1…L (weights W_l: H_l×H_{l-1}, activation σ) and output
layer W_o (k×H_L):  a_l = h_{l-1} W_lᵀ + b_l,  h_l = σ(a_l),  f = h_L W_oᵀ + b_o,  s_l = σ'(a_l).
The input Jacobian is formed in reverse order, one B×H_l block per output and layer (never B×H×d):
u_L = W_o,  δ_l = u_l ⊙ s_l,  u_{l-1} = δ_l W_l,  J = u_0  (k×B×d).

``fused_loss`` returns the loss as a tensor whose backward hands out parameter gradients computed
in closed form during the forward pass: one pass of adjoints up the Jacobian chain (which needs
σ'') and one down the network, about five matrix products per layer and no autograd graph.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from jacdistill.teacher import MLP


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


def mlp_parts(model):
    """(activation, [W_1…W_L], [b_1…b_L], W_o, b_o) of a jacdistill MLP."""
    return (
        model.activation,
        [layer.weight for layer in model.hidden],
        [layer.bias for layer in model.hidden],
        model.out.weight,
        model.out.bias,
    )


def output_and_jacobian(model, x):
    """(f(x) as B×k, J as k×B×d), differentiable by autograd (the ``analytic`` penalty path)."""
    activation, weights, biases, w_out, b_out = mlp_parts(model)
    h, slopes = x, []
    for w, b in zip(weights, biases):
        h, s = SLOPES[activation](F.linear(h, w, b))
        slopes.append(s)
    u = w_out.unsqueeze(1)
    for w, s in zip(reversed(weights), reversed(slopes)):
        u = (u * s) @ w
    return F.linear(h, w_out, b_out), u


def loss_and_gradients(x, y, lam, activation, weights, biases, w_out, b_out):
    """MSE(f(x), y) + lam·mean_b‖J(x_b)‖²_F and its gradient for every parameter, in closed form.

    Returns (loss, [dW_1, db_1, …, dW_L, db_L, dW_o, db_o]). ``y`` has shape B×k. Runs without
    autograd (it overwrites its own temporaries in place).
    """
    curves = CURVES[activation]
    n_layers, batch = len(weights), x.shape[0]
    inputs, slopes, curvatures = [], [], []  # h_{l-1}, σ'(a_l), σ''(a_l)
    h = x
    for w, b in zip(weights, biases):
        inputs.append(h)
        h, s, s2 = curves(torch.addmm(b, h, w.t()))
        slopes.append(s)
        curvatures.append(s2)
    residual = torch.addmm(b_out, h, w_out.t()) - y
    several = residual.shape[1] > 1  # k outputs: chain blocks are k×B×H; one output: B×H

    # Jacobian chain, top down: u_L = W_o, δ_l = u_l ⊙ s_l, u_{l-1} = δ_l W_l.
    chain_in, deltas = [None] * n_layers, [None] * n_layers
    u = w_out.unsqueeze(1) if several else w_out
    for l in reversed(range(n_layers)):
        chain_in[l] = u
        deltas[l] = u * slopes[l]
        u = deltas[l] @ weights[l]
    jac = u
    loss = residual.square().mean() + (lam / batch) * jac.square().sum()

    # Adjoints of λ·penalty up the chain, bottom up: ū_0 = 2λJ/B, δ̄_l = ū_{l-1} W_lᵀ,
    # s̄_l = Σ_k δ̄_l ⊙ u_l (how the penalty moves with σ'(a_l)), ū_l = δ̄_l ⊙ s_l.
    grad_w_pen, pulls = [None] * n_layers, [None] * n_layers
    u_bar = jac * (2 * lam / batch)
    for l in range(n_layers):
        grad_w_pen[l] = deltas[l].reshape(-1, weights[l].shape[0]).t() @ u_bar.reshape(-1, u_bar.shape[-1])
        delta_bar = u_bar @ weights[l].t()
        if curvatures[l] is not None:  # the penalty's pull on a_l, s̄_l ⊙ σ''(a_l)
            pull = (
                (delta_bar * chain_in[l]).sum(0)
                if several
                else torch.mul(delta_bar, chain_in[l], out=deltas[l])
            )
            pulls[l] = pull.mul_(curvatures[l])
        u_bar = delta_bar.mul_(slopes[l])
    grad_w_out = u_bar.sum(1) if several else u_bar.sum(0, keepdim=True)  # u_L = W_o for every row

    # Adjoints of the MSE, plus the penalty's pull on each a_l, down the network.
    r_bar = residual * (2 / residual.numel())
    grads = [torch.addmm(grad_w_out, r_bar.t(), h), r_bar.sum(0)]
    h_bar = r_bar @ w_out if several else r_bar * w_out  # an outer product: BLAS is slow at K=1
    for l in reversed(range(n_layers)):
        a_bar = h_bar.mul_(slopes[l])
        if pulls[l] is not None:
            a_bar.add_(pulls[l])
        grads[:0] = [torch.addmm(grad_w_pen[l], a_bar.t(), inputs[l]), a_bar.sum(0)]
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
        return (None, None, None, None, *(g * grad_loss for g in ctx.saved_tensors))


def fused_loss(model, x, y, lam):
    """MSE + lam·mean‖J‖²_F for a jacdistill MLP; ``backward()`` fills every parameter gradient."""
    params = [p for layer in (*model.hidden, model.out) for p in (layer.weight, layer.bias)]
    return _FusedLoss.apply(x, y.reshape(len(x), -1), float(lam), model.activation, *params)


def output_and_directional(model, x, v):
    """(f(x) as B×k, J·v as P×B×k) for P input directions v (P×B×d), differentiable by autograd.

    Forward-mode in closed form: the tangent t_l = (t_{l-1} W_lᵀ) ⊙ s_l rides along the forward
    pass, so P directions cost P extra B×H products per layer, not a backward pass each.
    """
    activation, weights, biases, w_out, b_out = mlp_parts(model)
    h, t = x, v
    for w, b in zip(weights, biases):
        h, s = SLOPES[activation](F.linear(h, w, b))
        t = (t @ w.t()) * s
    return F.linear(h, w_out, b_out), t @ w_out.t()
