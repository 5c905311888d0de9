"""pytest-mlflowdb: audit the PostgreSQL database behind MLflow, as a pytest plugin."""
__version__ = "0.1.0"
