"""Optimizers as updates with state: ``torch.optim``'s SGD, Adam, AdamW and RMSprop.

Each optimizer is a function of the loss and the params that returns the
``updates`` mapping of :func:`graphc.compile`: one training step is one run::

    step = gc.compile(loss, updates=gc.optim.adam(loss, params, lr=1e-3))
    for batch in batches:
        step.run(batch)

The arguments, defaults and meanings are ``torch.optim``'s, and so are the
update equations, term by term (``tests/test_optim.py`` checks 20 steps
against torch: to 1e-12 in float64, 1e-5 in float32). What torch keeps in
``optimizer.state[p]`` is kept here in **state params**: params of the loss's
graph created by the optimizer with ``role="state"``, zero at the start, of
the param's shape and dtype, named after the param they serve with torch's
names — ``"w.momentum_buffer"``, ``"w.exp_avg"``, ``"w.exp_avg_sq"``,
``"w.max_exp_avg_sq"``, ``"w.square_avg"``, ``"w.grad_avg"`` — and the step
count ``"w.step"``, a float64 scalar, for the bias corrections (torch computes
them in Python floats, so a float32 model gets them rounded once to float32).
The updates map every param *and* every state param to its new value; all new
values are computed from the old ones (the updates of one run are
simultaneous), and each is elementwise in the value it replaces, so a plan
can write it in place. ``Program.state`` reports the state a program updates.

Calling an optimizer twice for the same param would make two sets of state
under one name: it is a :class:`~graphc.GraphError` naming the existing state
param. ``name="..."`` prefixes a call's state names (``"fast.w.exp_avg"``),
for a second optimizer over the same params on purpose.

The update of param ``p`` — its arithmetic and its state params — is built in
the scope ``optim/<p's name>`` (:func:`graphc.scope`; inside the scope open
where the optimizer is called), so plan listings, memory reports and images
show an optimizer's work apart from the blocks of the model; the gradients it
reads stay in the scopes of the blocks they come from.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from graphc.autodiff import grad
from graphc.errors import GraphError
from graphc.ir import Value, as_values, is_real, optimizer_scope
from graphc.ops import astype, greater, maximum, param, sqrt

__all__ = ["sgd", "adam", "adamw", "rmsprop"]

Updates = dict[Value, Value]


# --- arguments, checked as torch checks them ----------------------------------------------------


def _number(opt: str, arg: str, value: Any, low: float = 0.0, below: float | None = None) -> float:
    """``value`` as a float if it is a finite real number in ``[low, below)``, else a GraphError naming ``arg``."""
    accepted = f">= {low:g}" if below is None else f"in [{low:g}, {below:g})"
    if not (is_real(value) and math.isfinite(value) and value >= low and (below is None or value < below)):
        raise GraphError(f"{opt}: {arg}={value!r} is invalid; {arg} must be a finite number {accepted}")
    return float(value)


def _finite(opt: str, arg: str, value: Any) -> float:
    if not (is_real(value) and math.isfinite(value)):
        raise GraphError(f"{opt}: {arg}={value!r} is invalid; {arg} must be a finite number")
    return float(value)


def _flag(opt: str, arg: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise GraphError(f"{opt}: {arg}={value!r} is invalid; {arg} must be True or False")
    return bool(value)


def _betas(opt: str, betas: Any) -> tuple[float, float]:
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise GraphError(f"{opt}: betas={betas!r:.60} is invalid; betas must be a pair (beta1, beta2), each in [0, 1)")
    return _number(opt, "betas[0]", betas[0], 0.0, 1.0), _number(opt, "betas[1]", betas[1], 0.0, 1.0)


def _scalar_loss(opt: str, loss: Any) -> Value:
    if not isinstance(loss, Value):
        raise GraphError(f"{opt}: loss must be a scalar Value of the graph, got {type(loss).__name__} {loss!r:.40}")
    if loss.shape != ():
        raise GraphError(
            f"{opt}: loss {loss.node.describe()} is not a scalar; an optimizer minimises one number: "
            "reduce it first (e.g. gc.mean(loss))"
        )
    return loss


def _trained_params(opt: str, loss: Value, params: Any) -> list[Value]:
    """The params to train: a non-empty list of distinct params of role "param" of the loss's graph."""
    if isinstance(params, Value) or not isinstance(params, (list, tuple)):
        raise GraphError(f"{opt}: params must be a list of param Values, got {type(params).__name__}; write [w, b]")
    values = as_values(params, f"{opt}: params")
    if not values:
        raise GraphError(f"{opt}: params is empty; give the list of params to train")
    seen = set()
    for index, p in enumerate(values):
        if p.node.op.name != "param":
            raise GraphError(f"{opt}: params[{index}] {p.node.describe()} is not a param; only params are trained")
        if p.role != "param":
            raise GraphError(
                f"{opt}: params[{index}] {p.node.describe()} has role {p.role!r}: it is state, updated by a plan "
                "and never trained; pass the model's params (role 'param')"
            )
        if p.graph is not loss.graph:
            raise GraphError(
                f"{opt}: params[{index}] {p.node.describe()} belongs to graph {p.graph.name!r}, not to the loss's "
                f"graph {loss.graph.name!r}; train params of the graph the loss is computed in"
            )
        if p.node in seen:
            raise GraphError(f"{opt}: params[{index}] {p.name!r} appears twice in params; list each param once")
        seen.add(p.node)
    return values


