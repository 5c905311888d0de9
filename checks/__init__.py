"""The built-in suite, one module per area. Installed as ``pytest_mlflowdb.checks``."""
