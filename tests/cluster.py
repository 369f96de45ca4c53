"""Several ``anonsign serve`` hosts of one instance on this machine, on one PostgreSQL and
one Redis, deployed the way deploy/README.md ("Several hosts") says.

Each host is a network namespace of its own (tests/netns.py) with its own address and its
own instance folder: the first host's instance is made by ``anonsign init`` and sealed
under a passphrase; the others get a copy of the sealed master key and unlock it
themselves. The session and log keys reach every host only as systemd credentials
(``$CREDENTIALS_DIRECTORY``), and so does the Redis URI. Hosts reach the databases through
unix sockets, the only way out of their namespaces (Redis, which has none here, through
a relay).

Used by tests/web/test_multihost_live.py and by ``bench/sign_throughput.py --hosts``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from anonsign.config import load_settings
from anonsign.crypto.kdf import Argon2Params
from anonsign.instance import init_instance, unlock
from anonsign.service import Service
from tests.live import ANONSIGN, LIVE_DEFAULTS
from tests.netns import NetHost, UnixRelay, namespaces_refused, network_hosts

PORT = 8000
PASSPHRASE = "several hosts one truth"


class NoNamespaces(Exception):
    """Network namespaces cannot be made here (the reason is the message)."""


class NoUnixSocket(Exception):
    """PostgreSQL listens on no unix socket, the only way out of a host's namespace."""


@dataclass
class Host:
    """One serving host: its namespace, its environment, its server process group."""

    name: str
    net: NetHost
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.net.address}:{PORT}"

    def start(self, **extra: str) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.net.command(
                    ANONSIGN, "serve", "--host", self.net.address, "--port", str(PORT)
                ),
                env={**self.env, **extra},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"host {self.name} exited early:\n{self.log.read_text()}")
            try:
                with socket.create_connection((self.net.address, PORT), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"host {self.name} did not listen within {timeout} s")

    def kill(self) -> None:
        """SIGKILL the whole process group: the master and every worker at once."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        # Nothing is left to finish once a run is done (its database is dropped next).
        self.kill()


@dataclass
class Cluster:
    hosts: list[Host]
    #: The organizer's view, with the first host's keys (to create petitions and count).
    service: Service
    redis_url: str

    def start(self, **extra: str) -> None:
        for host in self.hosts:
            host.start(**extra)
        for host in self.hosts:
            host.wait_ready()


def _unix_socket_dir(admin_url: str) -> str:
    engine = create_engine(admin_url)
    try:
        with engine.connect() as conn:
            dirs = str(conn.execute(text("SHOW unix_socket_directories")).scalar_one())
    finally:
        engine.dispose()
    first = dirs.split(",")[0].strip()
    if not first:
        raise NoUnixSocket("PostgreSQL listens on no unix socket")
    return first


def _host_database_url(url: str, socket_dir: str) -> str:
    """The database at ``url`` through PostgreSQL's unix socket (no network in a namespace)."""
    database = make_url(url).database
    return f"postgresql://postgres@/{database}?host={socket_dir}"


@contextmanager
def hosts_on_one_database(
    root: Path,
    postgres_url: str,
    redis_url: str,
    *,
    count: int,
    host_env: Mapping[str, str],
    argon2: Argon2Params | None = None,
) -> Iterator[Cluster]:
    """``count`` hosts (not started) of one new instance on the database at
    ``postgres_url`` and the Redis at ``redis_url``; files under ``root``.

    ``host_env`` is added to every host's environment; ``argon2`` is the cost of the
    petitions the returned service creates (the default cost when None).
    """
    reason = namespaces_refused()
    if reason:
        raise NoNamespaces(reason)
    with ExitStack() as stack:
        # Unix socket paths are short: a folder of its own under /tmp.
        short = Path(tempfile.mkdtemp(prefix="anonsign-mh-", dir="/tmp"))
        stack.callback(shutil.rmtree, short, True)
        # The unlocked keys go where `anonsign unlock` accepts them: memory-backed storage.
        shm = Path(tempfile.mkdtemp(prefix="anonsign-mh-", dir="/dev/shm"))
        stack.callback(shutil.rmtree, shm, True)

        redis_parts = make_url(redis_url.replace("redis://", "redis+x://", 1))
        relay_path = short / "redis.sock"
        stack.enter_context(
            UnixRelay(relay_path, (redis_parts.host or "127.0.0.1", redis_parts.port or 6379))
        )
        redis_db = (redis_parts.database or "0").strip("/")
        socket_dir = _unix_socket_dir(postgres_url)

        names = [chr(ord("a") + n) for n in range(count)]
        instances = {name: root / name for name in names}
        keys = {name: shm / name / "master.key" for name in names}
        # The first host: `anonsign init`, sealed under the passphrase, unlocked to tmpfs.
        first = names[0]
        settings_first = load_settings(
            {
                "ANONSIGN_INSTANCE": str(instances[first]),
                "ANONSIGN_DATABASE_URL": postgres_url,
                "ANONSIGN_MASTER_KEY_FILE": str(keys[first]),
            }
        )
        init_instance(settings_first, passphrase=PASSPHRASE)
        # What every host must share reaches each as credentials (deploy/README.md):
        # the session key and the log key, taken out of the first folder, and the Redis URI.
        credentials = {}
        for name in names:
            creds = root / f"credentials-{name}"
            creds.mkdir(mode=0o700)
            for secret in ("session.key", "log.key"):
                shutil.copy(instances[first] / secret, creds / secret)
            (creds / "ratelimit-storage-uri").write_text(
                f"redis+unix://{relay_path}?db={redis_db}\n"
            )
            credentials[name] = creds
        for secret in ("session.key", "log.key"):
            (instances[first] / secret).unlink()
        # Every other host: the sealed master key copied over, and unlocked there.
        for name in names[1:]:
            instances[name].mkdir(mode=0o700)
            shutil.copy(
                settings_first.sealed_master_key_file, instances[name] / "master.key.sealed"
            )
            unlock(
                load_settings(
                    {
                        "ANONSIGN_INSTANCE": str(instances[name]),
                        "ANONSIGN_MASTER_KEY_FILE": str(keys[name]),
                    }
                ),
                PASSPHRASE,
            )

        overrides: dict[str, object] = {"publisher_period": 0.0}
        if argon2 is not None:
            overrides["argon2"] = argon2
        local = load_settings(
            {
                "ANONSIGN_INSTANCE": str(instances[first]),
                "ANONSIGN_DATABASE_URL": postgres_url,
                "ANONSIGN_MASTER_KEY_FILE": str(keys[first]),
                "CREDENTIALS_DIRECTORY": str(credentials[first]),
            },
            **overrides,
        )
        service = Service.open(local, migrate=True)
        stack.callback(service.close_connections)

        nets = stack.enter_context(network_hosts(count))
        inherited = {k: v for k, v in os.environ.items() if k != "ANONSIGN_RATELIMIT_STORAGE_URI"}
        hosts = []
        for name, net in zip(names, nets, strict=True):
            env = {
                **inherited,
                **LIVE_DEFAULTS,
                "ANONSIGN_INSTANCE": str(instances[name]),
                "ANONSIGN_MASTER_KEY_FILE": str(keys[name]),
                "ANONSIGN_DATABASE_URL": _host_database_url(postgres_url, socket_dir),
                "CREDENTIALS_DIRECTORY": str(credentials[name]),
                "ANONSIGN_HOST_COUNT": str(count),
                **host_env,
            }
            host = Host(name, net, env, root / f"host-{name}.log")
            stack.callback(host.stop)
            hosts.append(host)
        yield Cluster(hosts, service, redis_url)
