"""pytest-mlflowdb: audit the PostgreSQL database behind MLflow, as a pytest plugin.

Public API for team checks: :func:`check`, :class:`Findings`, :class:`Finding`,
:class:`Threshold`. Importing this package is cheap: psycopg, tabulate and
testcontainers are imported only when the plugin is active.
"""

from .findings import Finding, Findings
from .registry import check
from .thresholds import Threshold

__version__ = "0.1.0"
__all__ = ["Finding", "Findings", "Threshold", "__version__", "check"]
