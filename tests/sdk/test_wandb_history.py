"""A run's history and summary as in W&B: ``run.log``, ``run.summary``, the public
``Run.summary``/``history()``/``scan_history()``, W&B's encoding of logged values, and tables
logged with ``run.log`` (a ``run_table`` artifact). Each test runs on the embedded store and a
server."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import cairn
from cairn.errors import UsageError, ValidationError
from cairn.sdk import current_service


def test_log_makes_history_rows_and_the_summary_holds_the_last_values() -> None:
    with cairn.init(project="h") as run:
        for i in range(5):
            run.log({"loss": 1.0 / (i + 1), "epoch": i})
        assert run.summary["loss"] == pytest.approx(0.2) and run.summary.epoch == 4
        assert run.step == 5
        path = run.path
    api_run = cairn.Api().run(path)
    frame = api_run.history()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["_step"]) == [0, 1, 2, 3, 4]
    assert list(frame["epoch"]) == [0, 1, 2, 3, 4]
    assert {"_timestamp", "_runtime", "loss"} <= set(frame.columns)
    assert (frame["_runtime"] >= 0).all() and (frame["_timestamp"] > 0).all()
    rows = api_run.history(pandas=False)
    assert isinstance(rows, list) and rows[2]["loss"] == pytest.approx(1 / 3)
    summary = api_run.summary
    assert summary["loss"] == pytest.approx(0.2) and summary["epoch"] == 4
    assert summary["_step"] == 4 and "_timestamp" in summary and "_runtime" in summary
    assert api_run.summary_metrics == dict(summary) and isinstance(api_run.summary_metrics, dict)
    assert api_run.lastHistoryStep == 4


def test_history_keys_samples_and_scan_history_in_pages() -> None:
    with cairn.init(project="h") as run:
        for i in range(30):
            row = {"a": i}
            if i % 3 == 0:
                row["b"] = i * 10
            run.log(row)
        path = run.path
    api_run = cairn.Api().run(path)
    only_b = api_run.history(keys=["b"], pandas=False)
    assert only_b == [{"_step": i, "b": i * 10} for i in range(0, 30, 3)]
    sampled = api_run.history(samples=4, pandas=False)
    assert [r["_step"] for r in sampled] == [0, 10, 19, 29]
    scanned = list(api_run.scan_history(page_size=7))
    assert [r["_step"] for r in scanned] == list(range(30))
    assert [r["b"] for r in api_run.scan_history(keys=["b"], page_size=2)] == list(
        range(0, 300, 30)
    )
    window = [r["_step"] for r in api_run.scan_history(min_step=5, max_step=9, page_size=2)]
    assert window == [5, 6, 7, 8]
    assert api_run.history(stream="system", pandas=False) == []


def test_step_and_commit_follow_w_and_b() -> None:
    with cairn.init(project="h") as run:
        run.log({"a": 1}, step=0)
        run.log({"b": 2}, step=0)  # same step: one row
        run.log({"a": 3}, commit=False)  # still step 0
        run.log({"c": 4}, step=2)  # commits step 0, moves to 2
        with pytest.warns(UserWarning, match="behind the current step 2") as warned:
            run.log({"a": 99}, step=1)  # behind: ignored
        assert warned[0].filename == __file__
        run.log({"d": 5})  # step 2 with c, committed
        run.log({"e": 6})  # step 3
        path = run.path
    rows = cairn.Api().run(path).history(pandas=False)
    stripped = [{k: v for k, v in r.items() if k not in ("_timestamp", "_runtime")} for r in rows]
    assert stripped == [
        {"_step": 0, "a": 3, "b": 2},
        {"_step": 2, "c": 4, "d": 5},
        {"_step": 3, "e": 6},
    ]


def test_values_are_encoded_as_w_and_b_encodes_history() -> None:
    big = np.arange(100, dtype=np.float64)
    with cairn.init(project="h") as run:
        run.log(
            {
                "int": 3,
                "flag": True,
                "text": "hi",
                "none": None,
                "nested": {"x": 1, "y": {"z": [1, 2]}},
                "tuple": (1, 2),
                "np_int": np.int64(7),
                "np_bool": np.bool_(True),
                "np_f32_nan": np.float32("nan"),
                "np_f64": np.float64(0.5),
                "one": np.array([[4.0]]),
                "one_nan64": np.array([float("nan")]),  # a float64 element: NaN kept
                "one_nan32": np.array([float("nan")], dtype=np.float32),  # None, as in W&B
                "small": np.array([1, 2, 3]),
                "big": big,
                "nan": float("nan"),
                "inf": float("inf"),
                "ninf": -math.inf,
                "bytes": b"raw",
            }
        )
        run.summary["stats"] = big
        path = run.path
    api_run = cairn.Api().run(path)
    (row,) = api_run.history(pandas=False)
    assert row["int"] == 3 and row["flag"] is True and row["text"] == "hi" and row["none"] is None
    assert row["nested"] == {"x": 1, "y": {"z": [1, 2]}} and row["tuple"] == [1, 2]
    assert row["np_int"] == 7 and type(row["np_int"]) is int and row["np_bool"] is True
    assert row["np_f32_nan"] is None  # W&B turns a numpy NaN scalar into None
    assert row["np_f64"] == 0.5 and row["one"] == 4.0 and row["small"] == [1, 2, 3]
    assert math.isnan(row["nan"]) and row["inf"] == math.inf and row["ninf"] == -math.inf
    assert row["bytes"] == "raw"
    assert math.isnan(row["one_nan64"]) and row["one_nan32"] is None
    hist = row["big"]
    assert hist["_type"] == "histogram" and len(hist["values"]) == 32 and len(hist["bins"]) == 33
    assert sum(hist["values"]) == 100 and hist["bins"][0] == 0.0 and hist["bins"][-1] == 99.0
    summary = api_run.summary
    assert math.isnan(summary["nan"]) and summary["inf"] == math.inf
    stats = summary["stats"]
    assert stats["_type"] == "numpy.ndarray" and stats["min"] == 0.0 and stats["max"] == 99.0
    assert stats["mean"] == pytest.approx(49.5)


def test_summary_set_update_delete_and_the_public_summary_saves() -> None:
    with cairn.init(project="h") as run:
        run.log({"acc": 0.5})
        run.summary["best_acc"] = 0.9
        run.summary.update({"note": "ok", "acc": 0.7})
        del run.summary["note"]
        path = run.path
    api_run = cairn.Api().run(path)
    assert api_run.summary["best_acc"] == 0.9 and api_run.summary["acc"] == 0.7
    assert "note" not in api_run.summary
    api_run.summary["reviewed"] = True
    api_run.summary.update({"score": 3})
    api_run.update()
    again = cairn.Api().run(path).summary
    assert again["reviewed"] is True and again["score"] == 3 and again["best_acc"] == 0.9
    assert [r["acc"] for r in cairn.Api().run(path).history(pandas=False)] == [0.5]


def test_a_resumed_run_goes_on_from_its_last_step_and_keeps_its_summary() -> None:
    with cairn.init(project="h", id="resumable") as run:
        run.log({"loss": 3})
        run.log({"loss": 2})
        run.summary["best"] = 2
    with cairn.init(project="h", id="resumable", resume="must") as run:
        assert run.step == 2 and run.summary["best"] == 2
        run.log({"loss": 1})
        path = run.path
    api_run = cairn.Api().run(path)
    assert [(r["_step"], r["loss"]) for r in api_run.history(pandas=False)] == [
        (0, 3),
        (1, 2),
        (2, 1),
    ]
    assert api_run.summary["loss"] == 1 and api_run.summary["best"] == 2


def test_module_level_log_and_bad_input() -> None:
    with pytest.raises(UsageError, match="init"):
        cairn.log({"a": 1})
    with cairn.init(project="h") as run:
        cairn.log({"a": 1})
        with pytest.raises(ValueError, match="dictionary"):
            run.log([("a", 1)])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="strings"):
            run.log({1: 2})  # type: ignore[dict-item]
        with pytest.raises(TypeError, match="cannot log a object"):
            run.log({"a": object()})
        with pytest.raises(ValueError, match="step"):
            run.log({"a": 1}, step=-1)
        path = run.path
    assert [r["a"] for r in cairn.Api().run(path).history(pandas=False)] == [1]
    entity, project, run_id = path.split("/")
    svc = current_service()
    for rows, summary, match in (
        (["[1]"], None, "JSON object"),
        (['{"a": 1}'], None, "_step"),
        (['{"_step": -1}'], None, "_step"),
        (["{oops"], None, "not valid JSON"),
        ([], "[]", "summary must be a JSON object"),
    ):
        with pytest.raises(ValidationError, match=match):
            svc.log_history(entity, project, run_id, rows, summary)
    assert json.loads(svc.run_summary(entity, project, run_id))["a"] == 1


def test_a_disabled_run_logs_nothing() -> None:
    with cairn.init(project="h", mode="disabled") as run:
        run.log({"a": 1})
        run.summary["b"] = 2
        assert run.summary["b"] == 2


def test_log_of_a_table_makes_a_run_table_artifact() -> None:
    table = cairn.Table(columns=["id", "pred"], data=[[1, "cat"], [2, "dog"]])
    with cairn.init(project="h") as run:
        run.log({"preds": table})
        run.log({"eval/preds": cairn.Table(columns=["x"], data=[[1]])})
        run_id, path = run.id, run.path
    api = cairn.Api()
    artifact = api.artifact(f"h/run-{run_id}-preds:latest")
    assert artifact.type == "run_table"
    assert list(artifact.manifest.entries) == ["preds.table.json"]
    back = artifact.get("preds")
    assert back.columns == ["id", "pred"] and back.data == [[1, "cat"], [2, "dog"]]
    other = api.artifact(f"h/run-{run_id}-eval_preds:latest")
    assert list(other.manifest.entries) == ["eval/preds.table.json"]
    with cairn.init(project="h", id=run_id, resume="must") as run:
        run.log({"frame": pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})})  # a Table, as in W&B
    frame = api.artifact(f"h/run-{run_id}-frame:latest").get("frame")
    assert frame.columns == ["a", "b"] and frame.data == [[1, "x"], [2, "y"]]
    api_run = api.run(path)
    ref = api_run.summary["preds"]
    assert ref["_type"] == "table-file" and ref["path"] == "preds.table.json"
    assert ref["nrows"] == 2 and ref["ncols"] == 2
    assert ref["artifact_path"] == f"wandb-artifact://{artifact.id}/preds.table.json"
    assert [a.name for a in api_run.logged_artifacts()] == [
        f"run-{run_id}-preds:v0",
        f"run-{run_id}-eval_preds:v0",
        f"run-{run_id}-frame:v0",
    ]
    assert api_run.history(pandas=False)[0]["preds"] == ref


def test_module_level_summary_is_the_active_runs() -> None:
    with pytest.raises(UsageError, match="init"):
        cairn.summary["early"] = 1
    assert dict(cairn.summary) == {}
    with cairn.init(project="h") as run:
        cairn.log({"acc": 0.5})
        cairn.summary["best_acc"] = 0.8
        assert cairn.summary is run.summary and cairn.summary["acc"] == 0.5
        path = run.path
    assert cairn.Api().run(path).summary["best_acc"] == 0.8


def test_runs_filtered_and_ordered_by_summary_metrics() -> None:
    """W&B's ``Api.runs(filters={"summary_metrics.acc": ...}, order="-summary_metrics.acc")``."""
    ids = {}
    for name, acc in (("low", 0.5), ("high", 0.93), ("mid", 0.81), ("none", None)):
        with cairn.init(project="sweep", name=name) as run:
            if acc is not None:
                run.log({"acc": acc, "nested": {"f1": acc / 2}})
            ids[name] = run.id
    api = cairn.Api()
    good = api.runs("sweep", filters={"summary_metrics.acc": {"$gt": 0.8}})
    assert sorted(r.name for r in good) == ["high", "mid"]
    best_first = api.runs("sweep", order="-summary_metrics.acc")
    assert [r.name for r in best_first][:3] == ["high", "mid", "low"]
    worst_first = api.runs("sweep", order="+summary_metrics.acc")
    assert [r.name for r in worst_first] == ["low", "mid", "high", "none"]  # missing last
    nested = api.runs("sweep", filters={"summary_metrics.nested.f1": {"$lt": 0.3}})
    assert [r.id for r in nested] == [ids["low"]]
    both = api.runs(
        "sweep",
        filters={"$and": [{"summary_metrics.acc": {"$exists": True}}, {"state": "finished"}]},
    )
    assert len(both) == 3


