"""``cairn://``: artifact versions as an fsspec filesystem, for pandas, pyarrow, polars, DuckDB and
Hugging Face datasets (``pip install 'cairn[data]'``; see docs/fs.md).

fsspec finds this filesystem through its ``fsspec.specs`` entry point, so
``pd.read_parquet("cairn://project/name:latest/train.parquet")`` works without importing cairn.
"""

from cairn.fs._file import CairnFile
from cairn.fs._filesystem import CairnFileSystem
from cairn.fs._paths import CairnPath, parse_cairn_path

__all__ = ["CairnFile", "CairnFileSystem", "CairnPath", "parse_cairn_path"]
