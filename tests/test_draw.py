"""draw_dot: the DOT text of an autograd graph, and rendering it through Graphviz's `dot`.

The DOT text is parsed back into nodes and edges here and compared with graphs counted by
hand. Graphviz is not installed on CI, so rendering is tested with a fake `dot` program put
first on PATH (it records its command line and writes what it reads); a real `dot`, when one
is installed, is checked too, inside a test that passes without it.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import stat
import sys
from pathlib import Path

import pytest

import minigrad
from minigrad import nn
from minigrad.draw import DEFAULT_MAX_NODES, draw_dot

NODE = re.compile(r'^  (\w+) \[(?:shape=(\w+), )?label="((?:[^"\\]|\\.)*)"(.*)\];$')
EDGE = re.compile(r"^  (\w+) -> (\w+)(?: \[.*\])?;$")


def parse(source: str):
    """(nodes, edges): nodes maps a DOT id to (shape, label, other attributes); edges is a list
    of (from, to) in order. Every line between the braces must be a node or an edge."""
    nodes, edges = {}, []
    body = source.split("{", 1)[1].rsplit("}", 1)[0].splitlines()
    for line in body:
        if not line.strip() or line.startswith("  rankdir=") or line.startswith("  node ["):
            continue
        if m := EDGE.match(line):
            edges.append(m.groups()[:2])
        elif m := NODE.match(line):
            assert m.group(1) not in nodes, f"node {m.group(1)} declared twice"
            nodes[m.group(1)] = (m.group(2), m.group(3), m.group(4))
        else:
            raise AssertionError(f"unexpected DOT line: {line!r}")
    return nodes, edges


def short(node) -> str:
    """A node's name for comparisons: a tensor's first record field (its name), an op's label."""
    shape, label, _ = node
    return label.strip("{ ").split(" | ")[0] if shape == "record" else label


def named_edges(source: str):
    nodes, edges = parse(source)
    return sorted((short(nodes[a]), short(nodes[b])) for a, b in edges)


def micrograd_example():
    """micrograd's README example, o = tanh(a*b + c), with every tensor named."""
    a = minigrad.tensor(2.0, requires_grad=True)
    b = minigrad.tensor(-3.0, requires_grad=True)
    c = minigrad.tensor(10.0, requires_grad=True)
    e = a * b
    d = e + c
    o = d.tanh()
    return o, dict(a=a, b=b, c=c, e=e, d=d, o=o)


# ---------------------------------------------------------------------------- the graph
def test_micrograd_example_has_exactly_the_nodes_and_edges_counted_by_hand():
    o, names = micrograd_example()
    source = draw_dot(o, params=names)
    nodes, edges = parse(source)
    records = sorted(short(n) for n in nodes.values() if n[0] == "record")
    ops = sorted(short(n) for n in nodes.values() if n[0] == "ellipse")
    assert records == ["a", "b", "c", "d", "e", "o"]
    assert ops == ["Add", "Mul", "Unary tanh"]
    assert len(nodes) == 9 and len(edges) == 8
    assert named_edges(source) == sorted([
        ("a", "Mul"), ("b", "Mul"), ("Mul", "e"),
        ("e", "Add"), ("c", "Add"), ("Add", "d"),
        ("d", "Unary tanh"), ("Unary tanh", "o")])
    # values, as micrograd's boxes show them (tanh(4) = 0.99933)
    assert "d | () float32 | data 4.0000 |" in source
    assert "o | () float32 | data 0.9993 |" in source


def test_after_backward_the_freed_graph_still_draws_with_gradients():
    o, names = micrograd_example()
    before = named_edges(draw_dot(o, params=names))
    o.backward()                                   # no retain_graph: every Function is freed
    source = draw_dot(o, params=names)
    nodes, _ = parse(source)
    # a freed Function forgets its saved state (`op` included) but keeps its parents
    after = named_edges(source)
    assert after == sorted((x.replace("Unary tanh", "Unary"), y.replace("Unary tanh", "Unary"))
                           for x, y in before)
    ops = [n for n in nodes.values() if n[0] == "ellipse"]
    assert len(ops) == 3 and all("style=dashed" in n[2] for n in ops)
    # do/dd = 1 - tanh(4)^2; do/da = do/dd * b, do/db = do/dd * a, do/dc = do/dd
    dd = 1.0 - math.tanh(4.0) ** 2
    assert f"a | () float32 | data 2.0000 | requires_grad=True, .grad {dd * -3.0:.4f}" in source
    assert f"b | () float32 | data -3.0000 | requires_grad=True, .grad {dd * 2.0:.4f}" in source
    assert f"c | () float32 | data 10.0000 | requires_grad=True, .grad {dd:.4f}" in source
    assert "e | () float32 | data -6.0000 | requires_grad=True, .grad None" in source
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        o.backward()                               # drawing did not bring the graph back


