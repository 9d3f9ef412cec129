"""Settings: read from VIDEO2MP3_*, and a bad or missing one is named in a single line."""

from datetime import timedelta

import pytest

from video2mp3.errors import SettingsError
from video2mp3.settings import load


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEO2MP3_BROKER_URL", "amqp://u:p@rabbit:5672/%2F")
    monkeypatch.setenv("VIDEO2MP3_MAX_UPLOAD_BYTES", "1024")
    settings = load()
    assert settings.broker_url == "amqp://u:p@rabbit:5672/%2F"
    assert settings.max_upload_bytes == 1024


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VIDEO2MP3_BROKER_URL", "http://rabbit"),
        ("VIDEO2MP3_JOBS_DB_URL", "postgres://x"),
        ("VIDEO2MP3_MAX_UPLOAD_BYTES", "lots"),
        ("VIDEO2MP3_SMTP_URL", "mail.example.com"),
        ("VIDEO2MP3_LOG_LEVEL", "LOUD"),
        ("VIDEO2MP3_BROKER_URL", "amqp://u:p@rabbit:notaport/"),
        ("VIDEO2MP3_SMTP_URL", "smtp://u:p@mail:abc"),
        ("VIDEO2MP3_BROKER_PREFIX", "Bad Prefix"),
        ("VIDEO2MP3_KEEP_MP3S_FOR", "a week"),
        ("VIDEO2MP3_KEEP_VIDEOS_FOR", "-1h"),
        ("VIDEO2MP3_QUOTA_BYTES", "0"),
    ],
)
def test_a_malformed_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load()


def test_a_missing_setting_is_named() -> None:
    settings = load(broker_url=None)
    with pytest.raises(SettingsError, match="VIDEO2MP3_BROKER_URL is required by the converter"):
        settings.require("the converter", "broker_url")
    with pytest.raises(SettingsError, match="VIDEO2MP3_MONGODB_URL or VIDEO2MP3_BLOB_DIR"):
        load(mongodb_url=None, blob_dir=None).require_one("x", "mongodb_url", "blob_dir")


def test_retention_reads_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEO2MP3_KEEP_VIDEOS_FOR", "90m")
    monkeypatch.setenv("VIDEO2MP3_KEEP_MP3S_FOR", "0")
    retention = load().retention()
    assert retention.keep_videos_for == timedelta(minutes=90)
    assert retention.keep_mp3s_for is None  # 0 keeps them
    defaults = load(keep_videos_for=timedelta(0), keep_mp3s_for=timedelta(days=7)).retention()
    assert (defaults.keep_videos_for, defaults.keep_mp3s_for) == (timedelta(0), timedelta(days=7))
