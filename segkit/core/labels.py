"""Labels shared by every layer: the placeholder for a missing category, the bucket for rare
ones, and the column-name form of a category value.

Examples
--------
>>> slug(" Mobile App ")
'mobile_app'
"""

from __future__ import annotations

import re

UNKNOWN = "Unknown"


OTHER = "Other"


def slug(value: object) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(value).strip().lower()).strip("_") or "unknown"