def _prefix(opt: str, name: Any) -> str:
    if name is None:
        return ""
    if not (isinstance(name, str) and name):
        raise GraphError(f"{opt}: name={name!r} is invalid; name must be a non-empty string (a prefix of the state names) or None")
    return name + "."


# --- state params ---------------------------------------------------------------------------------

SCALAR_SLOTS = frozenset({"step"})  # float64 scalars; every other slot has its param's shape and dtype


def _state(opt: str, params: list[Value], slots: Sequence[str], prefix: str) -> list[dict[str, Value]]:
    """Create the state params of ``slots`` for each param, zero-initialised, with role "state".

    Every name is checked before any param is created, so a clash leaves the graph as it was.
    """
    if not slots:
        return [{} for _ in params]
    graph = params[0].graph
    names = [{slot: f"{prefix}{p.name}.{slot}" for slot in slots} for p in params]
    for per_param in names:
        for state_name in per_param.values():
            existing = graph.params.get(state_name) or graph.inputs.get(state_name)
            if existing is not None:
                kind = f"{existing.op.name} of role {existing.role!r}" if existing.role else existing.op.name
                raise GraphError(
                    f"{opt}: this call would create the state param {state_name!r}, but graph {graph.name!r} has "
                    f"one of that name already ({kind}, shape {existing.shape}, {existing.dtype.name}); an "
                    "optimizer's state is created once per param: compile with the updates of the first call, "
                    "or pass name='...' to give this call's state other names"
                )
    state = []
    with graph:
        for p, per_param in zip(params, names):
            with optimizer_scope(p):
                state.append({
                    slot: param(state_name, (), "float64", init=0.0, role="state") if slot in SCALAR_SLOTS
                    else param(state_name, p.shape, p.dtype, init=0.0, role="state")
                    for slot, state_name in per_param.items()
                })
    return state


def _in_dtype_of(scalar: Value, like: Value) -> Value:
    """A float64 scalar rounded to ``like``'s dtype (once, as torch rounds a Python float)."""
    return scalar if scalar.dtype == like.dtype else astype(scalar, like.dtype)


