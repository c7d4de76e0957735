"""The record store: an output directory's `results/` and `errors/` datasets and what keeps them whole.

Every (row, step, model) ends as one record, keyed by the content hash of its request. A shard
task journals each record the moment it lands (`RecordJournal`), then writes one part per dataset
atomically (`write_part`); a killed run's journals become parts at the next start
(`recover_journals`). The `DoneIndex` says what is already recorded, so a rerun sends only what is
missing; `compact_outputs` keeps one record per (row, step, model); `output_lock` lets one run at
a time write a directory.
"""

from tasks.store.compaction import compact_outputs
from tasks.store.done_index import DoneIndex, load_done_index
from tasks.store.journal import RecordJournal, journal_path, recover_journals
from tasks.store.output_lock import output_lock
from tasks.store.record_store import read_records
from tasks.store.write_part import write_part

__all__ = [
    "DoneIndex",
    "RecordJournal",
    "compact_outputs",
    "journal_path",
    "load_done_index",
    "output_lock",
    "read_records",
    "recover_journals",
    "write_part",
]