def test_shapes_dtypes_and_parameter_names_appear():
    minigrad.manual_seed(0)
    layer = nn.Linear(3, 2, dtype="float64")
    x = minigrad.randn(5, 3, dtype="float64")
    y = layer(x).relu().sum()
    # the pairs of named_parameters() work as well as a dict
    source = draw_dot(y, params=layer.named_parameters(), rankdir="TB")
    nodes, _ = parse(source)
    labels = [n[1] for n in nodes.values() if n[0] == "record"]
    assert "{ weight | (2, 3) float64 | requires_grad=True, .grad None }" in labels
    assert "{ bias | (2,) float64 | requires_grad=True, .grad None }" in labels
    assert "{ (5, 3) float64 | requires_grad=False, .grad None }" in labels    # the input
    assert any(lab.startswith("{ (5, 2) float64 |") for lab in labels)       # layer output
    filled = sorted(short(n) for n in nodes.values() if "fillcolor" in n[2])
    assert filled == ["bias", "weight"]           # the leaves that training updates
    assert "rankdir=TB;" in source


def test_an_input_used_twice_gives_two_edges_and_names_are_escaped():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    source = draw_dot(y, params={"x{0}|<in>": x})
    assert named_edges(source).count(("x\\{0\\}\\|\\<in\\>", "Mul")) == 2


def test_the_same_computation_draws_the_same_text_every_time():
    def build():
        minigrad.manual_seed(1)
        w = nn.Parameter(minigrad.randn(4, 4))
        h = minigrad.randn(2, 4)
        for _ in range(3):
            h = (h @ w).tanh() + h
        return h.mean(), w

    (root1, w1), (root2, w2) = build(), build()
    first = draw_dot(root1, params={"w": w1})
    assert first == draw_dot(root1, params={"w": w1})
    assert first == draw_dot(root2, params={"w": w2})   # other objects, other addresses
    assert not re.search(r"0x[0-9a-f]+|\d{9,}", first)  # no id() or address leaks in
    nodes, _ = parse(first)
    assert list(nodes)[0] == "t0" and nodes["t0"][1].startswith("() float32 | data ")


def test_a_deep_chain_draws_without_recursion():
    depth = max(5000, sys.getrecursionlimit() + 1000)
    x = minigrad.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(depth):
        y = y + 1.0
    nodes, edges = parse(draw_dot(y, max_nodes=None))
    assert sum(n[0] == "record" for n in nodes.values()) == depth + 1
    assert sum(n[0] == "ellipse" for n in nodes.values()) == depth
    assert len(edges) == 2 * depth                  # t_i+1 -> Add -> t_i
    assert f"t{depth}" in nodes and f"t{depth}_op" not in nodes   # the leaf made by no op


def test_the_node_cap_keeps_the_nearest_tensors_and_says_what_it_left_out():
    x = minigrad.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(10):                             # 11 tensors, 10 ops
        y = y * 2.0
    nodes, edges = parse(draw_dot(y, max_nodes=3))
    assert sorted(nodes) == ["more", "t0", "t0_op", "t1", "t1_op", "t2", "t2_op"]
    assert nodes["more"][0] == "note"
    assert "8 more tensors and 7 more ops not drawn (max_nodes=3)" in nodes["more"][1]
    assert "max_nodes=None to draw all 11" in nodes["more"][1]
    assert edges == [("t1", "t0_op"), ("t0_op", "t0"), ("t2", "t1_op"), ("t1_op", "t1"),
                     ("t2_op", "t2"), ("more", "t2_op")]

    long = x
    for _ in range(DEFAULT_MAX_NODES + 50):
        long = long * 1.0
    nodes, _ = parse(draw_dot(long))
    assert sum(n[0] == "record" for n in nodes.values()) == DEFAULT_MAX_NODES
    assert "51 more tensors" in nodes["more"][1]
    assert "more" not in parse(draw_dot(y, max_nodes=11))[0]     # exactly fits: no note


