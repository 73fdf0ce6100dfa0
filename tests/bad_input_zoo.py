"""Bad inputs of the initialisers and the published architectures (concatenated into the catalogue)."""

import graphc as gc
from graphc.ops.source import NormalInit

CASES_ZOO = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("normal-init-negative-std", lambda: NormalInit(-1.0), r"NormalInit\(std=-1.0.*finite std >= 0"),
    ("normal-init-nan-mean", lambda: NormalInit(0.1, mean=float("nan")), r"NormalInit.*finite mean"),
    ("normal-init-string-std", lambda: NormalInit("0.1"), r"NormalInit\(std='0.1'"),
]
