"""Bad uses of ``compile(..., bind=...)``: cases for the bad-input catalogue (``CASES_BIND``)."""

from __future__ import annotations

import io

import numpy as np

import graphc as gc


def _bind_loss(batch=2):
    """A small scalar loss; ``batch=None`` makes a graph whose batch size varies."""
    with gc.Graph("bind-case"):
        x = gc.input("x", shape=(batch, 3))
        w = gc.param("w", shape=(3, 2))
        return gc.sum(x @ w)


def _run_unbound(batch=2):
    prog = gc.compile(_bind_loss(None if batch is None else batch), bind=False)
    prog.run({"x": np.ones((2, 3), np.float32)})


def _saved_program() -> io.BytesIO:
    file = io.BytesIO()
    gc.compile(_bind_loss(), bind=False).save(file)
    file.seek(0)
    return file


CASES_BIND = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("bind-string", lambda: gc.compile(_bind_loss(), bind="yes"), r"bind='yes'.*True.*False"),
    ("bind-int", lambda: gc.compile(_bind_loss(), bind=1), r"bind=1.*True.*False"),
    ("bind-string-batch", lambda: gc.compile(_bind_loss(None), bind="no"), r"bind='no'.*True.*False"),
    ("bind-load-string", lambda: gc.load(_saved_program(), bind="lazy"), r"bind='lazy'.*True.*False"),
    ("bind-run-unbound", lambda: _run_unbound(), r"bind=False.*prog\.bind\(\)"),
    ("bind-run-unbound-batch", lambda: _run_unbound(None), r"bind=False.*prog\.bind\(\)"),
]
