"""Encoders fed from audio while it is being decoded: the mechanics under segmented encoding.

A decoder (``command.decode_command``) writes raw PCM to a file; each segment's encoder reads its
bytes of that file as they arrive (``ffmpeg.Feed``), so encoding starts at once rather than after
the decoding. Used for the segments of one converter's cores and for one segment of an input
spread across converters.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from video2mp3.converter.ffmpeg import Feed, max_output_bytes, run
from video2mp3.converter.segments import SAMPLE_BYTES, Pcm, Segment, ShortAudio
from video2mp3.errors import MediaError

T = TypeVar("T")

# At most this much decoded audio (about 70 min of 48 kHz stereo), which with the input and the
# MP3 fits the converter's 4 GiB of scratch space; longer audio is encoded in one pass.
MAX_PCM_BYTES = 1536 * 1024**2


def while_decoding(
    decode: list[str],
    pcm: Pcm,
    deadline: Callable[[], float],
    work: Callable[[], T],
    stdin: Feed | None = None,
) -> T:
    """``work()``, while ``decode`` (reading ``stdin``, if given) writes the PCM it reads; the
    decoder's failure explains the work's, so it is raised first."""
    pcm.path.touch()  # the encoders open it at once; ffmpeg then writes to the same file
    pcm_bytes = MAX_PCM_BYTES + pcm.rate * pcm.channels * SAMPLE_BYTES  # a second of slack

    def decoder() -> None:
        try:
            run(decode, deadline=deadline, file_bytes=pcm_bytes, stdin=stdin)
        finally:
            pcm.finished.set()

    with ThreadPoolExecutor(1, thread_name_prefix="decoder") as pool:
        decoding = pool.submit(decoder)
        try:
            result = work()
        except (MediaError, ShortAudio):
            decoding.result()
            raise
        finally:
            pcm.finished.wait()
        decoding.result()
        return result


def encode_segment(
    segment: Segment,
    pcm: Pcm,
    deadline: Callable[[], float],
    max_seconds: int,
    report: Callable[[float], None] = lambda _: None,
) -> None:
    """Run one segment's encoder on its bytes of the PCM, as they arrive."""
    feed = Feed(pcm.path, segment.first_byte, segment.byte_count, pcm.finished)
    run(segment.args, deadline=deadline, file_bytes=max_output_bytes(max_seconds),
        on_progress=report, duration=segment.seconds, stdin=feed)  # fmt: skip
