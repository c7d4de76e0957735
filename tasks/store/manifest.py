"""The manifest of an output directory: its owner, its last run, and the spec it was written with.

`manifest.json` sits next to the records (on disk or on the object store); `byokflow
retry-errors` and the evaluation report read the spec back from it.
"""

from __future__ import annotations

import json

from schemas.errors import SpecError
from schemas.spec import PipelineSpec
from schemas.spec_file import spec_from_dict
from tasks.store.location import output_path, store_location

MANIFEST = "manifest.json"


def spec_from_manifest(output_dir: str) -> PipelineSpec:
    """The spec recorded in the manifest of `output_dir` (a local path or URI), pointed at it."""
    where = output_path(str(output_dir))
    location = store_location(where)
    path = location.path(MANIFEST) if location.local else f"{location.name}/{MANIFEST}"
    text = location.read_text(MANIFEST)
    if text is None:
        raise SpecError(f"{path}: cannot read the manifest; is this an output directory?")
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    spec = spec_from_dict(manifest.get("spec") or {}, source=f"{path} (spec)")
    return spec.model_copy(update={"output": spec.output.model_copy(update={"path": where})})
