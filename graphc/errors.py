"""The one error class graphc raises for bad input."""

from __future__ import annotations


class GraphError(ValueError):
    """A graph, a feed or a compile option that graphc cannot accept.

    Raised as early as the fact is known: a shape mismatch when the node is
    built, a wrong feed when ``Program.run`` is called. The message names the
    node, its op and the shapes involved.
    """
