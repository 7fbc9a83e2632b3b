"""Tables and JSON objects round-trip through an artifact, including pandas DataFrames."""

from __future__ import annotations

import json
import math
import pathlib

import pandas as pd  # a dev dependency: its absence is an error, not a silent skip
import pytest

import cairn


def test_dataframe_round_trip(tmp_path: pathlib.Path) -> None:
    df = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "score": [0.5, float("nan"), 2.25],
            "label": ["cat", "dog", "eel"],
            "ok": [True, False, True],
        }
    )
    art = cairn.Artifact("preds", "eval")
    art.add(cairn.Table(dataframe=df), "predictions")
    with cairn.init(project="tables") as run:
        run.log_artifact(art)

    back = cairn.Api(overrides={"project": "tables"}).artifact("preds:latest").get("predictions")
    assert isinstance(back, cairn.Table)
    assert back.columns == ["id", "score", "label", "ok"]
    got = back.get_dataframe()
    pd.testing.assert_frame_equal(got, df)
    # Stored as a readable file: plain JSON, a missing value as null.
    root = art.download(root=str(tmp_path / "dl"))
    stored = json.loads(pathlib.Path(root, "predictions.table.json").read_text())
    assert stored["columns"] == ["id", "score", "label", "ok"]
    assert stored["data"][1] == [2, None, "dog", False] and stored["nrows"] == 3


def test_table_values_must_be_json(tmp_path: pathlib.Path) -> None:
    table = cairn.Table(columns=["x"], data=[[math.inf]])
    with pytest.raises(ValueError, match="JSON"):
        cairn.Artifact("t", "eval").add(table, "bad")
