"""The input dataset: opened from a file, folder, glob or URI, checked, and read shard by shard.

Checks run over the whole dataset before any request (ids unique and present, prompt columns not
empty), batch by batch so memory stays bounded; `blank_rows` is the one rule of an empty prompt.
"""

from tasks.inputs.dataset import (
    blank_rows,
    check_columns,
    check_ids,
    check_prompt_values,
    iter_shards,
    open_dataset,
)

__all__ = ["blank_rows", "check_columns", "check_ids", "check_prompt_values", "iter_shards", "open_dataset"]
