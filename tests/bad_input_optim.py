"""Bad input of graphc.optim, param roles and astype: cases for the catalogue of tests/test_bad_input.py.

Each case is ``(id, thunk that must raise GraphError, regex the message must match)``;
the thunks build small graphs with the helpers below.
"""

from __future__ import annotations

import numpy as np

import graphc as gc


def _optim_model(dtype: str = "float32"):
    """``(x, w, b, loss)``: a linear model under squared error, in a fresh graph."""
    with gc.Graph("optim-case"):
        x = gc.input("x", (4, 3), dtype)
        w = gc.param("w", (3, 2), dtype)
        b = gc.param("b", (2,), dtype)
        return x, w, b, gc.mean((x @ w + b) ** 2)


def _optim_call(optimizer: str, **kwargs):
    """``gc.optim.<optimizer>(loss, [w, b], **kwargs)`` on a fresh model."""
    x, w, b, loss = _optim_model()
    return getattr(gc.optim, optimizer)(loss, [w, b], **kwargs)


def _optim_params(pick):
    """An optimizer over ``pick(x, w, b, loss)`` (a list) on a fresh model."""
    x, w, b, loss = _optim_model()
    return gc.optim.adam(loss, pick(x, w, b, loss))


def _optim_state_param():
    x, w, b, loss = _optim_model()
    updates = gc.optim.adam(loss, [w])
    state = next(v for v in updates if v.role == "state")
    return gc.optim.sgd(loss, [b, state], lr=0.1)


def _optim_twice():
    x, w, b, loss = _optim_model()
    gc.optim.sgd(loss, [w, b], lr=0.1, momentum=0.9)
    return gc.optim.sgd(loss, [b], lr=0.1, momentum=0.9)


def _optim_vector_loss():
    x, w, b, loss = _optim_model()
    return gc.optim.adam(x @ w + b, [w, b])


def _optim_other_graph():
    x, w, b, loss = _optim_model()
    with gc.Graph("other"):
        v = gc.param("v", (2,))
    return gc.optim.sgd(loss, [w, v], lr=0.1)


def _optim_param_with_role(role):
    with gc.Graph("role-case"):
        return gc.param("w", (2,), role=role)


def _optim_astype(dtype):
    with gc.Graph("astype-case"):
        return gc.astype(gc.input("x", (2,)), dtype)


