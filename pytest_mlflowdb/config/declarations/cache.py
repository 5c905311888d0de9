"""The declaration of the area of ``checks/cache.py``: its name only (no threshold, no option)."""

from __future__ import annotations

from pytest_mlflowdb.config.declare import Area

AREA = Area("cache")
