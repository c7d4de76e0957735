"""The project's one error root, and the errors raised while reading what a user wrote.

Every error byokflow raises on purpose derives from `ByokflowError`, so the CLI can turn any of
them into a message and exit code 2 (and anything else is a bug):

    ByokflowError
    ├── SchemaError                  schemas: what the user wrote
    │   └── SpecError                the spec file cannot be read or does not validate (file and key)
    ├── GatewayError                 gateway: a call failed (tree in gateway/errors.py)
    ├── PipelineError                engine: the run cannot start or go on (tree in tasks/errors.py)
    └── SandboxConfigError           sandbox: its configuration is invalid
"""

from __future__ import annotations


class ByokflowError(Exception):
    """Root of every error byokflow raises on purpose."""


class SchemaError(ByokflowError):
    """Base class of every error in `schemas`."""


class SpecError(SchemaError):
    """The pipeline spec is invalid; the message names the file and the key."""
