"""Operator stats: each sign post's outcome counted, and nothing else kept.

Counted as the operator needs (accepted, limited, shed, per petition, by window), and
looked at as a seizer of the running server would: the raw bytes of the tmpfs files and
the Redis keys hold no address, agent, identifier or time finer than the ten-minute step.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from anonsign.app import create_app
from anonsign.cli import main
from anonsign.config import Settings, load_settings
from anonsign.domain.petitions import Petition
from anonsign.errors import ConfigError
from anonsign.service import Service
from anonsign.stats import (
    BUCKET_SECONDS,
    KEPT_BUCKETS,
    Counts,
    Outcome,
    Recorder,
    StatsUnavailable,
    bucket_of,
)
from anonsign.stats.redis_store import PREFIX, RedisStats
from anonsign.stats.ring import FILE_SIZE, FileStats
from anonsign.web import capacity
from anonsign.web.capacity import Capacity, HashingGate
from tests.conftest import (
    SPOOFED_ADDRESS,
    SPOOFED_AGENT,
    SPOOFED_FORWARDED,
    page_fields,
    sign,
)
from tests.web.test_limits import client_from, limited_app
from tests.web.test_overload_live import counted

#: Noon on a day, well inside a step: a count at NOW lands in bucket_of(NOW).
NOW = 1_700_000_400.0


def counting_app(settings: Settings, service: Service, stats_dir: Path, **limits: str) -> Flask:
    counted = settings.with_overrides(stats_storage_uri="memory://", stats_directory=stats_dir)
    return limited_app(counted, service, **limits)


def test_accepted_limited_and_shed_are_counted_and_refused_forms_are_not(
    settings: Settings, service: Service, petition: Petition, stats_dir: Path
) -> None:
    app = counting_app(settings, service, stats_dir, ratelimit_circuit="4/minute")
    client = client_from(app)
    assert sign(client, petition.slug, "one@example.org").status_code == 200
    # A repeat is answered as a new signature is, and counted the same.
    assert sign(client, petition.slug, "one@example.org").status_code == 200
    # A replayed form: refused like any form error, and counted nowhere.
    fields = page_fields(client, petition.slug) | {"identifier": "two@example.org", "consent": "y"}
    assert client.post(f"/p/{petition.slug}/sign", data=fields).status_code == 200
    replayed = client.post(f"/p/{petition.slug}/sign", data=fields)
    assert replayed.status_code == 400
    assert counted(stats_dir, petition.slug) == Counts(accepted=3)
    # The quota (4 posts, the refused one too) is spent: 429, counted as limited.
    assert sign(client, petition.slug, "three@example.org").status_code == 429
    assert counted(stats_dir, petition.slug) == Counts(accepted=3, limited=1)
    # Every hashing slot taken: shed with 503 at once, counted as shed.
    app.extensions[capacity.EXTENSION] = busy = HashingGate(Capacity(slots=1, queue=0))
    with busy.turn():
        shed = sign(client_from(app, "198.51.100.5"), petition.slug, "four@example.org")
    assert shed.status_code == 503
    assert counted(stats_dir, petition.slug) == Counts(accepted=3, limited=1, shed=1)


def test_the_stats_file_holds_counts_only(
    settings: Settings, service: Service, petition: Petition, stats_dir: Path
) -> None:
    app = counting_app(settings, service, stats_dir)
    identifier = "seized-server-reader@example.org"
    assert sign(client_from(app), petition.slug, identifier, "+993 65 765432").status_code == 200
    files = list(stats_dir.iterdir())
    assert [f.name for f in files] == [f"{petition.slug}.stats"]
    raw = files[0].read_bytes()
    assert len(raw) == FILE_SIZE, "the file is a fixed ring, whatever is counted"
    for secret in (identifier, "765432", SPOOFED_ADDRESS, SPOOFED_FORWARDED, SPOOFED_AGENT):
        assert secret.encode() not in raw
        assert secret.encode("utf-16-le") not in raw
    # Only the ten-minute step is in it, not the second of the signature.
    now = int(time.time())
    for second in range(now - 5, now + 5):
        assert second.to_bytes(8, "little") not in raw
    assert (
        bucket_of(now).to_bytes(8, "little") in raw
        or bucket_of(now - 5).to_bytes(8, "little") in raw
    )
    assert (stats_dir.stat().st_mode & 0o777) == 0o700
    assert (files[0].stat().st_mode & 0o777) == 0o600


def test_an_unknown_petition_gets_no_counter(
    settings: Settings, service: Service, petition: Petition, stats_dir: Path
) -> None:
    app = counting_app(settings, service, stats_dir, ratelimit_circuit="1/minute")
    client = client_from(app)
    assert sign(client, petition.slug, "one@example.org").status_code == 200
    # Refused by the circuit's quota before the petition is looked up: still no file for
    # an invented slug, only the real petition's.
    for invented in ("no-such-petition", "x" * 60):
        answer = client.post(f"/p/{invented}/sign", data={"identifier": "a@example.org"})
        assert answer.status_code in (400, 404, 429)
    assert sorted(p.name for p in stats_dir.iterdir()) == [f"{petition.slug}.stats"]


def test_a_broken_store_never_changes_an_answer(
    settings: Settings,
    service: Service,
    petition: Petition,
    stats_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = counting_app(settings, service, stats_dir)
    # A file where the directory should be (root ignores modes): every count fails.
    stats_dir.write_bytes(b"not a directory")
    try:
        with caplog.at_level(logging.WARNING, logger="anonsign.stats"):
            for n in range(3):
                assert sign(client_from(app), petition.slug, f"b{n}@example.org").status_code == 200
        warnings = [r for r in caplog.records if "could not be counted" in r.getMessage()]
        assert len(warnings) == 1, "one line a minute, not one a post"
        assert signed(service, petition) == 3
    finally:
        stats_dir.unlink()


def signed(service: Service, petition: Petition) -> int:
    return next(s.signatures for s in service.summaries() if s.petition.id == petition.id)


def test_stats_off_the_memory_backed_storage_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StatsUnavailable) as refused:
        FileStats.in_directory(tmp_path / "stats")
    assert "not memory-backed" in str(refused.value)


def test_the_settings_name_a_store_or_off(tmp_path: Path) -> None:
    base = {"ANONSIGN_INSTANCE": str(tmp_path)}
    assert load_settings(base).stats_storage_uri == "memory://"
    assert load_settings(base | {"ANONSIGN_STATS_STORAGE_URI": "OFF"}).stats_storage_uri == "off"
    with pytest.raises(ConfigError) as refused:
        load_settings(base | {"ANONSIGN_STATS_STORAGE_URI": "redis//:secret@host"})
    assert "secret" not in refused.value.message
    assert "ANONSIGN_STATS_STORAGE_URI" in refused.value.message
    shm = "/dev/shm/x"  # noqa: S108 - tmpfs on purpose
    assert load_settings(base | {"ANONSIGN_STATS_DIR": shm}).stats_dir == Path(shm)


# --- the ring: ten-minute steps, one day ----------------------------------------------------


def test_windows_add_whole_steps_and_a_day_old_step_is_overwritten(stats_dir: Path) -> None:
    store = FileStats.in_directory(stats_dir)
    store.add("p", Outcome.ACCEPTED, NOW)
    store.add("p", Outcome.ACCEPTED, NOW - 2 * BUCKET_SECONDS)
    store.add("p", Outcome.LIMITED, NOW - 5 * 3600)
    counts = store.read(["p", "never-counted"], NOW)
    assert counts["p"].window(600, NOW) == Counts(accepted=1)
    assert counts["p"].window(3600, NOW) == Counts(accepted=2)
    assert counts["p"].window(86400, NOW) == Counts(accepted=2, limited=1)
    assert counts["never-counted"].window(86400, NOW) == Counts()
    # A day later the ring comes round: the old step's counts are gone, not added to.
    later = NOW + KEPT_BUCKETS * BUCKET_SECONDS
    store.add("p", Outcome.SHED, later)
    again = store.read(["p"], later)["p"]
    assert again.window(86400, later) == Counts(shed=1)


def test_counts_from_forked_workers_and_their_threads_add_up(stats_dir: Path) -> None:
    store = FileStats.in_directory(stats_dir)
    store.add("p", Outcome.ACCEPTED, NOW)  # opened in the parent before the fork

    def count_many() -> None:
        for _ in range(300):
            store.add("p", Outcome.ACCEPTED, NOW)

    def worker() -> None:
        # A threaded worker: its threads count at once (a record lock does not part them).
        threads = [threading.Thread(target=count_many) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=worker) for _ in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    assert store.read(["p"], NOW)["p"].window(600, NOW) == Counts(accepted=1 + 2 * 4 * 300)


def test_a_recorder_without_a_store_counts_nothing() -> None:
    Recorder(None).add("p", Outcome.ACCEPTED)  # no error, nowhere written


# --- Redis: shared by every host -----------------------------------------------------------


@pytest.mark.xdist_group("redis")
def test_redis_keys_hold_the_slug_and_the_step_only(
    settings: Settings, service: Service, petition: Petition, redis_url: str
) -> None:
    import redis

    app = create_app(settings.with_overrides(stats_storage_uri=redis_url), service=service)
    app.config["TESTING"] = True
    identifier = "redis-reader@example.org"
    assert sign(client_from(app), petition.slug, identifier).status_code == 200
    client = redis.Redis.from_url(redis_url)
    try:
        names = [k.decode() for k in client.keys("*")]
        assert len(names) == 1
        assert names[0].startswith(PREFIX)
        slug, step = names[0].removeprefix(PREFIX).split(":")
        assert slug == petition.slug
        assert abs(int(step) - bucket_of(time.time())) <= 1
        assert client.hgetall(names[0]) == {b"accepted": b"1"}
        ttl = client.ttl(names[0])
        assert 0 < ttl <= 86400 + BUCKET_SECONDS
        dump = b"".join(client.dump(k) or b"" for k in client.keys("*"))
        for secret in (identifier, SPOOFED_ADDRESS, SPOOFED_FORWARDED, SPOOFED_AGENT):
            assert secret.encode() not in dump + names[0].encode()
    finally:
        client.close()
    store = RedisStats.from_uri(redis_url)
    read = store.read([petition.slug], time.time())[petition.slug]
    assert read.window(600, time.time()) == Counts(accepted=1)


def test_a_redis_that_is_down_costs_no_answer(
    settings: Settings, service: Service, petition: Petition
) -> None:
    # Nothing listens on port 9 (discard): every count fails, every answer is given.
    down = "redis://127.0.0.1:9/0"
    app = create_app(settings.with_overrides(stats_storage_uri=down), service=service)
    app.config["TESTING"] = True
    assert sign(client_from(app), petition.slug, "down@example.org").status_code == 200
    assert signed(service, petition) == 1


# --- anonsign stats --------------------------------------------------------------------------


@pytest.fixture
def cli(settings: Settings, stats_dir: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ANONSIGN_INSTANCE", str(settings.instance_path))
    monkeypatch.setenv("ANONSIGN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ANONSIGN_STATS_STORAGE_URI", "memory://")
    monkeypatch.setenv("ANONSIGN_STATS_DIR", str(stats_dir))
    return CliRunner()


def test_the_stats_command_shows_counts_by_window_and_what_waits(
    settings: Settings, service: Service, petition: Petition, stats_dir: Path, cli: CliRunner
) -> None:
    app = counting_app(settings, service, stats_dir, ratelimit_circuit="2/minute")
    client = client_from(app)
    for n in range(2):
        assert sign(client, petition.slug, f"w{n}@example.org").status_code == 200
    assert sign(client, petition.slug, "w9@example.org").status_code == 429

    shown = cli.invoke(main, ["stats", "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    entry = report["petitions"][petition.slug]
    assert entry["waiting"] == 2  # the suite publishes nothing by itself
    for window in ("10 min", "1 hour", "24 hours"):
        assert entry["windows"][window] == {"accepted": 2, "limited": 1, "shed": 0}
    assert report["all"]["windows"]["24 hours"]["accepted"] == 2
    assert report["step_seconds"] == BUCKET_SECONDS

    table = cli.invoke(main, ["stats", petition.slug])
    assert table.exit_code == 0, table.output
    assert petition.slug in table.output
    assert "10-minute steps" in table.output
    row = next(line for line in table.output.splitlines() if "24 hours" in line)
    assert [cell.strip() for cell in row.split("│")[3:6]] == ["2", "1", "0"]


def test_the_stats_command_says_what_is_wrong_in_one_line(
    service: Service, petition: Petition, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def error(*args: str) -> str:
        result = cli.invoke(main, list(args))
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.startswith("ERROR: ")]
        assert len(lines) == 1, result.output
        assert "Traceback" not in result.output
        return lines[0]

    assert "no petition 'nope'" in error("stats", "nope")
    monkeypatch.setenv("ANONSIGN_STATS_STORAGE_URI", "off")
    assert "are off" in error("stats")
    monkeypatch.setenv("ANONSIGN_STATS_STORAGE_URI", "redis://:hunter2@127.0.0.1:9/0")
    line = error("stats")
    assert "cannot be read" in line
    assert "hunter2" not in line
