"""The workload area's support code: the catalog of MLflow's operations (the SQL that
MLflow's own SQLAlchemy stores emit, captured on a throwaway database by
``tools/capture_operations.py`` and shipped as data) and the statement shapes that match
``pg_stat_statements``' entries to those operations."""
