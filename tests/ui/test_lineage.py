"""Lineage: the graph gathered through a Service, and its layout."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cairn
from cairn.sdk import current_service
from cairn.service import Service
from cairn.ui._lineage import MAX_NODES, NODE_H, NODE_W, gather, layout, run_key, version_key
from tests.conftest import write


def _log(run: cairn.Run, name: str, type_name: str, content: str) -> cairn.Artifact:
    art = cairn.Artifact(name, type=type_name)
    art.add_file(write(os.path.join(name, "f.txt"), content))
    run.log_artifact(art)
    return art


def test_gather_follows_used_logged_writers_and_base_versions() -> None:
    with cairn.init(project="p", job_type="prepare") as prep:
        _log(prep, "data", "dataset", "one")
    with cairn.init(project="p", job_type="clean") as clean:
        draft = clean.use_artifact("data:v0").new_draft()
        draft.add_file(write("extra.txt", "x"))
        clean.log_artifact(draft)
    with cairn.init(project="p", job_type="train") as train:
        train.use_artifact("data:v1")
        _log(train, "model", "model", "weights")
    for i in range(2):
        with cairn.init(project="p", group="g", job_type="score") as scorer:
            part = cairn.Artifact("scores", type="eval")
            part.add_file(write(f"s{i}.txt", str(i)))
            if i == 0:
                scorer.upsert_artifact(part)
            else:
                scorer.finish_artifact(part)
    svc = current_service()
    entity = svc.default_entity
    model = svc.resolve(entity, "p", "model", "v0")
    data0 = svc.resolve(entity, "p", "data", "v0")
    data1 = svc.resolve(entity, "p", "data", "v1")

    g = gather(svc, model, depth=4)
    runs = {r.job_type: run_key(r) for r in g.runs.values()}
    assert set(runs) == {"prepare", "clean", "train"}
    assert (runs["train"], version_key(model), "output") in g.edges
    assert (version_key(data1), runs["train"], "input") in g.edges
    assert (runs["clean"], version_key(data1), "output") in g.edges
    assert (version_key(data0), version_key(data1), "base") in g.edges
    assert (version_key(data0), runs["clean"], "input") in g.edges

    near = gather(svc, model, depth=1)
    assert set(near.keys) == {version_key(model), runs["train"]}
    assert runs["train"] in near.truncated

    capped = gather(svc, model, depth=10, max_nodes=3)
    assert len(capped.keys) == 3 and capped.truncated

    scores = svc.resolve(entity, "p", "scores", "v0")
    kinds = {
        kind for _, target, kind in gather(svc, scores, 1).edges if target == version_key(scores)
    }
    assert kinds == {"writer", "output"}


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str, str]]]:
    n = draw(st.integers(1, 40))
    keys = [f"n{i}" for i in range(n)]
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=80))
    return keys, [(keys[a], keys[b], "output") for a, b in pairs]


@settings(max_examples=60, deadline=None)
@given(graphs())
def test_layout_places_every_node_apart_and_points_edges_right(
    graph: tuple[list[str], list[tuple[str, str, str]]],
) -> None:
    keys, edges = graph
    placed = layout(keys, edges)
    assert set(placed.nodes) == set(keys)
    spots = {(p.x, p.y) for p in placed.nodes.values()}
    assert len(spots) == len(keys), "two nodes in one place"
    for p in placed.nodes.values():
        assert p.x >= 0 and p.x + NODE_W <= placed.width
        assert p.y >= 0 and p.y + NODE_H <= placed.height
    routes = {(r.source, r.target): r for r in placed.routes}
    assert set(routes) == {(s, t) for s, t, _ in edges if s != t}
    for (s, t), route in routes.items():
        a, b = placed.nodes[s], placed.nodes[t]
        # Edges run left to right; only those closing a cycle are drawn the other way.
        assert (a.layer < b.layer) != route.reverse, (s, t)
        assert route.path.startswith("M")


def test_a_chain_is_drawn_left_to_right_in_one_row() -> None:
    placed = layout(["a", "b", "c"], [("a", "b", "output"), ("b", "c", "input")])
    xs = [placed.nodes[k].x for k in "abc"]
    assert xs == sorted(xs) and len(set(xs)) == 3
    assert len({placed.nodes[k].y for k in "abc"}) == 1


def test_a_few_hundred_nodes_lay_out_in_three_layers() -> None:
    keys = ["data"] + [f"run{i}" for i in range(150)] + [f"model{i}" for i in range(150)]
    edges = [("data", f"run{i}", "input") for i in range(150)]
    edges += [(f"run{i}", f"model{i}", "output") for i in range(150)]
    placed = layout(keys, edges)
    assert placed.nodes["data"].layer == 0 and placed.nodes["model3"].layer == 2
    # Each model sits level with the run that logged it (no crossings in this graph).
    assert all(placed.nodes[f"run{i}"].y == placed.nodes[f"model{i}"].y for i in range(150))


class _CountingService:
    """A Service that counts the calls made through it (and passes each one on)."""

    def __init__(self, inner: Service) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def counted(*args: Any, **kw: Any) -> Any:
            self.calls[name] += 1
            return value(*args, **kw)

        return counted


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_a_dataset_used_by_a_few_hundred_runs_renders(tmp_path: object) -> None:
    """The lineage page of a dataset with 150 users (and their 150 models) stays quick: its work
    is bounded by the nodes it shows (a few Service calls each), whatever else is in the store.

    Counted, not timed: this page once failed a 10 s limit on a busy machine (its wall-clock
    time says more about the machine than about the page; ``make bench`` times things)."""
    from starlette.testclient import TestClient

    from cairn.core._records import FINISHED, RunRecord
    from cairn.service import CommitRequest
    from cairn.ui import LocalUiBackend, create_ui_app

    svc = current_service()
    entity = svc.default_entity
    with cairn.init(project="wide", job_type="prepare") as prep:
        _log(prep, "data", "dataset", "shared")
    data = svc.resolve(entity, "wide", "data", "v0")
    for i in range(150):
        run = svc.start_run(
            RunRecord(f"r{i:03}", entity, "wide", f"train-{i:03}", job_type="train")
        )
        svc.use_version(data.id, run)
        svc.commit(
            CommitRequest(entity, "wide", f"model-{i:03}", "model", changes=[], run_id=run.id)
        )
        svc.finish_run(entity, "wide", run.id, FINISHED, {"i": i})
    counting = _CountingService(svc)
    client = TestClient(create_ui_app(LocalUiBackend(counting), secure_cookies=False))  # type: ignore[arg-type]
    page = client.get(f"/{entity}/wide/artifacts/dataset/data/v0/lineage?depth=2")
    assert page.status_code == 200
    runs = page.text.count('class="node run"')
    versions = page.text.count('class="node version')
    assert runs == 151  # prepare + 150 training runs
    assert runs + versions == MAX_NODES  # the rest is behind the "+" of truncated nodes
    assert "more lineage beyond" in page.text
    calls = sum(counting.calls.values())
    print(f"lineage page of {MAX_NODES} nodes: {calls} Service calls {dict(counting.calls)}")
    assert calls <= 2 * MAX_NODES, counting.calls
