"""The shipped schema of MLflow's basic-auth database, per revision of its own migrations
(``data/auth_schemas.json``, made by ``tools/capture_auth_schema.py`` from MLflow's auth
migrations, the way the tracking catalog is made from MLflow's migrations)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from pytest_mlflowdb.catalog.model import Snapshot


@dataclass(frozen=True)
class AuthCatalog:
    mlflow: str
    chain: tuple[str, ...]
    schemas: dict[str, dict]

    @property
    def head(self) -> str:
        return self.chain[-1]

    def schema_at(self, revision: str) -> Snapshot:
        return Snapshot.from_json(self.schemas[revision])


@lru_cache(maxsize=1)
def load_auth_catalog() -> AuthCatalog:
    text = resources.files("pytest_mlflowdb.workload").joinpath(
        "data/auth_schemas.json").read_text()
    document = json.loads(text)
    return AuthCatalog(document["mlflow"], tuple(document["chain"]), document["schemas"])
