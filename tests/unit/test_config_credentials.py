"""Secrets as systemd credentials: ``$CREDENTIALS_DIRECTORY`` (config.credential).

Several hosts of one instance must share the session key (a form loaded from one host is
posted to another) and the log key (one log, one signer); systemd hands them to each
host's unit with ``LoadCredential=``. The master key never comes that way.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from anonsign.config import load_settings
from anonsign.errors import ConfigError
from anonsign.instance import init_instance, load_log_signer, load_session_key


@pytest.fixture
def creds(tmp_path: Path) -> Path:
    folder = tmp_path / "credentials"
    folder.mkdir()
    return folder


def env_for(tmp_path: Path, creds: Path | None = None, **extra: str) -> dict[str, str]:
    env = {"ANONSIGN_INSTANCE": str(tmp_path / "instance"), **extra}
    if creds is not None:
        env["CREDENTIALS_DIRECTORY"] = str(creds)
    return env


def test_without_credentials_the_keys_are_the_instance_folders(tmp_path: Path) -> None:
    settings = load_settings(env_for(tmp_path))
    assert settings.session_key_file == tmp_path / "instance" / "session.key"
    assert settings.log_key_file == tmp_path / "instance" / "log.key"


def test_a_credentials_folder_without_the_file_leaves_the_instance_folders(
    tmp_path: Path, creds: Path
) -> None:
    (creds / "pgpass").write_text("host:5432:db:user:pw\n")  # another unit's credential
    settings = load_settings(env_for(tmp_path, creds))
    assert settings.session_key_file == tmp_path / "instance" / "session.key"
    assert settings.log_key_file == tmp_path / "instance" / "log.key"


def test_a_second_host_reads_the_first_hosts_keys_from_its_credentials(
    tmp_path: Path, creds: Path
) -> None:
    first = load_settings(env_for(tmp_path))
    init_instance(first, dev=True)
    shutil.copy(first.session_key_file, creds / "session.key")
    shutil.copy(first.log_key_file, creds / "log.key")
    # The second host's own folder holds no session or log key at all.
    second = load_settings(
        {"ANONSIGN_INSTANCE": str(tmp_path / "second"), "CREDENTIALS_DIRECTORY": str(creds)}
    )
    assert second.session_key_file == creds / "session.key"
    assert second.log_key_file == creds / "log.key"
    assert load_session_key(second) == load_session_key(first)
    assert load_log_signer(second).verifier_key() == load_log_signer(first).verifier_key()
    assert not (tmp_path / "second").exists()


def test_init_writes_no_key_where_a_credential_provides_one(tmp_path: Path, creds: Path) -> None:
    first = load_settings(env_for(tmp_path))
    init_instance(first, dev=True)
    shutil.copy(first.session_key_file, creds / "session.key")
    second = load_settings(
        {"ANONSIGN_INSTANCE": str(tmp_path / "second"), "CREDENTIALS_DIRECTORY": str(creds)}
    )
    created = init_instance(second, dev=True)
    assert not (tmp_path / "second" / "session.key").exists()
    assert not any("session key" in line for line in created)
    assert load_session_key(second) == load_session_key(first)


def test_the_master_key_is_never_read_from_the_credentials(tmp_path: Path, creds: Path) -> None:
    # A frozen copy would outlive the rotation a close makes (deploy/README.md).
    (creds / "master.key").write_bytes(b"\0" * 64)
    settings = load_settings(env_for(tmp_path, creds))
    assert creds not in settings.unlocked_master_key_file.parents


def test_the_rate_limiters_uri_can_be_a_credential(tmp_path: Path, creds: Path) -> None:
    (creds / "ratelimit-storage-uri").write_text("redis://:s3cret@10.0.0.5:6379/0\n")
    settings = load_settings(env_for(tmp_path, creds))
    assert settings.ratelimit_storage_uri == "redis://:s3cret@10.0.0.5:6379/0"


def test_the_stats_uri_can_be_a_credential_and_anonsign_stats_reads_it(
    tmp_path: Path, creds: Path
) -> None:
    # `anonsign stats` loads the same settings as the server, so on a host whose unit
    # hands the URI over as a credential the command reads the same Redis.
    (creds / "stats-storage-uri").write_text("redis://:s3cret@10.0.0.5:6379/1\n")
    settings = load_settings(env_for(tmp_path, creds))
    assert settings.stats_storage_uri == "redis://:s3cret@10.0.0.5:6379/1"
    assert settings.ratelimit_storage_uri == "memory://"
    (creds / "stats-storage-uri").write_text("off\n")
    assert load_settings(env_for(tmp_path, creds)).stats_storage_uri == "off"


def test_the_uri_in_two_places_is_refused(tmp_path: Path, creds: Path) -> None:
    (creds / "ratelimit-storage-uri").write_text("redis://10.0.0.5:6379/0\n")
    env = env_for(tmp_path, creds, ANONSIGN_RATELIMIT_STORAGE_URI="redis://10.0.0.6:6379/0")
    with pytest.raises(ConfigError, match="one place only"):
        load_settings(env)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "one line"),
        (b"redis://a:6379/0\nredis://b:6379/0\n", "one line"),
        (b"\xff\xfe", "one line"),
        (b"redis://" + b"a" * 5000, "one line"),
        (b"mongodb://:s3cret@h/0", "must start with"),
    ],
)
def test_a_bad_uri_credential_is_refused_without_showing_it(
    tmp_path: Path, creds: Path, content: bytes, message: str
) -> None:
    (creds / "ratelimit-storage-uri").write_bytes(content)
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(env_for(tmp_path, creds))
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(("name", "value"), [("HOST_COUNT", "0"), ("DB_POOL_SIZE", "-1")])
def test_host_count_and_pool_size_are_checked(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"ANONSIGN_{name}"):
        load_settings(env_for(tmp_path, **{f"ANONSIGN_{name}": value}))


def test_host_count_and_pool_size_are_read(tmp_path: Path) -> None:
    settings = load_settings(env_for(tmp_path, ANONSIGN_HOST_COUNT="3", ANONSIGN_DB_POOL_SIZE="7"))
    assert (settings.host_count, settings.db_pool_size) == (3, 7)
    assert (load_settings(env_for(tmp_path)).host_count, load_settings({}).db_pool_size) == (1, 0)
