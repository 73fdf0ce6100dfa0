"""Bad input for an op's memory facts: defop(view=..., scratch=...) and a view op's operands.

Cases for the catalogue of tests/test_bad_input.py, in its ``(id, thunk, regex)`` format.
"""

from __future__ import annotations

import numpy as np

import graphc as gc


def _defop(**facts):
    """A custom op with the given memory facts (replacing an earlier definition of the same name)."""
    kernel = facts.pop("kernel", lambda out, x: np.copyto(out, x))
    return gc.defop("bad_input_facts_op", infer=lambda x: x, kernel=kernel, replace=True, **facts)


def _view_of_two_operands():
    pair_view = gc.defop("bad_input_pair_view", infer=lambda x, y: x, kernel=lambda x, y: x[...],
                         view=True, replace=True)
    with gc.Graph("case"):
        x = gc.input("x", shape=(2, 3))
        return pair_view(x, x * 2.0)


CASES_OPFACTS = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("defop-view-not-bool", lambda: _defop(view="yes"), r"defop 'bad_input_facts_op': view must be True or False, got 'yes'"),
    ("defop-scratch-not-callable", lambda: _defop(scratch=[(2, 3)]), r"defop 'bad_input_facts_op': scratch must be callable or None, got list"),
    ("defop-view-with-scratch", lambda: _defop(kernel=lambda x: x[...], view=True, scratch=lambda x: [x]), r"a view op \(view=True\).*cannot be elementwise or have scratch"),
    ("defop-view-elementwise", lambda: _defop(kernel=lambda x: x[...], view=True, elementwise=True), r"a view op \(view=True\).*cannot be elementwise"),
    ("defop-view-two-vjp-rules", lambda: _defop(kernel=lambda x: x[...], view=True, vjp=[None, None]), r"a view op has one operand, but 2 VJP rules are given"),
    ("defop-contiguity-without-view", lambda: _defop(needs_contiguous=True), r"needs_contiguous and copy_kernel describe a view op; pass view=True"),
    ("defop-keeps-contiguous-not-callable", lambda: _defop(kernel=lambda x: x[...], view=True, keeps_contiguous=True), r"keeps_contiguous must be callable or None, got bool"),
    ("defop-index-bound-not-callable", lambda: _defop(index_bound=5), r"defop 'bad_input_facts_op': index_bound must be callable or None, got int"),
    ("view-op-two-operands", _view_of_two_operands, r"bad_input_pair_view: a view op takes one operand.*got 2"),
]
