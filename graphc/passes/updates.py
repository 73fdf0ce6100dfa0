"""The nodes that write updates into params, and the storage of the returned values."""

from __future__ import annotations

from typing import Sequence

from graphc.dataflow import Dataflow
from graphc.ir import Node
from graphc.memory.analysis import alias_analysis, old_value_readers
from graphc.ops.elementwise import copy as copy_op


def write_updates(flow: Dataflow, params: Sequence[Node]) -> Dataflow:
    """Turn updates into *writers*: nodes whose kernel writes a param's stored array.

    ``flow.roots`` end with the new values of ``params``, one each. The new value
    is itself the writer — computed in place, ``np.subtract(W, t, out=W)``, with
    no arena copy of it — when its kernel can write over the param
    (:func:`_writes_in_place`); otherwise a ``copy`` writes it. A new value that
    is an updated param, or a view of one, is first copied into the arena: a
    swap ``{a: b, b: a}`` reads both old values before it writes either.

    The schedule runs each writer after every read of the param's old value
    (recomputed reads included). Where that cannot be (in place, ``{a: a + b,
    b: b + a}`` would have each write wait for a read the other write must
    follow), the new value is computed into the arena and copied instead. An
    update ``{w: w}`` writes nothing.
    """
    if not params:
        return flow
    copy = copy_op
    split = len(flow.roots) - len(params)
    outputs, values = flow.roots[:split], flow.roots[split:]
    owner = alias_analysis(flow)
    updated = set(params)
    nodes, args = list(flow.nodes), dict(flow.args)

    def add(like: Node, operand: Node, name: str) -> Node:
        node = flow.instance(like, (operand,), op=copy, name=name)
        nodes.append(node)
        args[node] = (operand,)
        owner[node] = node
        return node

    writer_of: dict[Node, Node] = {}
    in_place: set[Node] = set()
    taken = set(outputs)  # returned, or another param's new value written in place
    for param, value in zip(params, values):
        if value is param:
            continue
        if _writes_in_place(value, param, owner, args, taken):
            writer_of[param] = value
            in_place.add(value)
            taken.add(value)
            continue
        if owner[value] in updated:
            value = add(value, value, f"{value.name}.old")
        writer_of[param] = add(value, value, f"{param.name}.new")
    draft = Dataflow(nodes, args, outputs + list(writer_of.values()), {w: p for p, w in writer_of.items()}, flow.ids)
    readers = old_value_readers(draft, owner)
    reads_of: dict[Node, list[Node]] = {}
    for read_param, nodes_reading in readers.items():
        for node in nodes_reading:
            reads_of.setdefault(node, []).append(read_param)
    users = draft.consumers()
    for param, writer in list(writer_of.items()):
        if writer in in_place and _waits_for_itself(writer, readers[param], users, reads_of, writer_of):
            in_place.discard(writer)
            writer_of[param] = add(writer, writer, f"{param.name}.new")
            users[writer].append(writer_of[param])
    writes = {w: p for p, w in writer_of.items()}
    return Dataflow(nodes, args, outputs + list(writes), writes, flow.ids)


def _writes_in_place(value: Node, param: Node, owner: dict[Node, Node], args: dict[Node, tuple[Node, ...]],
                     taken: set[Node]) -> bool:
    """Whether ``value``'s kernel can write ``param``'s stored array: an elementwise op of the
    param's shape and dtype that owns its result (no view), is not returned nor another
    param's new value (``taken``), and reads the param, if at all, as itself — an
    elementwise kernel may write over an operand it reads element by element, not over
    one it reads through a view."""
    return (
        not value.is_source
        and value.op.elementwise
        and owner[value] is value
        and value.aval == param.aval
        and value not in taken
        and all(a is param or owner[a] is not param for a in args[value])
    )


def _waits_for_itself(writer: Node, old_reads: set[Node], users: dict[Node, list[Node]],
                      reads_of: dict[Node, list[Node]], writer_of: dict[Node, Node]) -> bool:
    """Whether ``writer`` would have to follow one of ``old_reads``, the reads of the old value
    of the param it writes.

    Those reads must run before it; so must every writer whose param a node after
    ``writer`` reads (``reads_of``: node → the params whose old values it reads). A
    walk from ``writer`` along consumers and along those read-before-write edges that
    reaches one of ``old_reads`` is a cycle.
    """
    targets = old_reads - {writer}
    if not targets:
        return False
    seen, stack = {writer}, [writer]
    while stack:
        node = stack.pop()
        following = list(users.get(node, ()))
        following += [writer_of[p] for p in reads_of.get(node, ()) if p in writer_of and writer_of[p] is not node]
        for nxt in following:
            if nxt in targets:
                return True
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def own_outputs(flow: Dataflow) -> Dataflow:
    """Give every returned value storage of its own, written by the kernel that computes it.

    A run returns arrays of its own, outside the arena. An output that is a
    source, a view (it would share its base's storage), a writer (it is the
    param's stored array) or a value returned twice is written by a ``copy``
    placed right after it; every other output's kernel writes the returned array itself.
    """
    copy = copy_op
    owner = alias_analysis(flow)
    position = {n: i for i, n in enumerate(flow.nodes)}
    after: dict[int, list[Node]] = {}
    args = dict(flow.args)
    outputs, seen = [], set()
    for out in flow.outputs:
        if out.is_source or owner[out] is not out or out in seen:
            made = flow.instance(out, (out,), op=copy)
            args[made] = (out,)
            after.setdefault(position[out], []).append(made)
            out = made
        seen.add(out)
        outputs.append(out)
    if not after:
        return flow
    nodes = []
    for i, node in enumerate(flow.nodes):
        nodes.append(node)
        nodes.extend(after.get(i, ()))
    return Dataflow(nodes, args, outputs + list(flow.writes), flow.writes, flow.ids)
