"""The JSON report (``.json``): the document as it is, the contract of docs/ARCHITECTURE.md."""

from __future__ import annotations

import json
from typing import Any

from . import Output


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False, default=str) + "\n"


class JsonReport(Output):
    name = "json"
    suffixes = (".json",)

    def render(self, document: dict[str, Any]) -> str:
        return to_json(document)
