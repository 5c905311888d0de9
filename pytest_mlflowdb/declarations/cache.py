"""The declaration of the area of ``checks/cache.py``: its name only (no threshold, no option)."""

from __future__ import annotations

from ..option_spec import Area

AREA = Area("cache")
