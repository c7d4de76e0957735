"""Errors that stop a run before any request is sent, because the input or setup is wrong.

    PipelineError
    ├── InputError        the dataset cannot be read, or a column, id or prompt value is wrong
    ├── TemplateError     a prompt template does not compile or references an unknown name
    ├── CredentialError   a Secret block or environment variable holding a key is missing or empty
    ├── ToolImportError   a local tool's import path names no module, no attribute, or no callable
    ├── OutputBusyError   another run is writing to the same output directory
    ├── OutputOwnedError  the output directory holds another pipeline's records
    └── ReportError       an output directory has nothing to report (tasks/evaluation/report.py)

Provider failures are never raised: they become error records (a key paused beyond `max_pause`
is `KeyPausedError`, a `RateLimitError` the row records as `rate_limited`: tasks/limits/bounded.py).
"""

from __future__ import annotations

from schemas.errors import ByokflowError


class PipelineError(ByokflowError):
    """Base class: the run cannot start or go on; the message says where and why."""


class InputError(PipelineError):
    """The input dataset is unreadable or its columns, ids or prompt values are wrong."""


class TemplateError(PipelineError):
    """A prompt template is invalid or references a name the row does not have."""


class CredentialError(PipelineError):
    """A key's Secret block or environment variable is missing, empty or not a string."""


class ToolImportError(PipelineError):
    """A local tool cannot be loaded: its module, its attribute or a callable is missing."""


class OutputBusyError(PipelineError):
    """Another run is writing to the same output directory."""


class OutputOwnedError(PipelineError):
    """The output directory holds the records of another pipeline."""
