"""The indexes area's support: the platform guide's recommended indexes and the parser of
their edits (``recommended``). The area itself is ``checks/indexes.py``; what the indexes
are and how they are used come from ``probes/schema.py`` and ``probes/indexes.py``."""
