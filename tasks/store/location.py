"""Where an output directory is: a local path, or a URI the store says plainly it cannot write.

The record store writes through the local filesystem (atomic renames, an appendable journal, an
`flock` lock). An output given as a URI of another filesystem (`s3://`, `gs://`, ...) is refused
at preflight with a message naming it, instead of becoming a local folder named `s3:`.

`StoreLocation` is the store's view of an output directory on any pyarrow filesystem: listing,
atomic Parquet writes (a rename on disk, a single PUT on an object store), removal, small text
files. The catalog, record reads, compaction and merging go through it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tasks.errors import PipelineError
from tasks.store.write_part import write_json_atomically, write_part


class OutputLocationError(PipelineError):
    """The output location is not one the record store can write."""


def local_output_dir(path: str) -> str:
    """The absolute local directory of an output path (`file://` URIs included); raise for others."""
    if "://" not in path:
        return str(Path(path).resolve())
    parsed = urlparse(path)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return str(Path(unquote(parsed.path)).resolve())
    raise OutputLocationError(
        f"output {path!r}: the record store writes to a local directory; outputs on {parsed.scheme}:// "
        "are not supported yet (inputs are: any URI pyarrow reads). Write to a local directory and "
        "copy it, e.g. `aws s3 sync out/ s3://bucket/prefix/`"
    )


@dataclass(frozen=True)
class StoreLocation:
    """An output directory on a pyarrow filesystem: the local disk, or an object store by URI."""

    fs: pafs.FileSystem
    root: str

    @property
    def local(self) -> bool:
        """Whether the output is on the local disk (renames are atomic there; on S3 a PUT is)."""
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        """The filesystem path of `parts` under the root."""
        return "/".join([self.root.rstrip("/"), *parts])

    def parquet_files(self, kind: str) -> list[pafs.FileInfo]:
        """The complete Parquet files of a dataset (hidden temporaries left out), sorted by name."""
        selector = pafs.FileSelector(self.path(kind), allow_not_found=True)
        infos = [
            info
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File
            and info.base_name.endswith(".parquet")
            and not info.base_name.startswith(".")
        ]
        return sorted(infos, key=lambda info: info.base_name)

    def write_parquet(self, table: pa.Table, kind: str, name: str) -> str:
        """Write `table` as `kind/name` so that readers never see half of it; its path."""
        if self.local:
            return str(write_part(table, self.path(kind), name))
        final = self.path(kind, name)
        pq.write_table(table, final, filesystem=self.fs, compression="zstd")  # one PUT: whole or absent
        return final

    def delete(self, path: str) -> None:
        """Remove a file (gone already is fine)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(path)

    def read_text(self, name: str) -> str | None:
        """The text of a small file under the root (None when absent)."""
        try:
            with self.fs.open_input_stream(self.path(name)) as stream:
                return bytes(stream.read()).decode("utf-8")
        except (FileNotFoundError, OSError):
            return None

    def write_text(self, name: str, text: str) -> None:
        """Replace a small file under the root in one step."""
        if self.local:
            write_json_atomically(self.path(name), text)
            return
        with self.fs.open_output_stream(self.path(name)) as stream:
            stream.write(text.encode("utf-8"))


def store_location(output: str | Path | StoreLocation) -> StoreLocation:
    """The location of an output directory given as a local path or a filesystem URI."""
    if isinstance(output, StoreLocation):
        return output
    text = str(output)
    if "://" not in text or text.startswith("file://"):
        return StoreLocation(pafs.LocalFileSystem(), local_output_dir(text))
    try:
        filesystem, root = pafs.FileSystem.from_uri(text)
    except (pa.ArrowInvalid, OSError) as exc:
        raise OutputLocationError(f"output {text!r}: no filesystem for this URI ({exc})") from None
    return StoreLocation(filesystem, root)
