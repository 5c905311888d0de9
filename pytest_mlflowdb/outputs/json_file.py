"""The JSON report (``.json``): the document as it is, the contract of docs/ARCHITECTURE.md.

Laid out one target and one check to a line: readable with ``grep`` and ``diff``, any JSON
tool reads it the same, and it is written by the json module's C encoder (an indented
document goes through its pure-Python one: a 40-target fleet's report took half a second).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pytest_mlflowdb.outputs import Output


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=False, default=str)


def to_json(document: dict[str, Any]) -> str:
    lines = ["{"]
    for i, (key, value) in enumerate(document.items()):
        comma = "," if i < len(document) - 1 else ""
        if isinstance(value, list) and value:
            lines.append(f"  {_compact(key)}: [")
            lines.extend(f"    {_compact(item)}{',' if j < len(value) - 1 else ''}"
                         for j, item in enumerate(value))
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {_compact(key)}: {_compact(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


class JsonReport(Output):
    name = "json"
    suffixes = (".json",)

    def render(self, document: dict[str, Any]) -> str:
        return to_json(document)

    def wrote(self, head: str) -> bool:
        return bool(re.match(r'\{\s*"version": \d+,\s*"targets": ', head))