def _lerp(start: Value, end: Value, weight: float) -> Value:
    """``start + weight·(end - start)``, as torch's ``lerp`` computes it (from ``end`` when weight ≥ ½)."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


# --- the optimizers -----------------------------------------------------------------------------


def sgd(
    loss: Value,
    params: Sequence[Value],
    lr: float,
    momentum: float = 0,
    dampening: float = 0,
    weight_decay: float = 0,
    nesterov: bool = False,
    *,
    name: str | None = None,
) -> Updates:
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD`` (its arguments in its order).

    With g = ∂loss/∂p + weight_decay·p, and with momentum μ ≠ 0 a buffer b
    (state ``"p.momentum_buffer"``)::

        b ← g                       on the first step
        b ← μ·b + (1 - dampening)·g  afterwards
        d = g + μ·b  (nesterov)   or   d = b
        p ← p - lr·d

    Without momentum, ``p ← p - lr·g`` (:func:`graphc.sgd`'s update when
    weight_decay is 0). The first step is told apart by a step count (state
    ``"p.step"``) only when dampening ≠ 0: with a zero buffer, μ·0 + g = g.
    Nesterov needs μ > 0 and dampening = 0, as in torch. ``name`` prefixes the
    names of this call's state params (``"name.p.momentum_buffer"``).
    """
    opt = "optim.sgd"
    lr = _number(opt, "lr", lr)
    momentum = _number(opt, "momentum", momentum)
    dampening = _finite(opt, "dampening", dampening)
    nesterov = _flag(opt, "nesterov", nesterov)
    weight_decay = _number(opt, "weight_decay", weight_decay)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise GraphError(
            f"{opt}: nesterov=True needs momentum > 0 and dampening = 0, got momentum={momentum:g}, "
            f"dampening={dampening:g}"
        )
    loss = _scalar_loss(opt, loss)
    params = _trained_params(opt, loss, params)
    slots = [] if momentum == 0 else ["momentum_buffer"] + (["step"] if dampening != 0 else [])
    prefix = _prefix(opt, name)
    grads = grad(loss, params)
    state = _state(opt, params, slots, prefix)

    updates: Updates = {}
    for p, g, s in zip(params, grads, state):
        with optimizer_scope(p):
            if weight_decay != 0:
                g = g + weight_decay * p
            if momentum != 0:
                buf = s["momentum_buffer"]
                if dampening == 0:
                    new_buf = momentum * buf + g
                else:
                    started = greater(s["step"], 0.0)  # 0 on the first step, when the buffer takes g itself
                    updates[s["step"]] = s["step"] + 1.0
                    new_buf = momentum * buf + _in_dtype_of(1.0 - dampening * started, p) * g
                updates[buf] = new_buf
                g = g + momentum * new_buf if nesterov else new_buf
            updates[p] = p - lr * g
    return updates