CASES_OPTIM = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("optim-sgd-lr-negative", lambda: _optim_call("sgd", lr=-0.1), r"optim\.sgd: lr=-0\.1 is invalid; lr must be a finite number >= 0"),
    ("optim-sgd-lr-nan", lambda: _optim_call("sgd", lr=float("nan")), r"optim\.sgd: lr=nan is invalid"),
    ("optim-sgd-lr-string", lambda: _optim_call("sgd", lr="0.1"), r"optim\.sgd: lr='0\.1' is invalid; lr must be a finite number"),
    ("optim-sgd-momentum-negative", lambda: _optim_call("sgd", lr=0.1, momentum=-0.9), r"momentum=-0\.9 is invalid; momentum must be a finite number >= 0"),
    ("optim-sgd-dampening-infinite", lambda: _optim_call("sgd", lr=0.1, momentum=0.9, dampening=float("inf")), r"dampening=inf is invalid; dampening must be a finite number"),
    ("optim-sgd-weight-decay-negative", lambda: _optim_call("sgd", lr=0.1, weight_decay=-1e-4), r"weight_decay=-0\.0001 is invalid; weight_decay must be a finite number >= 0"),
    ("optim-sgd-nesterov-without-momentum", lambda: _optim_call("sgd", lr=0.1, nesterov=True), r"nesterov=True needs momentum > 0 and dampening = 0, got momentum=0"),
    ("optim-sgd-nesterov-with-dampening", lambda: _optim_call("sgd", lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), r"nesterov=True needs .*dampening=0\.1"),
    ("optim-sgd-nesterov-not-bool", lambda: _optim_call("sgd", lr=0.1, momentum=0.9, nesterov="yes"), r"nesterov='yes' is invalid; nesterov must be True or False"),
    ("optim-adam-beta1-one", lambda: _optim_call("adam", betas=(1.0, 0.999)), r"optim\.adam: betas\[0\]=1\.0 is invalid; betas\[0\] must be a finite number in \[0, 1\)"),
    ("optim-adam-beta2-negative", lambda: _optim_call("adam", betas=(0.9, -0.5)), r"betas\[1\]=-0\.5 is invalid; betas\[1\] must be a finite number in \[0, 1\)"),
    ("optim-adam-betas-not-a-pair", lambda: _optim_call("adam", betas=0.9), r"betas=0\.9 is invalid; betas must be a pair \(beta1, beta2\)"),
    ("optim-adam-eps-negative", lambda: _optim_call("adam", eps=-1e-8), r"eps=-1e-08 is invalid; eps must be a finite number >= 0"),
    ("optim-adam-weight-decay-negative", lambda: _optim_call("adam", weight_decay=-0.1), r"optim\.adam: weight_decay=-0\.1 is invalid"),
    ("optim-adam-amsgrad-not-bool", lambda: _optim_call("adam", amsgrad=1), r"amsgrad=1 is invalid; amsgrad must be True or False"),
    ("optim-adamw-lr-negative", lambda: _optim_call("adamw", lr=-1e-3), r"optim\.adamw: lr=-0\.001 is invalid; lr must be a finite number >= 0"),
    ("optim-adamw-beta1-above-one", lambda: _optim_call("adamw", betas=(1.5, 0.999)), r"optim\.adamw: betas\[0\]=1\.5 is invalid"),
    ("optim-rmsprop-alpha-negative", lambda: _optim_call("rmsprop", alpha=-0.99), r"optim\.rmsprop: alpha=-0\.99 is invalid; alpha must be a finite number >= 0"),
    ("optim-rmsprop-momentum-negative", lambda: _optim_call("rmsprop", momentum=-0.1), r"optim\.rmsprop: momentum=-0\.1 is invalid"),
    ("optim-rmsprop-eps-nan", lambda: _optim_call("rmsprop", eps=float("nan")), r"optim\.rmsprop: eps=nan is invalid"),
    ("optim-rmsprop-centered-not-bool", lambda: _optim_call("rmsprop", centered=None), r"centered=None is invalid; centered must be True or False"),
    ("optim-params-empty", lambda: _optim_params(lambda x, w, b, loss: []), r"optim\.adam: params is empty; give the list of params to train"),
    ("optim-params-one-value", lambda: _optim_params(lambda x, w, b, loss: w), r"params must be a list of param Values, got Value; write \[w, b\]"),
    ("optim-params-not-a-value", lambda: _optim_params(lambda x, w, b, loss: [w, "b"]), r"optim\.adam: params\[1\]: expected a graphc Value, got str"),
    ("optim-params-an-input", lambda: _optim_params(lambda x, w, b, loss: [w, x]), r"params\[1\] 'x' \(input, shape \(4, 3\), float32\) is not a param; only params are trained"),
    ("optim-params-a-computed-value", lambda: _optim_params(lambda x, w, b, loss: [w * 2.0]), r"params\[0\] 'mul_\d+' \(mul, shape \(3, 2\), float32\) is not a param"),
    ("optim-params-twice", lambda: _optim_params(lambda x, w, b, loss: [w, b, w]), r"params\[2\] 'w' appears twice in params; list each param once"),
    ("optim-params-a-state-param", _optim_state_param, r"optim\.sgd: params\[1\] 'w\.step' .* has role 'state': it is state, updated by a plan and never trained"),
    ("optim-state-created-twice", _optim_twice, r"optim\.sgd: this call would create the state param 'b\.momentum_buffer', but graph 'optim-case' has one of that name already \(param of role 'state', shape \(2,\), float32\).*pass name='\.\.\.'"),
    ("optim-name-empty", lambda: _optim_call("adam", name=""), r"optim\.adam: name='' is invalid; name must be a non-empty string"),
    ("optim-loss-not-scalar", _optim_vector_loss, r"optim\.adam: loss 'add_\d+' \(add, shape \(4, 2\), float32\) is not a scalar; an optimizer minimises one number: reduce it first"),
    ("optim-loss-not-a-value", lambda: gc.optim.rmsprop(1.5, _optim_model()[1:3]), r"optim\.rmsprop: loss must be a scalar Value of the graph, got float"),
    ("optim-params-of-another-graph", _optim_other_graph, r"params\[1\] 'v' \(param, shape \(2,\), float32\) belongs to graph 'other', not to the loss's graph 'optim-case'"),
    ("param-role-unknown", lambda: _optim_param_with_role("buffer"), r"param 'w': role='buffer' is not a param role; choose one of 'param', 'state'"),
    ("param-role-none", lambda: _optim_param_with_role(None), r"param 'w': role=None is not a param role"),
    ("astype-to-int", lambda: _optim_astype("int32"), r"astype: dtype int32 is not supported; use one of float32, float64"),
    ("astype-not-a-dtype", lambda: _optim_astype("half-precision"), r"astype: 'half-precision' is not a dtype"),
]