# ---------------------------------------------------------------------------- bad input
def test_bad_input_gets_a_clear_error():
    x = minigrad.tensor([1.0], requires_grad=True) * 2.0
    with pytest.raises(TypeError, match="expected a minigrad Tensor.*ndarray"):
        draw_dot(x.numpy())
    with pytest.raises(ValueError, match="unknown format 'jpg'"):
        draw_dot(x, format="jpg", path="g.jpg")
    with pytest.raises(ValueError, match="cannot tell the format.*graph.pdf"):
        draw_dot(x, path="graph.pdf")
    with pytest.raises(ValueError, match="needs path="):
        draw_dot(x, format="svg")
    with pytest.raises(ValueError, match="rankdir"):
        draw_dot(x, rankdir="XY")
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="max_nodes"):
            draw_dot(x, max_nodes=bad)
    with pytest.raises(TypeError, match="map names to Tensors"):
        draw_dot(x, params={"w": [1.0]})
    with pytest.raises(TypeError, match="params must be a mapping"):
        draw_dot(x, params=3)


# ---------------------------------------------------------------------------- rendering
FAKE_DOT = """#!/bin/sh
# a stand-in for Graphviz's dot: record the arguments, copy standard input to the -o file
printf '%s\\n' "$@" > "$(dirname "$0")/argv.txt"
out=""; prev=""
for a in "$@"; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done
cat > "$out"
"""


def fake_dot(folder: Path, script: str = FAKE_DOT) -> Path:
    folder.mkdir()
    dot = folder / "dot"
    dot.write_text(script)
    dot.chmod(dot.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_rendering_runs_dot_with_the_format_and_path(tmp_path, monkeypatch, fmt):
    bin_dir = fake_dot(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    o, names = micrograd_example()
    out = tmp_path / f"graph.{fmt}"
    source = draw_dot(o, params=names, path=out)          # the format comes from the suffix
    assert (bin_dir / "argv.txt").read_text().splitlines() == [f"-T{fmt}", "-o", str(out)]
    assert out.read_text() == source                      # dot read the DOT text on stdin

    (bin_dir / "argv.txt").unlink()
    other = tmp_path / "picture"
    assert draw_dot(o, params=names, format=fmt, path=other) == source
    assert (bin_dir / "argv.txt").read_text().splitlines() == [f"-T{fmt}", "-o", str(other)]


def test_a_failing_dot_is_reported_with_its_message(tmp_path, monkeypatch):
    bin_dir = fake_dot(tmp_path / "bin", "#!/bin/sh\necho 'syntax error in line 3' >&2\nexit 2\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    o, _ = micrograd_example()
    with pytest.raises(RuntimeError, match=r"exit 2\): syntax error in line 3"):
        draw_dot(o, path=tmp_path / "g.svg")


def test_without_graphviz_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))               # an empty folder: no dot
    o, _ = micrograd_example()
    with pytest.raises(RuntimeError, match="apt install graphviz, brew install graphviz") as err:
        draw_dot(o, path=tmp_path / "g.svg")
    assert "use the DOT text" in str(err.value)
    assert not (tmp_path / "g.svg").exists()
    # the DOT text itself needs no Graphviz, returned or written to a .dot/.gv file
    for name in ("g.dot", "g.gv"):
        assert draw_dot(o, path=tmp_path / name) == (tmp_path / name).read_text()


def test_dot_text_file_and_real_graphviz_when_installed(tmp_path):
    o, names = micrograd_example()
    source = draw_dot(o, params=names, format="dot", path=tmp_path / "g.txt")
    assert (tmp_path / "g.txt").read_text() == source and source.startswith("// autograd graph")
    if shutil.which("dot"):                               # an extra check where Graphviz exists
        draw_dot(o, params=names, path=tmp_path / "g.svg")
        svg = (tmp_path / "g.svg").read_text()
        assert "<svg" in svg and ">Unary tanh<" in svg and ">a<" in svg
