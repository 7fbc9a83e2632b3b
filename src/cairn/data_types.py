"""W&B's ``wandb.data_types``: the table types cairn stores in artifacts."""

from cairn.sdk._objects import Table
from cairn.sdk._tables import JoinedTable, PartitionedTable

__all__ = ["JoinedTable", "PartitionedTable", "Table"]
