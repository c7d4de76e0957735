"""Where an output directory is: a local path or an `s3://` URI, and how the store writes there.

`StoreLocation` is the store's view of an output directory on a pyarrow filesystem: listing,
atomic Parquet writes (a rename on disk, a single PUT on an object store), removal, small text
files, and where its write-ahead journals live. The catalog, record reads, the journal, the
manifest, compaction and merging all go through it.

Outputs are local directories (`file://` URIs included) or S3 and S3-compatible stores (MinIO,
R2, a test server): the one-run-at-a-time lock needs conditional writes across machines, which
pyarrow's other filesystems do not offer, so an output on `gs://`, `abfs://` and the like is
refused at preflight with a message naming it, never turned into a local folder named `gs:`.
On an object store the journals stay on the local disk of the process that writes them (an
object cannot be appended to), under `BYOKFLOW_STATE_DIR` (default `~/.local/state/byokflow`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from schemas.spec import StorageOptions
from tasks.errors import PipelineError
from tasks.store.write_part import remove_temporaries, write_json_atomically, write_part

JOURNAL_DIR = "journal"
_OBJECT_STORES = ("s3",)


class OutputLocationError(PipelineError):
    """The output location is not one the record store can write."""


def local_output_dir(path: str) -> str:
    """The absolute local directory of a local output path or `file://` URI; raise for others."""
    if "://" not in path:
        return str(Path(path).resolve())
    parsed = urlparse(path)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return str(Path(unquote(parsed.path)).resolve())
    raise OutputLocationError(f"output {path!r} is a {parsed.scheme}:// URI, not a local directory")


def output_path(path: str) -> str:
    """An output path as the run records it: a URI as given, a local path made absolute."""
    return path if "://" in path else str(Path(path).resolve())


def is_local_output(path: str) -> bool:
    """Whether an output path names the local disk (a plain path or a `file://` URI)."""
    return "://" not in path or path.startswith("file://")


def s3_filesystem(options: StorageOptions | None) -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem at the endpoint `options` name, else the environment's.

    Credentials are never given here: the AWS SDK finds them (environment, profiles, roles).
    """
    return pafs.S3FileSystem(
        endpoint_override=_endpoint(options),
        region=options.region if options else None,
        anonymous=options.anonymous if options else False,
    )


def _endpoint(options: StorageOptions | None) -> str | None:
    """The S3 endpoint: the spec's, else the environment's (as the AWS SDKs read it), else AWS."""
    configured = options.endpoint_url if options else None
    return configured or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def state_dir() -> Path:
    """This machine's folder for byokflow's local state (journals of outputs on object stores)."""
    configured = os.environ.get("BYOKFLOW_STATE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "byokflow"


@dataclass(frozen=True)
class StoreLocation:
    """An output directory on a pyarrow filesystem: the local disk, or an object store by URI."""

    fs: pafs.FileSystem
    root: str
    # How the user named it (`s3://bucket/answers`, or the local path): for messages and manifests.
    uri: str = ""
    options: StorageOptions | None = None

    @property
    def name(self) -> str:
        """The location as the user names it."""
        return self.uri or self.root

    @property
    def journal_dir(self) -> Path:
        """Where this process keeps the write-ahead journals of records bound for this location.

        Inside a local output directory; for an object store, a folder of this machine's state
        named after the location, so a rerun on the same machine finds a killed run's journals.
        """
        if self.local:
            return Path(self.root) / JOURNAL_DIR
        # The endpoint too: `s3://x/out` on MinIO and on AWS are two outputs.
        where = f"{_endpoint(self.options) or ''}|{self.name.rstrip('/')}"
        digest = hashlib.sha256(where.encode()).hexdigest()[:16]
        return state_dir() / "journals" / digest

    @property
    def local(self) -> bool:
        """Whether the output is on the local disk (renames are atomic there; on S3 a PUT is)."""
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        """The filesystem path of `parts` under the root."""
        return "/".join([self.root.rstrip("/"), *(part for part in parts if part)])

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
        # One upload of a table already in memory: a failed or killed upload leaves no object.
        pq.write_table(table, final, filesystem=self.fs, compression="zstd")
        return final

    def remove_temporaries(self) -> int:
        """Remove the hidden temporary files of interrupted writes (under the output lock only)."""
        if self.local:
            return remove_temporaries(self.root) if Path(self.root).is_dir() else 0
        removed = 0
        for kind in ("results", "errors"):
            selector = pafs.FileSelector(self.path(kind), allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                if info.base_name.startswith(".") and info.base_name.endswith(".tmp"):
                    self.delete(info.path)
                    removed += 1
        return removed

    def delete(self, path: str) -> None:
        """Remove a file (gone already is fine)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(path)

    def read_text(self, name: str) -> str | None:
        """The text of a small file under the root (None when absent; an error when unreadable)."""
        path = self.path(name)
        try:
            with self.fs.open_input_stream(path) as stream:
                return bytes(stream.read()).decode("utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            # Absent, said another way by some filesystems; anything else (access denied, the store
            # down) must not read as "no manifest": a run would take over another pipeline's output.
            if self.fs.get_file_info(path).type == pafs.FileType.NotFound:
                return None
            raise OutputLocationError(f"output {self.name!r}: cannot read {name} ({exc})") from None

    def write_text(self, name: str, text: str) -> None:
        """Replace a small file under the root in one step."""
        if self.local:
            write_json_atomically(self.path(name), text)
            return
        with self.fs.open_output_stream(self.path(name)) as stream:
            stream.write(text.encode("utf-8"))


def store_location(
    output: str | Path | StoreLocation, options: StorageOptions | None = None
) -> StoreLocation:
    """The location of an output directory given as a local path, a `file://` or an `s3://` URI."""
    if isinstance(output, StoreLocation):
        return output
    text = str(output)
    if is_local_output(text):
        return StoreLocation(pafs.LocalFileSystem(), local_output_dir(text), options=options)
    scheme = urlparse(text).scheme
    if scheme not in _OBJECT_STORES:
        raise OutputLocationError(
            f"output {text!r}: outputs on {scheme}:// are not supported (the record store's lock needs "
            "conditional writes, which byokflow uses on S3); write to a local directory, file://, or "
            "s3:// (any S3-compatible endpoint), and copy from there"
        )
    if options is not None and options.anonymous:
        raise OutputLocationError(f"output {text!r}: storage_options.anonymous is for reading public inputs")
    bucket_and_prefix = text.removeprefix(f"{scheme}://").strip("/")
    if not bucket_and_prefix:
        raise OutputLocationError(f"output {text!r}: name a bucket (and a prefix), e.g. s3://bucket/answers")
    try:
        filesystem = s3_filesystem(options)
    except (pa.ArrowInvalid, OSError) as exc:
        raise OutputLocationError(f"output {text!r}: cannot reach the object store ({exc})") from None
    return StoreLocation(filesystem, bucket_and_prefix, uri=f"s3://{bucket_and_prefix}", options=options)
