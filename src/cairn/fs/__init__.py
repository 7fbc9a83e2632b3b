"""``cairn://``: artifact versions as an fsspec filesystem, for pandas, pyarrow, polars, DuckDB and
Hugging Face datasets (``pip install 'cairn-artifacts[data]'``; see docs/fs.md).

fsspec finds this filesystem through its ``fsspec.specs`` entry point, so
``pd.read_parquet("cairn://project/name:latest/train.parquet")`` works without importing cairn.
"""

from cairn._extras import require

require("the cairn:// filesystem", "data", "fsspec")

from cairn.fs._file import CairnFile  # noqa: E402
from cairn.fs._filesystem import CairnFileSystem  # noqa: E402
from cairn.fs._paths import CairnPath, parse_cairn_path  # noqa: E402

__all__ = ["CairnFile", "CairnFileSystem", "CairnPath", "parse_cairn_path"]
