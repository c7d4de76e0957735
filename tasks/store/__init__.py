"""The record store: an output directory's `results/` and `errors/` datasets and what keeps them whole.

Every (row, step, model) ends as one record, keyed by the content hash of its request. A shard
task journals each record the moment it lands (`RecordJournal`), then writes one part per dataset
atomically (`write_part`); a killed run's journals become parts at the next start
(`recover_journals`). The `RecordCatalog` knows the row-id range of every row group, so a shard
reads only its own rows' records into a `DoneIndex` (`shard_done_index`) and a rerun sends only
what is missing, in memory bounded by the shard; `compact_outputs` keeps one record per (row,
step, model); `merge_small_files` turns a run's many small parts into a few large files, hiding
the parts it replaces in the same step (`finish_retirement` deletes what a killed merge hid);
`output_lock` lets one run at a time write a directory (`S3Lease`, in `tasks.store.lease`, is the
lock that holds across machines, for outputs on object storage). Everything but the journal and
the lock reads and writes through a `StoreLocation`: a pyarrow filesystem and a root, local or not.
"""

from tasks.store.catalog import RecordCatalog, load_catalog
from tasks.store.compaction import compact_outputs, mark_compacted
from tasks.store.done_index import DoneIndex, shard_done_index
from tasks.store.journal import RecordJournal, journal_path, recover_journals
from tasks.store.location import StoreLocation, store_location
from tasks.store.merge import merge_small_files
from tasks.store.output_lock import output_lock
from tasks.store.record_store import iter_records, read_records
from tasks.store.retired import finish_retirement
from tasks.store.write_part import write_part

__all__ = [
    "DoneIndex",
    "RecordCatalog",
    "RecordJournal",
    "StoreLocation",
    "compact_outputs",
    "finish_retirement",
    "iter_records",
    "journal_path",
    "load_catalog",
    "mark_compacted",
    "merge_small_files",
    "output_lock",
    "read_records",
    "recover_journals",
    "shard_done_index",
    "store_location",
    "write_part",
]
