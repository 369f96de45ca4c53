"""How many PostgreSQL connections a server process keeps, and whether all hosts fit.

A server worker runs requests in threads (anonsign.cli.gunicorn_app) and, beside them,
its background publisher. Each holds at most one connection at a time (every service
call opens its own short transaction, none nests another), so a pool of *threads + 1*
with no overflow means a thread never waits for a connection and never fails with
SQLAlchemy's pool timeout (a 500 for whoever was signing), and the most a worker can
ever open is known in advance.

That bound is what PostgreSQL has to hold, for every worker of every host at once:
``hosts x workers x (threads + 1)``, beside the connections it keeps for superusers and
a few for the operator's own commands (``anonsign-admin``, a publish by hand, the check
each server makes before it starts). When it does not fit, the server refuses to start
with a line saying what to change, rather than run until the busiest minute of a
petition and then turn signers away with "too many clients".

SQLite needs none of this: its connections are file handles, and its one writer at a
time is the busy timeout's concern (anonsign.storage.db).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text

from anonsign.errors import ConfigError

#: Connections left for the operator's commands and the check before a server starts.
COMMAND_CONNECTIONS = 5
#: One connection beside the request threads: the worker's background publisher.
PUBLISHER_CONNECTIONS = 1


def pool_size_for(threads: int, configured: int = 0) -> int:
    """Connections one worker keeps: ``configured`` when given, else one per thread and
    one for the publisher."""
    return configured or threads + PUBLISHER_CONNECTIONS


@dataclass(frozen=True)
class ConnectionBudget:
    """The connections every host of one instance may open together, against the server's."""

    hosts: int
    workers: int
    pool_size: int

    @property
    def per_host(self) -> int:
        return self.workers * self.pool_size

    @property
    def needed(self) -> int:
        return self.hosts * self.per_host

    def check(self, max_connections: int, reserved: int) -> None:
        """Raise :class:`ConfigError` unless ``needed`` fits what the server allows."""
        available = max_connections - reserved - COMMAND_CONNECTIONS
        if self.needed <= available:
            return
        raise ConfigError(
            f"{self.hosts} host(s) x {self.workers} worker(s) x {self.pool_size} "
            f"connections = {self.needed} PostgreSQL connections, but the server allows "
            f"{max_connections} ({reserved} reserved for superusers, {COMMAND_CONNECTIONS} "
            "kept for commands): raise max_connections in postgresql.conf, or lower "
            "ANONSIGN_WORKERS or ANONSIGN_THREADS, or set ANONSIGN_DB_POOL_SIZE below "
            "the threads (they then wait their turn for a connection)."
        )


def server_limits(engine: Engine) -> tuple[int, int]:
    """PostgreSQL's ``max_connections`` and the connections it keeps for superusers
    (``superuser_reserved_connections``, plus ``reserved_connections`` from 16 on)."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT current_setting('max_connections')::int, "
                "current_setting('superuser_reserved_connections')::int, "
                "coalesce(current_setting('reserved_connections', true), '0')::int"
            )
        ).one()
    return int(row[0]), int(row[1]) + int(row[2])


def check_connection_budget(engine: Engine, budget: ConnectionBudget) -> None:
    """Refuse to serve when the hosts' pools together cannot all be connected at once."""
    if engine.dialect.name != "postgresql":
        return
    budget.check(*server_limits(engine))