def test_define_metric_summaries_as_w_and_b() -> None:
    """W&B's guide "Log summary metrics": define_metric(..., summary=...) makes the summary
    hold {"min": ..., "max": ...} (and mean, best with a goal, last, first, none)."""
    losses = [0.9, 0.3, 0.5, float("nan"), 0.4]
    accs = [0.2, 0.6, 0.5, 0.7, 0.65]
    with cairn.init(project="h") as run:
        cairn.define_metric("loss", summary="min")
        cairn.define_metric("loss", summary="max")  # adds to the definition
        run.define_metric("acc", summary="best,mean", goal="maximize")
        run.define_metric("lr", summary="none")
        run.define_metric("eval/*", summary="first,last")
        for loss, acc in zip(losses, accs, strict=True):
            run.log({"loss": loss, "acc": acc, "lr": 0.1, "eval/f1": acc / 2, "plain": loss})
        assert run.summary["loss"] == {"min": 0.3, "max": 0.9}  # NaN is no minimum
        path = run.path
    summary = cairn.Api().run(path).summary
    assert summary["loss"] == {"min": 0.3, "max": 0.9}
    assert summary["acc"] == {"best": 0.7, "mean": pytest.approx(sum(accs) / 5)}
    assert "lr" not in summary
    assert summary["eval/f1"] == {"first": 0.1, "last": 0.325}
    assert summary["plain"] == 0.4 and summary["_step"] == 4  # undefined keys: the last value
    with cairn.init(project="h") as run:
        run.define_metric("loss", summary="min")
        run.define_metric("loss", summary="max", overwrite=True)  # replaces it
        run.log({"loss": 2.0})
        run.log({"loss": 1.0})
        assert run.summary["loss"] == {"max": 2.0}
        with pytest.raises(ValueError, match="summary"):
            run.define_metric("x", summary="median")
        with pytest.raises(ValueError, match="goal"):
            run.define_metric("x", goal="up")


def test_define_metric_step_metric_syncs_the_x_axis() -> None:
    """W&B's "customize log axes": metrics of train/* take train/step as their x axis; a row
    without it gets its last value."""
    with cairn.init(project="h") as run:
        run.define_metric("train/step")
        run.define_metric("train/*", step_metric="train/step")
        run.define_metric("val/loss", step_metric="epoch")
        run.log({"train/step": 10, "train/loss": 0.5})
        run.log({"train/loss": 0.4})  # no train/step: the last one joins the row
        run.log({"epoch": 1})
        run.log({"val/loss": 0.3})
        path = run.path
    rows = cairn.Api().run(path).history(pandas=False)
    assert rows[1]["train/step"] == 10 and rows[1]["train/loss"] == 0.4
    assert rows[3]["epoch"] == 1 and rows[3]["val/loss"] == 0.3
    assert "train/step" not in rows[2]
