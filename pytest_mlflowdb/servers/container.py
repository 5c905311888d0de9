"""A throwaway server in a Docker container, through testcontainers.

Used only where a Docker daemon answers. The daemon is pinged first with a short
timeout so that ``auto`` moves on quickly on machines without Docker.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

from pytest_mlflowdb.servers.base import Server, ServerError
from pytest_mlflowdb.text import first_line

IMAGE = os.environ.get("MLFLOWDB_CONTAINER_IMAGE", "postgres:17-alpine")


def start_container(image: str = IMAGE, settings: Mapping[str, str] | None = None) -> Server:
    try:
        import docker  # type: ignore  # installed with testcontainers

        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # testcontainers < 4.14
            from testcontainers.postgres import PostgresContainer
    except ImportError:
        raise ServerError(
            "testcontainers is not installed (pip install pytest-mlflowdb[containers])"
        ) from None
    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as exc:
        reason = first_line(exc)
        raise ServerError(f"no Docker daemon answered: {reason}") from None
    # a random password, long enough to be searched for in any text (a fixed word such
    # as "mlflowdb" would be masked everywhere it appears, or not at all)
    password = secrets.token_urlsafe(16)
    container = PostgresContainer(image, username="postgres", password=password,
                                  dbname="postgres")
    if settings:
        container.with_command(" ".join(f"-c {name}={value}" for name, value in settings.items()))
    try:
        container.start()
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(5432))
    except Exception as exc:
        try:
            container.stop()
        except Exception:
            pass
        raise ServerError(f"the {image} container did not start: {exc}") from None
    return Server(
        kind="container",
        host=host,
        port=port,
        user="postgres",
        password=password,
        description=f"container {image}",
        _stop=container.stop,
    )
