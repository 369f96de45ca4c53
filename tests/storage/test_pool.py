"""PostgreSQL connections: one per worker thread, and all hosts within max_connections."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from anonsign.cli.gunicorn_app import (
    SPARE_THREADS,
    check_ready,
    gunicorn_options,
    worker_settings,
    worker_threads,
)
from anonsign.config import Settings
from anonsign.errors import ConfigError
from anonsign.service import Service
from anonsign.storage.pool import (
    COMMAND_CONNECTIONS,
    ConnectionBudget,
    check_connection_budget,
    pool_size_for,
    server_limits,
)
from anonsign.web.capacity import Capacity


def test_a_worker_keeps_one_connection_per_thread_and_one_for_its_publisher(
    settings: Settings,
) -> None:
    threads = worker_threads(settings)
    capacity = Capacity.for_settings(settings)
    assert threads == capacity.slots + capacity.queue + SPARE_THREADS
    assert gunicorn_options(settings, "127.0.0.1:1", 2)["threads"] == threads
    assert worker_settings(settings).db_pool_size == threads + 1
    assert worker_settings(settings.with_overrides(threads=3)).db_pool_size == 4
    # An explicit pool size is the operator's choice (threads then wait their turn).
    assert worker_settings(settings.with_overrides(db_pool_size=6)).db_pool_size == 6
    assert pool_size_for(14) == 15


def test_the_budget_fits_or_says_what_to_change() -> None:
    # PostgreSQL's default 100 (3 for superusers), two-core hosts of 2 x 15: three fit.
    ConnectionBudget(hosts=3, workers=2, pool_size=15).check(100, 3)  # 90 of 92
    edge = 100 - 3 - COMMAND_CONNECTIONS
    ConnectionBudget(hosts=1, workers=1, pool_size=edge).check(100, 3)
    with pytest.raises(ConfigError):
        ConnectionBudget(hosts=1, workers=1, pool_size=edge + 1).check(100, 3)
    with pytest.raises(ConfigError) as caught:
        ConnectionBudget(hosts=4, workers=2, pool_size=15).check(100, 3)
    message = str(caught.value)
    assert "4 host(s) x 2 worker(s) x 15 connections = 120" in message
    assert "max_connections" in message
    assert "ANONSIGN_DB_POOL_SIZE" in message


def test_sqlite_has_no_connection_budget(service: Service) -> None:
    if service.db.engine.dialect.name != "sqlite":
        pytest.skip("the SQLite case")
    check_connection_budget(service.db.engine, ConnectionBudget(10**6, 64, 10**3))


@pytest.fixture
def pg_settings(settings: Settings) -> Settings:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has no connection limit")
    return settings


@pytest.mark.postgres
def test_a_servers_pool_is_exactly_its_size_with_no_overflow(
    pg_settings: Settings, service: Service
) -> None:
    sized = Service.open(pg_settings.with_overrides(db_pool_size=4))
    try:
        pool = sized.db.engine.pool
        assert pool.size() == 4  # type: ignore[attr-defined]
        assert pool._max_overflow == 0  # type: ignore[attr-defined]
        # Four threads at once each get a connection of their own.
        held = threading.Barrier(4)
        pids: set[int] = set()

        def hold() -> None:
            with sized.db.reading() as session:
                pids.add(int(session.execute(text("SELECT pg_backend_pid()")).scalar_one()))
                held.wait(10)

        threads = [threading.Thread(target=hold) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(pids) == 4
    finally:
        sized.close_connections()


@pytest.mark.postgres
def test_the_servers_limits_are_read_from_postgresql(
    pg_settings: Settings, service: Service
) -> None:
    max_connections, reserved = server_limits(service.db.engine)
    with service.db.reading() as session:
        shown = int(session.execute(text("SHOW max_connections")).scalar_one())
    assert max_connections == shown
    assert 0 <= reserved < max_connections


@pytest.mark.postgres
def test_serve_refuses_more_hosts_than_postgresql_can_connect(
    pg_settings: Settings, service: Service
) -> None:
    max_connections, _reserved = server_limits(service.db.engine)
    check_ready(pg_settings, 1)  # one worker of one host fits
    with pytest.raises(ConfigError, match="raise max_connections"):
        check_ready(pg_settings.with_overrides(host_count=max_connections), 2)
