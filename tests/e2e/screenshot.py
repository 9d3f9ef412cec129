"""``make screenshot``: the README's pictures of the page, made from a real run, never by hand.

Starts ``video2mp3 dev`` in a temporary folder, signs up, uploads a few generated videos through
the page, waits for them to finish and photographs the page: desktop width in the light scheme,
phone width in the dark one.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.e2e.browser import chromium
from tests.support import H264, Sample, dev_stack, make_sample

NOISE = ("-f", "lavfi", "-i", "anoisesrc=d={s}:a=0.2,aformat=channel_layouts=stereo")


def videos(folder: Path) -> list[Path]:
    """Uploads with names and lengths a person would have (one without sound, which fails)."""
    picture = ("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=10:duration={s}")

    def clip(name: str, seconds: int, audio: bool = True) -> Path:
        args = [a.format(s=seconds) for a in (*picture, *(NOISE if audio else ()))]
        codec = (*H264, *(("-c:a", "aac", "-shortest") if audio else ()))
        return make_sample(Sample(name, (*args, *codec), seconds if audio else None), folder)

    return [
        clip("Screen recording (muted).mp4", 5, audio=False),
        clip("Interview with Maria.mov", 47),
        clip("Lecture 3 - Thermodynamics.mkv", 184),
    ]


def main(out: Path) -> None:
    from playwright.sync_api import expect

    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        root = Path(tmp)
        with dev_stack(root / "var", root / "dev.log") as site:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(site)
            page.get_by_label("Email").fill("maria@example.com")
            page.get_by_label("Password").fill("correct horse")
            page.get_by_role("button", name="Sign up").click()
            jobs = page.get_by_role("list", name="Jobs")
            for video in videos(root):  # one by one: the newest shows first
                page.get_by_label("Videos").set_input_files(video)
                item = jobs.get_by_role("listitem").filter(has_text=video.name)
                expect(item.locator(".status.succeeded, .status.failed")).to_be_visible(
                    timeout=120_000
                )
            page.screenshot(path=str(out), full_page=True)
            phone = browser.new_page(
                viewport={"width": 375, "height": 760}, color_scheme="dark", device_scale_factor=2
            )
            phone.context.add_cookies(page.context.cookies())
            phone.goto(site)
            expect(phone.get_by_role("list", name="Jobs").get_by_role("listitem")).to_have_count(3)
            phone.screenshot(path=str(out.with_name(out.stem + "-phone-dark.png")))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot.png"))
