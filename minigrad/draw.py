"""draw_dot: a picture of the autograd graph behind a tensor, as micrograd's draw_dot.

    loss = model(idx, targets)[1]
    minigrad.draw_dot(loss, params=dict(model.named_parameters()), path="graph.svg")

Every tensor is a box (record) with its name when it has one, its shape and dtype, whether it
requires grad and what its .grad holds; 1-element tensors also show their value, as micrograd's
boxes do. Every op is a small oval labelled with its Function's class name (Unary ops add which
one: "Unary tanh"), between its inputs and its output: input -> op -> output. The walk follows
`tensor._ctx` (the Function that made it) and `Function.parents` (its input tensors); that chain
is the whole graph autograd will walk backward.

The result is Graphviz DOT text, made here in pure Python (no `graphviz` package). Rendering to
SVG or PNG runs Graphviz's `dot` program when it is installed (`apt install graphviz`,
`brew install graphviz`); without it, paste the DOT text into any Graphviz viewer.

What it deliberately does not do: draw a whole GPT readably. A forward pass is thousands of
nodes, so only the `max_nodes` tensors nearest the root are drawn (breadth-first) and one note
says how many were left out; pass max_nodes=None to draw everything. Node ids (t0, t1, ... in
breadth-first order from the root) and line order depend only on the graph, never on memory
addresses, so the same computation gives the same text on every run.
"""
from __future__ import annotations

import shutil
import subprocess
from collections import deque
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

from .tensor import Tensor

RENDERED = ("svg", "png")          # formats that need Graphviz's `dot` program
FORMATS = ("dot",) + RENDERED      # "dot" writes (or just returns) the DOT text itself
RANKDIRS = ("LR", "TB", "RL", "BT")
DEFAULT_MAX_NODES = 250            # a few-layer GPT forward fits (~25 tensors a Block); deeper is cut


def _escape(text: str) -> str:
    """Escape what a record label treats as structure ({ } | < >) and what ends a DOT string."""
    for ch in "\\\"{}|<>":
        text = text.replace(ch, "\\" + ch)
    return text


def _quote(text: str) -> str:
    """Escape what ends a DOT string in a plain (non-record) label."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _scalar(t: Tensor) -> str:
    """The value of a 1-element tensor, as micrograd prints its Values (4 decimals)."""
    value = t.numpy().reshape(-1)[0].item()
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _tensor_label(t: Tensor, name: Optional[str], vertical: bool) -> str:
    """A record label: [name |] shape dtype | [data |] requires_grad, .grad."""
    fields = [name] if name else []
    fields.append(f"{t.shape} {t.dtype}")
    if t.numel() == 1:
        fields.append(f"data {_scalar(t)}")
    grad = "None" if t.grad is None else _scalar(t.grad) if t.grad.numel() == 1 else "set"
    fields.append(f"requires_grad={t.requires_grad}, .grad {grad}")
    body = " | ".join(_escape(f) for f in fields)
    # with rankdir LR a record's fields sit side by side unless wrapped in braces, with TB the
    # other way round: wrap so the fields are always stacked top to bottom, like a card
    return body if vertical else "{ " + body + " }"


def _op_label(fn) -> str:
    """The Function's class name, plus which unary op when it still knows (backward without
    retain_graph frees a Function's state, `op` included, and keeps only its parents)."""
    op = fn.__dict__.get("op")
    return f"{type(fn).__name__} {op}" if isinstance(op, str) else type(fn).__name__


def _names_by_identity(params) -> dict:
    """id(tensor) -> name, from a mapping name -> tensor or (name, tensor) pairs."""
    if params is None:
        return {}
    if not isinstance(params, Iterable):
        raise TypeError(f"draw_dot: params must be a mapping name -> Tensor (e.g. "
                        f"dict(model.named_parameters())), got {type(params).__name__}")
    items = params.items() if isinstance(params, Mapping) else params
    names = {}
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Tensor)):
            raise TypeError(f"draw_dot: params must map names to Tensors, got the entry {item!r:.80}")
        names.setdefault(id(item[1]), str(item[0]))   # a tied weight keeps its first name
    return names


def _walk(root: Tensor) -> list:
    """Every tensor reachable from root through _ctx.parents, breadth-first, each once.

    Iterative with a queue (a deep graph would overflow Python's recursion limit), and in an
    order fixed by the graph alone: root, then each op's inputs in argument order, and so on.
    """
    order, seen, queue = [], {id(root)}, deque([root])
    while queue:
        t = queue.popleft()
        order.append(t)
        if t._ctx is not None:
            for parent in t._ctx.parents:
                if id(parent) not in seen:
                    seen.add(id(parent))
                    queue.append(parent)
    return order


