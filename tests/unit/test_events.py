"""The message envelope: round trips, tolerance of unknown fields, rejection of garbage."""

import json

import pytest

from video2mp3.domain.events import (
    ConversionFailed,
    ConversionRequested,
    ConversionSucceeded,
    Event,
    Owner,
    SegmentRequested,
)
from video2mp3.domain.options import ConversionOptions
from video2mp3.errors import InvalidEvent

OWNER = Owner(id=7, email="a@example.com")


def test_round_trip_keeps_every_field() -> None:
    event = Event(
        "job-1",
        ConversionRequested("fid", OWNER, "clip.mp4", ConversionOptions(bitrate=192, title="Ünï")),
        correlation_id="c",
    )
    assert Event.from_json(event.to_json()) == event


def test_a_segment_task_round_trips_with_its_plan_and_options() -> None:
    task = SegmentRequested(
        2, (0, 1152, 2304, 3000), 48000, 2, OWNER, "a.mp4", ConversionOptions(start=1.5), -3.25
    )
    event = Event("job-1", task)
    assert Event.from_json(event.to_json()) == event
    body = json.loads(event.to_json())
    assert body["type"] == "segment.requested"
    assert body["data"]["bounds"] == [0, 1152, 2304, 3000]


def test_envelope_has_the_documented_shape() -> None:
    event = Event("job-1", ConversionSucceeded("mp3", 10, 1.5, OWNER, "a.mp4"))
    body = json.loads(event.to_json())
    assert set(body) == {
        "type",
        "version",
        "event_id",
        "job_id",
        "occurred_at",
        "correlation_id",
        "data",
    }
    assert body["type"] == "conversion.succeeded"
    assert body["version"] == 1
    assert body["data"]["owner"] == {"id": 7, "email": "a@example.com"}


def test_unknown_fields_are_ignored_at_every_level() -> None:
    event = Event("j", ConversionFailed("no_audio", "none", False, OWNER, "a.mp4"))
    body = json.loads(event.to_json())
    body["added_later"] = 1
    body["data"]["hint"] = "x"
    body["data"]["owner"]["name"] = "Ann"
    assert Event.from_json(json.dumps(body)) == event


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"type": "conversion.exploded", "job_id": "j", "event_id": "e", "occurred_at": "t",'
        b' "data": {}}',
        b'{"type": "conversion.progress", "job_id": "j", "data": {"progress": 0.5}}',
        b'{"type": "conversion.progress", "job_id": "j", "event_id": "e", "occurred_at": "t",'
        b' "data": {}}',
        b'{"type": "conversion.progress", "job_id": "j", "event_id": "e", "occurred_at": "t",'
        b' "data": null}',
        b'{"type": "conversion.failed", "job_id": "j", "event_id": "e", "occurred_at": "t",'
        b' "data": {"code": "c", "message": "m", "retryable": false, "owner": "bob",'
        b' "filename": "f"}}',
        b'{"type": "conversion.progress", "job_id": "j", "event_id": "e", "occurred_at": "t",'
        b' "data": [1]}',
        b'{"type": "conversion.progress", "job_id": "j", "event_id": "e", "occurred_at": "t",'
        b' "version": Infinity, "data": {"progress": 0.5}}',
        b'{"type": "segment.requested", "job_id": "j", "event_id": "e", "occurred_at": "t",'
        b' "data": {"index": 0, "bounds": [0, 1], "rate": 1, "channels": 1, "filename": "f",'
        b' "owner": {"id": 1, "email": "a"}, "options": [1]}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_garbage_is_an_invalid_event(raw: bytes) -> None:
    with pytest.raises(InvalidEvent):
        Event.from_json(raw)


def test_a_request_from_before_options_still_converts_with_its_bitrate() -> None:
    body = Event("job-1", ConversionRequested("fid", OWNER, "clip.mp4")).to_json()
    legacy = json.loads(body)
    del legacy["data"]["options"]
    assert Event.from_json(json.dumps(legacy)).data == ConversionRequested("fid", OWNER, "clip.mp4")
    legacy["data"]["bitrate_kbps"] = 128
    decoded = Event.from_json(json.dumps(legacy)).data
    assert isinstance(decoded, ConversionRequested)
    assert decoded.options == ConversionOptions(bitrate=128)


@pytest.mark.parametrize("options", [5, {"bitrate": 129}, {"unknown": 1}])
def test_a_request_with_bad_options_is_an_invalid_event(options: object) -> None:
    body = json.loads(Event("job-1", ConversionRequested("fid", OWNER, "clip.mp4")).to_json())
    body["data"]["options"] = options
    with pytest.raises(InvalidEvent):
        Event.from_json(json.dumps(body))
