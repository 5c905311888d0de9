"""A team's own threshold, added through pytest-mlflowdb's hook.

Override it like a built-in: ``--mlflowdb-set team_max_active_experiments=1000``.
"""

from pytest_mlflowdb import Threshold


def pytest_mlflowdb_thresholds(config):
    return [Threshold("team_max_active_experiments", "500", "count",
                      "active experiments before we ask teams to archive old ones",
                      ("team.active_experiments",))]
