"""Reading back the spec an output directory was written with (for `byokflow retry-errors`)."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.errors import SpecError
from schemas.spec import PipelineSpec
from schemas.spec_file import spec_from_dict


def spec_from_manifest(output_dir: Path) -> PipelineSpec:
    """The spec recorded in `output_dir/manifest.json`, pointed at that directory."""
    path = output_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(
            f"{path}: cannot read the manifest ({exc.strerror}); is this an output directory?"
        ) from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    spec = spec_from_dict(manifest.get("spec") or {}, source=f"{path} (spec)")
    return spec.model_copy(
        update={"output": spec.output.model_copy(update={"path": str(output_dir.resolve())})}
    )
