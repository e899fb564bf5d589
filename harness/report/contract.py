"""The JSON contract of a Report: `render_json` (report.to_dict() as JSON) and `json_safe`, the plain-JSON
conversion the other renderers share for nested data.
"""

from __future__ import annotations

import json
import math
from typing import Any

from harness.verdict import Report


def json_safe(value: Any) -> Any:
    """Plain JSON: dict keys sorted, tuples/sets as lists, non-finite floats as strings, other objects as str."""
    if isinstance(value, dict):
        return {str(k): json_safe(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((json_safe(v) for v in value), key=str)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def render_json(report: Report) -> str:
    """report.to_dict() as JSON: top-level keys in contract order, nested keys sorted, indent 2."""
    data = {k: json_safe(v) for k, v in report.to_dict().items()}
    return json.dumps(data, indent=2, allow_nan=False) + "\n"