def _check_args(root, format, path, rankdir, max_nodes) -> Optional[str]:
    """Validate the arguments; return the output format (None: only return the DOT text)."""
    if not isinstance(root, Tensor):
        raise TypeError(f"draw_dot: expected a minigrad Tensor (e.g. a loss), got {type(root).__name__}")
    if rankdir not in RANKDIRS:
        raise ValueError(f"draw_dot: rankdir must be one of {RANKDIRS}, got {rankdir!r}")
    if max_nodes is not None and (isinstance(max_nodes, bool) or not isinstance(max_nodes, int)
                                  or max_nodes < 1):
        raise ValueError(f"draw_dot: max_nodes must be a positive int or None, got {max_nodes!r}")
    if format is None and path is not None:
        suffix = Path(path).suffix.lower().lstrip(".")
        format = "dot" if suffix == "gv" else suffix
        if format not in FORMATS:
            raise ValueError(f"draw_dot: cannot tell the format from the path {str(path)!r}: "
                             f"end it with .svg, .png or .dot, or pass format= one of {FORMATS}")
    if format is not None and format not in FORMATS:
        raise ValueError(f"draw_dot: unknown format {format!r}; expected one of {FORMATS}")
    if format in RENDERED and path is None:
        raise ValueError(f"draw_dot: format={format!r} needs path= (the file to write)")
    return format


def _render(source: str, format: str, path: Union[str, Path]) -> None:
    """Run Graphviz's `dot -T<format> -o <path>` with the DOT text on its standard input."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            f"draw_dot: rendering {format} needs Graphviz's `dot` program, which is not on PATH. "
            "Install Graphviz (apt install graphviz, brew install graphviz, conda install graphviz) "
            "or call draw_dot without format/path and use the DOT text it returns")
    done = subprocess.run([dot, f"-T{format}", "-o", str(path)], input=source.encode(),
                          capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"draw_dot: `dot -T{format}` failed (exit {done.returncode}): "
                           f"{done.stderr.decode(errors='replace').strip()}")


def draw_dot(root: Tensor, *, params: Union[Mapping[str, Tensor], Iterable, None] = None,
             format: Optional[str] = None, path: Union[str, Path, None] = None, rankdir: str = "LR",
             max_nodes: Optional[int] = DEFAULT_MAX_NODES) -> str:
    """The autograd graph that produced `root`, as Graphviz DOT text (returned in every case).

    params: names for tensors, matched by identity: usually dict(model.named_parameters())
        (the pairs themselves work too). Any tensor may be named, as micrograd's `label`.
    format: "dot", "svg" or "png"; by default taken from path's suffix (.dot/.gv, .svg, .png).
        "svg" and "png" run Graphviz's `dot` to write `path`; "dot" writes the text to `path`.
    rankdir: "LR" (inputs on the left, root on the right, as micrograd), "TB", "RL" or "BT".
    max_nodes: how many tensor boxes to draw at most (each with the op that made it), nearest
        the root first; the rest are summarised in one note node. None draws every tensor.
    """
    format = _check_args(root, format, path, rankdir, max_nodes)
    names = _names_by_identity(params)
    tensors = _walk(root)
    shown = tensors if max_nodes is None else tensors[:max_nodes]
    ids = {id(t): f"t{i}" for i, t in enumerate(shown)}
    vertical = rankdir in ("LR", "RL")
    lines = [f"// autograd graph of a {root.shape} {root.dtype} tensor, made by minigrad.draw_dot",
             "digraph minigrad {",
             f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=10];']
    cut_ops = []                       # op nodes that have an input we did not draw
    for t in shown:
        tid, attrs = ids[id(t)], ""
        if t._ctx is None and t.requires_grad:   # a leaf that training updates
            attrs = ', style=filled, fillcolor="#dbeafe"'
        label = _tensor_label(t, names.get(id(t)), vertical)
        lines.append(f'  {tid} [shape=record, label="{label}"{attrs}];')
        fn = t._ctx
        if fn is None:
            continue
        dashed = ", style=dashed" if fn.freed else ""   # freed by backward: only the links remain
        lines.append(f'  {tid}_op [shape=ellipse, label="{_quote(_op_label(fn))}", '
                     f'fontsize=9, height=0.3{dashed}];')
        for parent in fn.parents:              # in argument order; x * x gives two edges
            if id(parent) in ids:
                lines.append(f"  {ids[id(parent)]} -> {tid}_op;")
            elif not cut_ops or cut_ops[-1] != tid:
                cut_ops.append(tid)
        lines.append(f"  {tid}_op -> {tid};")
    hidden = len(tensors) - len(shown)
    if hidden:
        hidden_ops = sum(t._ctx is not None for t in tensors[len(shown):])
        note = (f"... {hidden} more tensors and {hidden_ops} more ops not drawn (max_nodes="
                f"{max_nodes}); pass max_nodes=None to draw all {len(tensors)}")
        lines.append(f'  more [shape=note, label="{_quote(note)}", fontcolor=gray30];')
        lines.extend(f"  more -> {tid}_op [style=dashed, color=gray50];" for tid in cut_ops)
    lines.append("}")
    source = "\n".join(lines) + "\n"
    if format == "dot" and path is not None:
        Path(path).write_text(source, encoding="utf-8")
    elif format in RENDERED:
        _render(source, format, path)
    return source
