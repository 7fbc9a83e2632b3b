"""The data tools themselves, reading and writing cairn:// on both store modes: pandas, pyarrow
(datasets over a directory), polars, DuckDB and Hugging Face datasets. The bytes each fetches
are counted at the Service: one column of one row group of a big Parquet file is a small
fraction of it (73 MB here, to keep the suite fast)."""

from __future__ import annotations

import io
import os
import pathlib
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import cairn
from cairn.fs import CairnFileSystem
from cairn.testing import CountingService
from tests.fs.conftest import log_files


def log_big(big_parquet: tuple[str, Any]) -> tuple[str, int]:
    path, _ = big_parquet
    art = cairn.Artifact("big", "dataset")
    art.add_file(path, name="data/big.parquet")
    with cairn.init(project="proj") as run:
        run.log_artifact(art)
    return "proj/big:latest/data/big.parquet", os.path.getsize(path)


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def parts() -> list[pa.Table]:
    return [
        pa.table({"k": list(range(i * 100, i * 100 + 100)), "part": [i] * 100}) for i in range(3)
    ]


def log_parts() -> str:
    log_files("parts", {f"data/part-{i}.parquet": parquet_bytes(t) for i, t in enumerate(parts())})
    return "proj/parts:latest/data"


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_reading_a_big_parquet_file_fetches_only_what_is_read(
    counter: CountingService, big_parquet: tuple[str, Any]
) -> None:
    path, size = log_big(big_parquet)
    table = big_parquet[1]
    fs = CairnFileSystem(service=counter, skip_instance_cache=True)  # type: ignore[arg-type]
    counter.reset()
    with fs.open(path) as f:
        meta = pq.ParquetFile(f)
        assert meta.metadata.num_row_groups == 8
        got = meta.read_row_group(0, columns=["b"])
    assert got.column("b").equals(table.column("b").slice(0, 250_000))
    # One column chunk is 2 MB of the 73 MB; with the footer and one block of read-ahead:
    assert counter.bytes_read < size * 0.06, counter.bytes_read
    assert counter.downloads == 0

    # pandas and DuckDB, given one column of four, fetch about a quarter of the file.
    options = {"service": counter, "skip_instance_cache": True}
    counter.reset()
    df = pd.read_parquet(f"cairn://{path}", columns=["c"], storage_options=options)
    assert len(df) == 2_000_000 and int(df["c"].sum()) == pc.sum(table["c"]).as_py()
    assert counter.bytes_read < size * 0.35, counter.bytes_read
    counter.reset()
    con = duckdb.connect()
    con.register_filesystem(fs)
    rows = con.sql(f"SELECT sum(d) FROM read_parquet('cairn://{path}')").fetchall()
    assert int(rows[0][0]) == pc.sum(table["d"]).as_py()
    assert counter.bytes_read < size * 0.35, counter.bytes_read


def test_pandas_csv(fs: CairnFileSystem) -> None:
    log_files("tables", {"t.csv": "x,y\n1,a\n2,b\n"})
    df = pd.read_csv("cairn://proj/tables:latest/t.csv")
    assert df.to_dict("list") == {"x": [1, 2], "y": ["a", "b"]}


def test_pyarrow_dataset_over_a_directory(fs: CairnFileSystem) -> None:
    root = log_parts()
    dataset = pads.dataset(root, filesystem=fs, format="parquet")
    assert sorted(os.path.basename(f) for f in dataset.files) == [
        f"part-{i}.parquet" for i in range(3)
    ]
    table = dataset.to_table(filter=pads.field("part") == 1)
    assert table.num_rows == 100 and table.column("k").to_pylist() == list(range(100, 200))


def test_polars(fs: CairnFileSystem) -> None:
    root = log_parts()
    with fs.open(f"{root}/part-2.parquet") as f:
        assert pl.scan_parquet(f).select(pl.col("k").sum()).collect().item() == sum(range(200, 300))
    lazy = pl.scan_pyarrow_dataset(pads.dataset(root, filesystem=fs, format="parquet"))
    assert lazy.filter(pl.col("part") == 0).select(pl.len()).collect().item() == 100


def test_huggingface_datasets(fs: CairnFileSystem, tmp_path: pathlib.Path) -> None:
    datasets = pytest.importorskip("datasets")
    root = log_parts()
    ds = datasets.load_dataset(
        "parquet",
        data_files=f"cairn://{root}/*.parquet",
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    assert ds.num_rows == 300
    assert sorted(ds["k"]) == list(range(300))
