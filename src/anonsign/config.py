"""Settings: one frozen object, read once, passed to whatever needs it.

Precedence is defaults < ``ANONSIGN_*`` environment variables; secrets are never
environment values but files (the instance folder, or a ``*_FILE`` path such as a
systemd credential), so they do not leak through ``/proc/<pid>/environ`` or a crash
report. Reading fails closed: a malformed value is a :class:`ConfigError` naming the
variable, never a silent default.

**systemd credentials.** When systemd starts the service with ``LoadCredential=`` it sets
``$CREDENTIALS_DIRECTORY``; a file there named as in :data:`CREDENTIALS` is used instead
of the instance folder's copy (the session and log keys, which every host of one
instance must share) or of the environment variable (a Redis URI that carries a
password). The master key is deliberately not among them: a credential is a copy frozen
when the unit starts, and closing a petition replaces the master key (deploy/README.md).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from anonsign.crypto.kdf import Argon2Params
from anonsign.errors import ConfigError
from anonsign.onion import is_v3_onion_address

ENV_PREFIX = "ANONSIGN_"

#: A checkpoint needs at least this many new signatures (SECURITY.md, "batched publication").
DEFAULT_PUBLISH_MIN = 20
#: ... and at least this long since the hour of the last one.
DEFAULT_PUBLISH_INTERVAL = 3600

#: A sign form is accepted no sooner than this after its page was rendered: a script that
#: posts the moment it reads the page must wait, a person never notices (SECURITY.md,
#: "forms that cannot be replayed").
DEFAULT_FORM_MIN_SECONDS = 2
#: ... and no later than this: Tor circuits are slow and people hesitate before signing
#: something that can cost them (SecureDrop-like leniency). The CSRF token lasts as long.
DEFAULT_FORM_MAX_SECONDS = 6 * 3600

#: The log's name when nothing else is given; it names no server, so ``init`` proposes
#: the onion address instead (anonsign.cli.log_name).
DEFAULT_LOG_NAME = "anonsign"

#: Dedup-key cost for new petitions (RFC 9106's second recommendation uses 64 MiB, t=3).
DEFAULT_ARGON2 = Argon2Params(time_cost=3, memory_kib=65536, parallelism=1)

# Rate limits (anonsign.web.limits; SECURITY.md, "Rate limits"), in Flask-Limiter's syntax.
# Sized from Argon2id: at the default cost one hash takes about 0.3 s of a core, so a
# small two-core server signs about 400 a minute. 600 a minute (10 a second) is a little
# above what such a server can hash: the cap never refuses work the machine could do,
# and stops a flood from queueing minutes of hashing. Raise it on a bigger server
# (``anonsign calibrate`` prints what this one takes).
DEFAULT_RATELIMIT_GLOBAL = "600/minute"
#: Half the global cap: a flood aimed at one petition leaves the other half to the rest.
DEFAULT_RATELIMIT_PETITION = "300/minute"
#: Sign posts per Tor circuit (or clearnet peer): a person signs once, perhaps retries
#: after a typo; a household sharing one Tor Browser shares one circuit.
DEFAULT_RATELIMIT_CIRCUIT = "5/minute"
#: Page requests per circuit (no Argon2 work): generous for reading and switching language.
DEFAULT_RATELIMIT_PAGES = "60/minute"
#: Counters in each process's memory; ``redis://`` (or ``redis+unix://``) to share them.
DEFAULT_RATELIMIT_STORAGE_URI = "memory://"
RATELIMIT_STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")
#: The operator's counts (anonsign.stats): files on tmpfs shared by this host's workers.
DEFAULT_STATS_STORAGE_URI = "memory://"
#: ``ANONSIGN_STATS_STORAGE_URI=off``: count nothing at all.
STATS_OFF = "off"

#: Set by systemd for a unit with ``LoadCredential=``/``SetCredential=`` (systemd.exec(5)).
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
#: Credential names anonsign reads, and the setting each one provides.
SESSION_KEY_CREDENTIAL = "session.key"
LOG_KEY_CREDENTIAL = "log.key"
RATELIMIT_URI_CREDENTIAL = "ratelimit-storage-uri"
STATS_URI_CREDENTIAL = "stats-storage-uri"
CREDENTIALS = (
    SESSION_KEY_CREDENTIAL,
    LOG_KEY_CREDENTIAL,
    RATELIMIT_URI_CREDENTIAL,
    STATS_URI_CREDENTIAL,
)
#: A URI read from a file is a line, not a document.
MAX_URI_FILE_BYTES = 4096


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, validated."""

    instance_path: Path
    database_url: str
    #: Where the unlocked server keys are read from, when set explicitly (in production
    #: ``/run/anonsign-unlock/master.key``, see deploy/); see :attr:`unlocked_master_key_file`.
    master_key_file: Path | None
    argon2: Argon2Params = DEFAULT_ARGON2
    site_name: str = "anonsign"
    trusted_hosts: tuple[str, ...] = ()
    #: The service's onion address (``xyz.onion``) when a clearnet mirror also serves it:
    #: answers on other hosts then carry ``Onion-Location`` so Tor Browser offers the onion.
    onion_address: str | None = None
    #: Whole request body cap: the sign form is a few hundred bytes; 64 KiB leaves room
    #: for long contact text in any script and stops memory abuse early (413).
    max_content_length: int = 64 * 1024
    #: Fields in one form: the sign form has four; more is an attack or a mistake.
    max_form_parts: int = 16
    #: gunicorn worker processes for ``anonsign serve``.
    workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    #: Requests each worker serves at once (threads): page loads never wait behind a
    #: hash, and the hashes at once are the gate's (anonsign.web.capacity). 0: the
    #: hashing slots, plus their queue, plus four (anonsign.cli.gunicorn_app).
    threads: int = 0
    #: Sign posts that may wait, per hashing slot, before more are shed with 503.
    hashing_queue: int = 4
    #: Seconds a client has to send a whole request (head and body) once it connects or
    #: starts its next one; a slower client gets 408 (anonsign.cli.gunicorn_worker).
    request_read_seconds: int = 10
    publish_min: int = DEFAULT_PUBLISH_MIN
    publish_interval: int = DEFAULT_PUBLISH_INTERVAL
    #: The window in which a rendered sign form may be posted, once (crypto.form_token).
    form_min_seconds: int = DEFAULT_FORM_MIN_SECONDS
    form_max_seconds: int = DEFAULT_FORM_MAX_SECONDS
    #: How often each server process looks for a due batch (0: no background publisher).
    publisher_period: float = 60.0
    #: A worker process is replaced after about this many requests ...
    worker_max_requests: int = 500
    #: ... or this many seconds, whichever comes first (0: no age limit): what a worker
    #: held of a submission leaves with it (SECURITY.md, "memory residue").
    worker_max_age: float = 600.0
    #: The log's name for a new instance (its signing key's name, and the first part of
    #: every petition's origin). Read by ``init`` only; the key file keeps it afterwards.
    log_name: str = DEFAULT_LOG_NAME
    #: Memory (MiB) that Argon2id may use with every hashing slot busy: ``calibrate``
    #: keeps its recommendation (and its own measuring) within it, and the server sizes
    #: its hashing slots from it (anonsign.web.capacity). None: half this machine's memory.
    memory_budget_mib: int | None = None
    #: Sign posts, all petitions together (a constant key: it identifies nobody).
    ratelimit_global: str = DEFAULT_RATELIMIT_GLOBAL
    #: Sign posts per petition (its slug is the key).
    ratelimit_petition: str = DEFAULT_RATELIMIT_PETITION
    #: Sign posts per Tor circuit or clearnet peer, keyed by an HMAC under an in-memory key.
    ratelimit_circuit: str = DEFAULT_RATELIMIT_CIRCUIT
    #: Page requests (GET, HEAD) of the public pages per circuit or peer.
    ratelimit_pages: str = DEFAULT_RATELIMIT_PAGES
    #: Where the limiter counts: ``memory://`` (per process) or a Redis URI (shared).
    ratelimit_storage_uri: str = DEFAULT_RATELIMIT_STORAGE_URI
    #: Where ``anonsign stats`` counts come from: ``memory://`` (tmpfs, this host), a
    #: Redis URI (every host), or ``off`` (anonsign.stats).
    stats_storage_uri: str = DEFAULT_STATS_STORAGE_URI
    #: ``ANONSIGN_STATS_DIR``: where ``memory://`` stats live, if not :attr:`stats_dir`'s
    #: default (it must be on tmpfs).
    stats_directory: Path | None = None

    #: The session key's file when not the instance folder's (a systemd credential).
    session_key_path: Path | None = None
    #: The log key's file when not the instance folder's (a systemd credential).
    log_key_path: Path | None = None
    #: How many hosts serve this instance from one PostgreSQL database: the connections
    #: they may open together are checked against the server's max_connections.
    host_count: int = 1
    #: PostgreSQL connections each server process keeps (0: one per thread, plus one for
    #: its publisher, so no thread ever waits for one; anonsign.storage.pool).
    db_pool_size: int = 0
    #: ``ANONSIGN_WITNESSES_FILE``: the witnesses each new checkpoint is offered to, one
    #: ``<submission URL> <verifier key>`` per line; None: ``witnesses`` in the instance
    #: folder, if it exists (anonsign.witness.client).
    witnesses_path: Path | None = None
    #: ``ANONSIGN_WITNESS_TUNNEL``: host:port of tor's HTTPTunnelPort, through which every
    #: witness request goes (the only outbound connection the service makes). None:
    #: direct, which only a witness on this machine or a test should need.
    witness_tunnel: tuple[str, int] | None = None

    @property
    def witnesses_file(self) -> Path:
        return self.witnesses_path or self.instance_path / "witnesses"

    @property
    def stats_dir(self) -> Path:
        """Where ``memory://`` stats live: by default beside the unlocked keys, on tmpfs.

        The server reads its keys there, and the operator's ``unlock`` writes them there,
        so the serving workers and the operator's ``anonsign stats`` both reach it, inside
        systemd's sandbox or not.
        """
        if self.stats_directory is not None:
            return self.stats_directory
        return self.unlocked_master_key_file.parent / "stats"

    @property
    def session_key_file(self) -> Path:
        return self.session_key_path or self.instance_path / "session.key"

    @property
    def log_key_file(self) -> Path:
        return self.log_key_path or self.instance_path / "log.key"

    @property
    def pid_file(self) -> Path:
        """Where ``serve`` writes the server's process id, so that ``petition close``,
        ``emergency-close`` and ``lock`` can reach the processes that hold secrets."""
        return self.instance_path / "server.pid"

    @property
    def sealed_master_key_file(self) -> Path:
        """The master key under the unlock passphrase: the only form kept on disk."""
        return self.instance_path / "master.key.sealed"

    @property
    def dev_master_key_file(self) -> Path:
        """A master key in clear on disk, for the demo and tests only (never production)."""
        return self.instance_path / "DEV-ONLY-master.key"

    @property
    def unlocked_master_key_file(self) -> Path:
        """Where ``anonsign unlock`` puts the master key: memory-backed storage.

        ANONSIGN_MASTER_KEY_FILE if set; otherwise a per-instance file under the user's
        runtime directory (``$XDG_RUNTIME_DIR``, else ``/dev/shm``), both tmpfs on Linux.
        """
        if self.master_key_file is not None:
            return self.master_key_file
        runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or "/dev/shm")  # noqa: S108 - tmpfs on purpose
        tag = f"{zlib.crc32(str(self.instance_path).encode()):08x}"  # a name, not a secret
        return runtime / f"anonsign-{os.getuid()}-{tag}" / "master.key"

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests, the ``demo`` command)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(ENV_PREFIX + name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise ConfigError(f"{ENV_PREFIX}{name} must be at least {minimum}, not {value}.")
    return value


def _rate_limit(env: Mapping[str, str], name: str, default: str) -> str:
    """A rate limit in Flask-Limiter's notation (``600/minute``, ``10 per second``, or
    several joined by ``;``), checked by the ``limits`` library that will parse it."""
    raw = (env.get(ENV_PREFIX + name) or "").strip()
    if not raw:
        return default
    from limits import parse_many  # imported only when set: it costs every CLI command 0.2 s

    try:
        parsed = parse_many(raw)
    except ValueError:
        parsed = []
    if not parsed or any(item.amount < 1 for item in parsed):
        raise ConfigError(
            f"{ENV_PREFIX}{name} must be a rate limit such as 600/minute or 10 per second, "
            f"not {raw!r}."
        )
    return raw


def credential(env: Mapping[str, str], name: str) -> Path | None:
    """The file of systemd credential ``name``, if the unit was given one by that name."""
    folder = (env.get(CREDENTIALS_ENV) or "").strip()
    if not folder:
        return None
    path = Path(folder) / name
    return path if path.is_file() else None


def _credential_text(path: Path) -> str:
    """A one-line secret (a URI) from a credential file, without its line end."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_URI_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"Cannot read the credential {path}: {exc.strerror}.") from None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        text = ""
    if not text or len(data) > MAX_URI_FILE_BYTES or "\n" in text:
        raise ConfigError(
            f"The credential {path} must hold one line of text (at most "
            f"{MAX_URI_FILE_BYTES} bytes)."
        )
    return text


def _storage_uri(
    env: Mapping[str, str],
    name: str,
    default: str,
    *,
    may_be_off: bool,
    credential_name: str | None = None,
) -> str:
    """A storage URI from ``ANONSIGN_<name>``, or from the systemd credential
    ``credential_name`` (a Redis URI can carry a password)."""
    from_credential = credential(env, credential_name) if credential_name else None
    if from_credential is not None:
        if (env.get(ENV_PREFIX + name) or "").strip():
            # Two sources for one secret: which one the operator meant is a guess.
            raise ConfigError(
                f"{ENV_PREFIX}{name} is set and so is the credential {credential_name!r}: "
                "give it in one place only."
            )
        env = {ENV_PREFIX + name: _credential_text(from_credential)}
    raw = (env.get(ENV_PREFIX + name) or "").strip()
    if not raw:
        return default
    if may_be_off and raw.lower() == STATS_OFF:
        return STATS_OFF
    scheme, sep, _rest = raw.partition("://")
    if not sep or scheme.lower() not in RATELIMIT_STORAGE_SCHEMES:
        # Fail closed: a typo must not leave signing without a working limiter. The
        # message names the scheme only: the rest of a URI may hold a password.
        shown = f"{scheme}://" if sep else "a value without ://"
        also = ", or be off" if may_be_off else ""
        raise ConfigError(
            f"{ENV_PREFIX}{name} must start with memory://, redis://, rediss:// "
            f"or redis+unix://{also}, not {shown}."
        )
    return raw


def _tunnel(env: Mapping[str, str]) -> tuple[str, int] | None:
    raw = (env.get(ENV_PREFIX + "WITNESS_TUNNEL") or "").strip()
    if not raw:
        return None
    host, colon, port = raw.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{ENV_PREFIX}WITNESS_TUNNEL must be host:port of tor's HTTPTunnelPort, such as "
            f"127.0.0.1:9080, not {raw!r}."
        )
    return host.strip("[]"), int(port)


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    instance = Path(env.get(ENV_PREFIX + "INSTANCE") or "instance").expanduser().resolve()
    database_url = env.get(ENV_PREFIX + "DATABASE_URL") or f"sqlite:///{instance / 'anonsign.db'}"
    raw_master = env.get(ENV_PREFIX + "MASTER_KEY_FILE")
    master_key_file = Path(raw_master).expanduser() if raw_master else None
    stats_dir = (env.get(ENV_PREFIX + "STATS_DIR") or "").strip()
    argon2 = Argon2Params(
        time_cost=_int(env, "ARGON2_TIME_COST", DEFAULT_ARGON2.time_cost, 1),
        memory_kib=_int(env, "ARGON2_MEMORY_KIB", DEFAULT_ARGON2.memory_kib, 8),
        parallelism=_int(env, "ARGON2_PARALLELISM", DEFAULT_ARGON2.parallelism, 1),
    )
    hosts = tuple(
        h.strip() for h in (env.get(ENV_PREFIX + "TRUSTED_HOSTS") or "").split(",") if h.strip()
    )
    onion = (env.get(ENV_PREFIX + "ONION_ADDRESS") or "").strip().lower() or None
    if onion is not None and not is_v3_onion_address(onion):
        # Fail closed: Onion-Location would send Tor Browser users to a wrong address.
        raise ConfigError(
            f"{ENV_PREFIX}ONION_ADDRESS must be a v3 onion host name (56 letters and "
            f"digits 2-7, then .onion, as in the hostname file of tor), not {onion!r}."
        )
    form_min = _int(env, "FORM_MIN_SECONDS", DEFAULT_FORM_MIN_SECONDS, 0)
    form_max = _int(env, "FORM_MAX_SECONDS", DEFAULT_FORM_MAX_SECONDS, 60)
    if form_min >= form_max:
        raise ConfigError(
            f"{ENV_PREFIX}FORM_MIN_SECONDS ({form_min}) must be less than "
            f"{ENV_PREFIX}FORM_MAX_SECONDS ({form_max})."
        )
    witnesses = (env.get(ENV_PREFIX + "WITNESSES_FILE") or "").strip()
    settings = Settings(
        instance_path=instance,
        database_url=database_url,
        master_key_file=master_key_file,
        argon2=argon2,
        site_name=(env.get(ENV_PREFIX + "SITE_NAME") or "anonsign").strip() or "anonsign",
        trusted_hosts=hosts,
        onion_address=onion,
        workers=_int(env, "WORKERS", max(1, os.cpu_count() or 1), 1),
        threads=_int(env, "THREADS", 0, 0),
        hashing_queue=_int(env, "HASHING_QUEUE", 4, 0),
        request_read_seconds=_int(env, "REQUEST_READ_SECONDS", 10, 1),
        publish_min=_int(env, "PUBLISH_MIN", DEFAULT_PUBLISH_MIN, 0),
        publish_interval=_int(env, "PUBLISH_INTERVAL", DEFAULT_PUBLISH_INTERVAL, 0),
        form_min_seconds=form_min,
        form_max_seconds=form_max,
        publisher_period=float(_int(env, "PUBLISHER_PERIOD", 60, 0)),
        worker_max_requests=_int(env, "WORKER_MAX_REQUESTS", 500, 10),
        worker_max_age=float(_int(env, "WORKER_MAX_AGE", 600, 0)),
        log_name=(env.get(ENV_PREFIX + "LOG_NAME") or "").strip() or DEFAULT_LOG_NAME,
        memory_budget_mib=_int(env, "MEMORY_BUDGET_MIB", 0, 1) or None,
        ratelimit_global=_rate_limit(env, "RATELIMIT_GLOBAL", DEFAULT_RATELIMIT_GLOBAL),
        ratelimit_petition=_rate_limit(env, "RATELIMIT_PETITION", DEFAULT_RATELIMIT_PETITION),
        ratelimit_circuit=_rate_limit(env, "RATELIMIT_CIRCUIT", DEFAULT_RATELIMIT_CIRCUIT),
        ratelimit_pages=_rate_limit(env, "RATELIMIT_PAGES", DEFAULT_RATELIMIT_PAGES),
        ratelimit_storage_uri=_storage_uri(
            env,
            "RATELIMIT_STORAGE_URI",
            DEFAULT_RATELIMIT_STORAGE_URI,
            may_be_off=False,
            credential_name=RATELIMIT_URI_CREDENTIAL,
        ),
        stats_storage_uri=_storage_uri(
            env,
            "STATS_STORAGE_URI",
            DEFAULT_STATS_STORAGE_URI,
            may_be_off=True,
            credential_name=STATS_URI_CREDENTIAL,
        ),
        stats_directory=Path(stats_dir).expanduser() if stats_dir else None,
        session_key_path=credential(env, SESSION_KEY_CREDENTIAL),
        log_key_path=credential(env, LOG_KEY_CREDENTIAL),
        host_count=_int(env, "HOST_COUNT", 1, 1),
        db_pool_size=_int(env, "DB_POOL_SIZE", 0, 0),
        witnesses_path=Path(witnesses).expanduser() if witnesses else None,
        witness_tunnel=_tunnel(env),
    )
    return settings.with_overrides(**overrides) if overrides else settings
