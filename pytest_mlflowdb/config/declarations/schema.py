"""The declaration of the area of ``checks/schema.py``: its name only (no threshold, no option)."""

from __future__ import annotations

from pytest_mlflowdb.config.declare import Area

AREA = Area("schema")
