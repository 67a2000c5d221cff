"""Session-wide test helpers shared by every area's tests."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str) -> str:
    """Path of an external program a test needs (mosquitto, node, ...).

    Skips locally when it is missing, but fails under CI, where `.ci/run` installs it: a
    missing install step must not turn into a green run.
    """
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        message = f"{name} is not installed"
        if IN_CI:
            pytest.fail(f"{message}; .ci/run should have installed it")
        pytest.skip(message)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PG_URL = os.environ.get("YINQI_TEST_PG_URL")


@pytest.fixture(autouse=True)
def _close_databases_a_test_opened() -> Iterator[None]:
    """Engines are cached per URL for the process; each test's fresh database would otherwise
    keep its pooled files open to the end of the session. Past 1,024 descriptors, libraries
    that still use select() (paho-mqtt) fail on every new socket."""
    from federation import storage

    before = storage.cached_urls()
    yield
    for url in storage.cached_urls() - before:
        storage.close_connections(url)


@pytest.fixture
def pg_url():  # type: ignore[no-untyped-def]
    """A private schema on the test PostgreSQL server (`YINQI_TEST_PG_URL`), dropped afterwards.

    Skips locally when the server is not configured, fails under CI (where `.ci/run` starts it).
    """
    if not PG_URL:
        if IN_CI:
            pytest.fail("YINQI_TEST_PG_URL is not set; .ci/run should start PostgreSQL and export it")
        pytest.skip("YINQI_TEST_PG_URL not set (start PostgreSQL as .ci/run does to run this)")
    import uuid

    from sqlalchemy import create_engine, text

    from federation import storage

    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        storage.forget_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL: a SQLite file, or a private schema on the test PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_url")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with a slow test first, each module kept whole (its fixtures set up once), the
    rest in the order collected. Under pytest-xdist (`make test`) each process takes a share
    of the list from the front and an idle one takes the end of another's share: in file
    order the slowest tests (tests/test_docs.py, one to four minutes a page) came last, where
    one process could be left running them while the other had nothing left to do."""
    slow_modules = {getattr(item, "module", None) for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: getattr(item, "module", None) not in slow_modules)
