"""Lineage: the graph of runs and versions around one of them, and its layered layout.

Edges point the way data flows: a run *logged* (output) or *wrote* (distributed writer) a version;
a version was *used* (input) by a run; a *base* version was the start of a draft. The graph is
gathered breadth first from the centre, up to ``depth`` hops and ``max_nodes`` nodes, through the
caller's Service (so it holds only what the caller may read).

The layout is a small Sugiyama-style one, enough for a few hundred nodes: cycles broken, layers by
longest path (sources on the left), long edges split by virtual points, layers ordered by the
barycentre heuristic, then coordinates. It is pure: tests and the template use it directly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TypeVar

from cairn.core import RunRecord, VersionRecord
from cairn.errors import NotFoundError, PermissionDeniedError
from cairn.service import Service

MAX_NODES = 300
NODE_W = 180
NODE_H = 44
LAYER_GAP = 230  # from one layer's left edge to the next one's
ROW_GAP = 60
MARGIN = 24


def version_key(v: VersionRecord) -> str:
    return f"version:{v.id}"


def run_key(r: RunRecord) -> str:
    return f"run:{r.entity}/{r.project}/{r.id}"


@dataclass
class Graph:
    runs: dict[str, RunRecord] = field(default_factory=dict)
    versions: dict[str, VersionRecord] = field(default_factory=dict)
    edges: set[tuple[str, str, str]] = field(default_factory=set)  # (source, target, kind)
    truncated: set[str] = field(default_factory=set)  # nodes with neighbours not shown
    center: str = ""

    @property
    def keys(self) -> list[str]:
        return [*self.versions, *self.runs]


Neighbour = tuple[VersionRecord | RunRecord, str, bool]  # (node, edge kind, edge goes out)
T = TypeVar("T")


def _readable(fn: Callable[..., list[T]], *args: str) -> list[T]:
    """A list of lineage neighbours, leaving out what the caller may not read."""
    try:
        return fn(*args)
    except (NotFoundError, PermissionDeniedError):
        return []


def _version_neighbours(
    service: Service, v: VersionRecord, siblings: dict[tuple[str, str, str], list[VersionRecord]]
) -> list[Neighbour]:
    out: list[Neighbour] = []
    for role in ("output", "writer"):
        out += [(r, role, False) for r in _readable(service.version_runs, v.id, role)]
    out += [(r, "input", True) for r in _readable(service.version_runs, v.id, "input")]
    if v.base_version_id:
        bases = _readable(lambda vid: [service.get_version(vid)], v.base_version_id)
        out += [(b, "base", False) for b in bases]
    collection = (v.entity, v.project, v.name)
    if collection not in siblings:
        siblings[collection] = _readable(service.list_versions, *collection)
    out += [(o, "base", True) for o in siblings[collection] if o.base_version_id == v.id]
    return out


def _run_neighbours(service: Service, run: RunRecord) -> list[Neighbour]:
    out: list[Neighbour] = []
    for role in ("input", "output", "writer"):
        found = _readable(service.run_versions, run.entity, run.project, run.id, role)
        out += [(v, role, role != "input") for v in found]
    return out


def gather(
    service: Service, center: VersionRecord | RunRecord, depth: int, max_nodes: int = MAX_NODES
) -> Graph:
    """The lineage graph within ``depth`` hops of ``center``, at most ``max_nodes`` nodes.

    Nodes whose neighbours were not all taken (too far, or too many) are marked truncated."""
    graph = Graph()
    siblings: dict[tuple[str, str, str], list[VersionRecord]] = {}

    def add(node: VersionRecord | RunRecord) -> str:
        if isinstance(node, VersionRecord):
            graph.versions.setdefault(version_key(node), node)
            return version_key(node)
        graph.runs.setdefault(run_key(node), node)
        return run_key(node)

    graph.center = add(center)
    queue: deque[tuple[str, int]] = deque([(graph.center, 0)])
    expanded: set[str] = set()
    while queue:
        key, hops = queue.popleft()
        if key in expanded:
            continue
        if hops >= depth or len(graph.keys) >= max_nodes:
            graph.truncated.add(key)
            continue
        expanded.add(key)
        if key in graph.versions:
            neighbours = _version_neighbours(service, graph.versions[key], siblings)
        else:
            neighbours = _run_neighbours(service, graph.runs[key])
        for node, kind, outgoing in neighbours:
            other = run_key(node) if isinstance(node, RunRecord) else version_key(node)
            if other not in graph.runs and other not in graph.versions:
                if len(graph.keys) >= max_nodes:
                    graph.truncated.add(key)
                    continue
                add(node)
            graph.edges.add((key, other, kind) if outgoing else (other, key, kind))
            if other not in expanded:
                queue.append((other, hops + 1))
    return graph


# -- layout -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placed:
    key: str
    x: float  # left edge
    y: float  # top edge
    layer: int


@dataclass(frozen=True, slots=True)
class Route:
    source: str
    target: str
    kind: str
    path: str  # SVG path data, drawn left to right
    reverse: bool = False  # the arrow points left (the edge closes a cycle)


@dataclass(frozen=True, slots=True)
class Layout:
    nodes: dict[str, Placed]
    routes: list[Route]
    width: float
    height: float


def _acyclic(keys: list[str], edges: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The edges with those that close a cycle turned around (depth-first, in key order)."""
    out: dict[str, list[str]] = {k: [] for k in keys}
    for s, t in edges:
        if s != t:
            out[s].append(t)
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    result: set[tuple[str, str]] = set()
    for root in keys:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(out[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                continue
            if state.get(child) == 1:
                result.add((child, node))  # a back edge: reverse it
            else:
                result.add((node, child))
                if child not in state:
                    state[child] = 1
                    stack.append((child, iter(out[child])))
    return result


def layout(keys: list[str], edges: Iterable[tuple[str, str, str]], sweeps: int = 6) -> Layout:
    """Place ``keys`` in layers (sources left) and route ``edges`` between them."""
    edge_list = sorted(set(edges))
    dag = _acyclic(keys, ((s, t) for s, t, _ in edge_list))
    preds: dict[str, list[str]] = {k: [] for k in keys}
    succs: dict[str, list[str]] = {k: [] for k in keys}
    for s, t in dag:
        preds[t].append(s)
        succs[s].append(t)
    # Longest-path layering, in topological order (Kahn).
    layer = dict.fromkeys(keys, 0)
    indegree = {k: len(preds[k]) for k in keys}
    ready = deque(k for k in keys if indegree[k] == 0)
    while ready:
        k = ready.popleft()
        for t in succs[k]:
            layer[t] = max(layer[t], layer[k] + 1)
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    # Pull sources right, next to what they feed (a dataset sits beside its first user).
    for k in keys:
        if not preds[k] and succs[k]:
            layer[k] = min(layer[t] for t in succs[k]) - 1
    # Virtual points on edges that span several layers, so the ordering sees them.
    chains: dict[tuple[str, str], list[str]] = {}
    up: dict[str, list[str]] = {k: [] for k in keys}
    for s, t in sorted(dag):
        chain = [s]
        for i in range(layer[s] + 1, layer[t]):
            virtual = f"\0{s}\0{t}\0{i}"
            layer[virtual] = i
            up[virtual] = []
            chain.append(virtual)
        chain.append(t)
        for a, b in pairwise(chain):
            up[b].append(a)
        chains[(s, t)] = chain
    down: dict[str, list[str]] = {k: [] for k in up}
    for b, sources in up.items():
        for a in sources:
            down[a].append(b)
    depth = max(layer.values(), default=0) + 1
    layers: list[list[str]] = [[] for _ in range(depth)]
    for k in sorted(up, key=lambda k: (layer[k], k)):
        layers[layer[k]].append(k)
    _order(layers, up, down, sweeps)
    # Coordinates: each layer centred on the tallest.
    tallest = max((len(layer_keys) for layer_keys in layers), default=1)
    pos: dict[str, tuple[float, float]] = {}
    for i, layer_keys in enumerate(layers):
        offset = (tallest - len(layer_keys)) * ROW_GAP / 2
        for j, k in enumerate(layer_keys):
            pos[k] = (MARGIN + i * LAYER_GAP, MARGIN + offset + j * ROW_GAP)
    nodes = {k: Placed(k, *pos[k], layer[k]) for k in keys}
    routes = []
    for s, t, kind in edge_list:
        if s == t:
            continue
        # An edge turned around to break a cycle is drawn left to right, its arrow at the start.
        reverse = (s, t) not in chains
        chain = chains[(t, s)] if reverse else chains[(s, t)]
        routes.append(Route(s, t, kind, _path([pos[k] for k in chain]), reverse))
    width = MARGIN * 2 + (depth - 1) * LAYER_GAP + NODE_W
    height = MARGIN * 2 + (tallest - 1) * ROW_GAP + NODE_H
    return Layout(nodes, routes, width, height)


def _order(
    layers: list[list[str]], up: dict[str, list[str]], down: dict[str, list[str]], sweeps: int
) -> None:
    """Reorder each layer by the mean position of its neighbours, sweeping down then up."""
    for sweep in range(sweeps):
        forward = sweep % 2 == 0
        indices = range(1, len(layers)) if forward else range(len(layers) - 2, -1, -1)
        for i in indices:
            ref = layers[i - 1] if forward else layers[i + 1]
            where = {k: n for n, k in enumerate(ref)}
            links = up if forward else down
            layers[i] = [
                k
                for _, k in sorted(
                    (_barycentre(links[k], where, n), k) for n, k in enumerate(layers[i])
                )
            ]


def _barycentre(near: list[str], where: dict[str, int], n: int) -> tuple[float, int]:
    """The mean position of a node's neighbours in the next layer (its own if it has none)."""
    found = [where[o] for o in near if o in where]
    return (sum(found) / len(found) if found else float(n), n)


def _path(points: list[tuple[float, float]]) -> str:
    """An SVG path, left to right, from the right side of the first box to the left side of
    the last, passing straight through the slots of virtual points, with horizontal tangents."""
    mid = NODE_H / 2
    x, y = points[0]
    stops = [(x + NODE_W, y + mid)]
    for x, y in points[1:-1]:
        stops += [(x, y + mid), (x + NODE_W, y + mid)]
    x, y = points[-1]
    stops.append((x, y + mid))
    d = f"M{stops[0][0]:.0f},{stops[0][1]:.0f}"
    for i in range(1, len(stops)):
        (x1, y1), (x2, y2) = stops[i - 1], stops[i]
        if i % 2 == 0:  # through a virtual slot
            d += f" L{x2:.0f},{y2:.0f}"
            continue
        bend = (x2 - x1) / 2
        d += f" C{x1 + bend:.0f},{y1:.0f} {x2 - bend:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
    return d