def _adam(
    opt: str,
    loss: Value,
    params: Sequence[Value],
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    decoupled: bool,
    name: str | None,
) -> Updates:
    """Adam's updates, with L2 decay added to the gradient or (``decoupled``) AdamW's decay of the param."""
    lr = _number(opt, "lr", lr)
    beta1, beta2 = _betas(opt, betas)
    eps = _number(opt, "eps", eps)
    weight_decay = _number(opt, "weight_decay", weight_decay)
    amsgrad = _flag(opt, "amsgrad", amsgrad)
    loss = _scalar_loss(opt, loss)
    params = _trained_params(opt, loss, params)
    slots = ["step", "exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
    prefix = _prefix(opt, name)
    grads = grad(loss, params)
    state = _state(opt, params, slots, prefix)

    updates: Updates = {}
    for p, g, s in zip(params, grads, state):
        with optimizer_scope(p):
            step = s["step"] + 1.0
            updates[s["step"]] = step
            if weight_decay != 0 and not decoupled:
                g = g + weight_decay * p
            m = updates[s["exp_avg"]] = _lerp(s["exp_avg"], g, 1.0 - beta1)
            v = updates[s["exp_avg_sq"]] = beta2 * s["exp_avg_sq"] + (1.0 - beta2) * g * g
            if amsgrad:
                v = updates[s["max_exp_avg_sq"]] = maximum(s["max_exp_avg_sq"], v)
            step_size = lr / (1.0 - beta1**step)  # float64 scalars, as torch's Python floats
            bias_correction2_sqrt = (1.0 - beta2**step) ** 0.5
            denom = sqrt(v) / _in_dtype_of(bias_correction2_sqrt, p) + eps
            decayed = p * (1.0 - lr * weight_decay) if decoupled and weight_decay != 0 else p
            updates[p] = decayed - _in_dtype_of(step_size, p) * (m / denom)
    return updates


def adam(
    loss: Value,
    params: Sequence[Value],
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    amsgrad: bool = False,
    *,
    name: str | None = None,
) -> Updates:
    """Adam (Kingma & Ba 2015), as ``torch.optim.Adam``.

    With g = ∂loss/∂p + weight_decay·p and t the step count (state ``"p.step"``,
    counting this step), the moments m, v (``"p.exp_avg"``, ``"p.exp_avg_sq"``)::

        m ← m + (1 - β1)·(g - m)
        v ← β2·v + (1 - β2)·g²
        v̂ = max(v̂, v)  with amsgrad (``"p.max_exp_avg_sq"``), else v̂ = v
        p ← p - lr/(1 - β1ᵗ) · m / (√v̂ / √(1 - β2ᵗ) + eps)

    eps is added after the bias correction of √v, as torch does. ``name``
    prefixes the names of this call's state params (``"name.p.exp_avg"``).
    """
    return _adam("optim.adam", loss, params, lr, betas, eps, weight_decay, amsgrad, False, name)


def adamw(
    loss: Value,
    params: Sequence[Value],
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    *,
    name: str | None = None,
) -> Updates:
    """AdamW (Loshchilov & Hutter 2019), as ``torch.optim.AdamW``: decoupled weight decay.

    The gradient g = ∂loss/∂p is not decayed; the param is, before Adam's step
    (the moments as in :func:`adam`)::

        p ← p·(1 - lr·weight_decay) - lr/(1 - β1ᵗ) · m / (√v̂ / √(1 - β2ᵗ) + eps)
    """
    return _adam("optim.adamw", loss, params, lr, betas, eps, weight_decay, amsgrad, True, name)


def rmsprop(
    loss: Value,
    params: Sequence[Value],
    lr: float = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0,
    momentum: float = 0,
    centered: bool = False,
    *,
    name: str | None = None,
) -> Updates:
    """RMSprop (Hinton's lecture 6e), as ``torch.optim.RMSprop``.

    With g = ∂loss/∂p + weight_decay·p and the square average s (``"p.square_avg"``)::

        s ← α·s + (1 - α)·g²
        a = √(s - ḡ²) + eps   with centered, where ḡ ← ḡ + (1 - α)·(g - ḡ)  (``"p.grad_avg"``)
        a = √s + eps          otherwise
        b ← μ·b + g / a,  p ← p - lr·b    with momentum μ > 0 (``"p.momentum_buffer"``)
        p ← p - lr·g / a                 otherwise

    Nothing depends on the step count, so none is kept. ``name`` prefixes the
    names of this call's state params (``"name.p.square_avg"``).
    """
    opt = "optim.rmsprop"
    lr = _number(opt, "lr", lr)
    alpha = _number(opt, "alpha", alpha)
    eps = _number(opt, "eps", eps)
    weight_decay = _number(opt, "weight_decay", weight_decay)
    momentum = _number(opt, "momentum", momentum)
    centered = _flag(opt, "centered", centered)
    loss = _scalar_loss(opt, loss)
    params = _trained_params(opt, loss, params)
    slots = ["square_avg"] + (["momentum_buffer"] if momentum > 0 else []) + (["grad_avg"] if centered else [])
    prefix = _prefix(opt, name)
    grads = grad(loss, params)
    state = _state(opt, params, slots, prefix)

    updates: Updates = {}
    for p, g, s in zip(params, grads, state):
        with optimizer_scope(p):
            if weight_decay != 0:
                g = g + weight_decay * p
            square_avg = updates[s["square_avg"]] = alpha * s["square_avg"] + (1.0 - alpha) * g * g
            if centered:
                grad_avg = updates[s["grad_avg"]] = _lerp(s["grad_avg"], g, 1.0 - alpha)
                avg = sqrt(square_avg - grad_avg * grad_avg) + eps
            else:
                avg = sqrt(square_avg) + eps
            if momentum > 0:
                buf = updates[s["momentum_buffer"]] = momentum * s["momentum_buffer"] + g / avg
                updates[p] = p - lr * buf
            else:
                updates[p] = p - lr * (g / avg)
    return updates
