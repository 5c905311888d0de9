"""The built-in areas' declarations, one module per area named like its module of checks:
``AREA = Area(name, thresholds=..., options=...)`` (see
:class:`~pytest_mlflowdb.config.declare.Area`).

Light on purpose: the dormant plugin imports every one at each pytest start to add the
areas' options, so a declaration imports nothing heavy (no psycopg, no probe), and the
parsers its options name live here or in modules as light.
"""
