"""Which pipeline owns an output directory, so another pipeline never replaces its records.

Records are keyed by (row, step, model): a different pipeline with the same step names, run into
the same directory, would supersede the first one's records and overwrite its manifest. The
manifest names the pipeline that wrote the directory and a fingerprint of its steps; a run of a
pipeline with another name is refused unless it says it continues that pipeline.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from schemas.spec import PipelineSpec
from tasks.errors import OutputOwnedError
from tasks.store.location import StoreLocation, store_location
from tasks.store.manifest import MANIFEST


def steps_fingerprint(spec: PipelineSpec) -> str:
    """A short hash of the pipeline's steps: names, models and everything that defines a request."""
    steps = [step.model_dump(mode="json") for step in spec.steps]
    return hashlib.sha256(json.dumps(steps, sort_keys=True).encode()).hexdigest()[:12]


def owner_of(spec: PipelineSpec) -> dict[str, str]:
    """What the manifest records as the directory's owner."""
    return {"pipeline": spec.name, "steps_fingerprint": steps_fingerprint(spec)}


def recorded_owner(output: str | StoreLocation) -> dict[str, str] | None:
    """The owner an output directory's manifest names (None: no manifest, or an unreadable one)."""
    try:
        manifest: dict[str, Any] = json.loads(store_location(output).read_text(MANIFEST) or "")
    except ValueError:
        return None
    if not isinstance(manifest, dict):
        return None
    owner = manifest.get("owner")
    if isinstance(owner, dict) and isinstance(owner.get("pipeline"), str):
        return {"pipeline": owner["pipeline"], "steps_fingerprint": str(owner.get("steps_fingerprint", "?"))}
    # A manifest written before owners were recorded: its spec names the pipeline.
    name = (manifest.get("spec") or {}).get("name") if isinstance(manifest.get("spec"), dict) else None
    return {"pipeline": name, "steps_fingerprint": "?"} if isinstance(name, str) else None


def check_owner(
    spec: PipelineSpec, continues: str | None = None, location: StoreLocation | None = None
) -> None:
    """Raise OutputOwnedError if another pipeline owns `spec`'s output directory.

    `continues` names the pipeline this one knowingly continues (a renamed pipeline, say).
    """
    owner = recorded_owner(location or store_location(spec.output.path, spec.output.storage_options))
    if owner is None or owner["pipeline"] in (spec.name, continues):
        return
    mine = owner_of(spec)
    raise OutputOwnedError(
        f"output directory {spec.output.path!r} belongs to pipeline {owner['pipeline']!r} (steps "
        f"{owner['steps_fingerprint']}); this is pipeline {spec.name!r} (steps {mine['steps_fingerprint']}). "
        "Its records would be replaced: use another output directory, or, if this pipeline continues "
        f"that one, say so with `--continues {owner['pipeline']}` (flow parameter continues=...)"
    )
