"""The declaration of the area of ``checks/security.py``: its options."""

from __future__ import annotations

from typing import Any

from pytest_mlflowdb.config.declare import Area, Option


def parse_app_role(raw: Any) -> str | None:
    """``--mlflowdb-app-role``: the role MLflow connects as (any PostgreSQL role name)."""
    if raw is None:
        return None
    name = str(raw).strip()
    if not name:
        raise ValueError("empty role name (give the role MLflow connects as, or leave the "
                         "option out to use the owner of MLflow's tables)")
    if "\x00" in name or len(name.encode("utf-8")) > 63:
        raise ValueError("not a PostgreSQL role name (at most 63 bytes, no NUL)")
    return name


OPTIONS = (
    Option("app_role", "--mlflowdb-app-role", "mlflowdb_app_role",
           "the role MLflow connects as, judged by the security checks (default: the "
           "owner of MLflow's tables)", "ROLE",
           parse=parse_app_role),
)

AREA = Area("security", options=OPTIONS)
