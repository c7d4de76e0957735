"""Where an output directory is: a local path, or a URI the store says plainly it cannot write.

The record store writes through the local filesystem (atomic renames, an appendable journal, an
`flock` lock). An output given as a URI of another filesystem (`s3://`, `gs://`, ...) is refused
at preflight with a message naming it, instead of becoming a local folder named `s3:`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from tasks.errors import PipelineError


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
