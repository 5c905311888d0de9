"""Probes: read-only SQL returning dataclasses. They know nothing of pytest."""
