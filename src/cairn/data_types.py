"""W&B's ``wandb.data_types``: the table types cairn stores in artifacts."""

from cairn.sdk import JoinedTable, PartitionedTable, Table

__all__ = ["JoinedTable", "PartitionedTable", "Table"]
