"""Topic routing shared by both bus adapters."""

from video2mp3.adapters.bus import queues_for


def test_routing() -> None:
    assert queues_for("conversion.requested") == ["converter"]
    assert queues_for("segment.requested") == ["segments"]
    assert queues_for("conversion.progress") == ["gateway"]
    assert queues_for("conversion.succeeded") == ["gateway"]
    assert queues_for("conversion.failed") == ["gateway"]
    assert queues_for("job.finished") == ["notifier"]
    assert queues_for("other.thing") == []
