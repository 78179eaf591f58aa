"""segkit — customer lifecycle segmentation kit.

The public API is re-exported here as the modules land; see ``__all__``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from segkit.config import load_config
from segkit.errors import (
    AuditFailedError,
    ConfigError,
    DataError,
    ModelFitError,
    SegkitError,
    UpstreamMissingError,
)
from segkit.pipeline import NOTEBOOKS, RunContext, open_run

__all__ = [
    "__version__",
    "load_config",
    "open_run",
    "RunContext",
    "NOTEBOOKS",
    "SegkitError",
    "DataError",
    "ConfigError",
    "UpstreamMissingError",
    "AuditFailedError",
    "ModelFitError",
]
