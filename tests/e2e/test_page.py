"""The page in a real browser (the system's Chromium) on `video2mp3 dev`: a person's whole journey,
by the accessible names the page promises, under its Content-Security-Policy."""

from __future__ import annotations

import email
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.browser import chromium
from tests.e2e.flow import fill_up
from tests.support import LONG, SAMPLES, dev_stack, inspect_audio, make_sample, wait_for

PASSWORD = "pw-123456"
RANK = {"uploading": 0, "queued": 1, "processing": 2, "succeeded": 3, "failed": 3}
# Records every status word and progress value each job shows, however briefly.
WATCH = """() => {
  window.seen = {};
  new MutationObserver(() => {
    for (const li of document.querySelectorAll('#jobs > li')) {
      const name = li.querySelector('.name').textContent;
      const bar = li.querySelector('[role=progressbar]');
      const now = bar && !bar.hidden ? bar.getAttribute('aria-valuenow') : null;
      (window.seen[name] ??= []).push([li.querySelector('.status').textContent, now]);
    }
  }).observe(document.querySelector('#jobs'), {subtree: true, childList: true,
                                              attributes: true, characterData: true});
}"""


@pytest.fixture
def site(tmp_path: Path) -> Any:
    with dev_stack(tmp_path / "var", tmp_path / "dev.log") as base:
        yield base


def test_a_persons_journey(site: str, samples: dict[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with chromium() as browser:
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(site)

        # Sign up (which logs in), log out, log in again.
        page.get_by_label("Email").fill("ann@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign up").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("button", name="Log in")).to_be_visible()
        page.get_by_label("Email").fill("ann@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()

        # The keyboard reaches the file picker.
        focused = []
        for _ in range(6):
            page.keyboard.press("Tab")
            focused.append(page.evaluate("document.activeElement.getAttribute('aria-label')"))
        assert "Videos" in focused, focused

        # The session is out of the page script's reach.
        [cookie] = [c for c in context.cookies() if c["name"] == "video2mp3_session"]
        assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Lax")
        assert page.evaluate("document.cookie") == ""
        assert page.evaluate("localStorage.length + sessionStorage.length") == 0

        # Two videos at once: one good, one without audio.
        page.evaluate(WATCH)
        good_file, bad_file = samples["h264_aac.mp4"], samples["no_audio.mp4"]
        page.get_by_label("Videos").set_input_files([good_file, bad_file])
        jobs = page.get_by_role("list", name="Jobs")
        good = jobs.get_by_role("listitem").filter(has_text=good_file.name)
        bad = jobs.get_by_role("listitem").filter(has_text=bad_file.name)
        expect(good.get_by_text("succeeded", exact=True)).to_be_visible(timeout=60_000)
        expect(bad.get_by_text("failed", exact=True)).to_be_visible(timeout=60_000)
        expect(bad).to_contain_text("no_audio")
        expect(good.get_by_role("progressbar")).to_be_hidden()
        seen = page.evaluate("window.seen")
        for name in (good_file.name, bad_file.name):
            statuses = [s for s, _ in seen[name]]
            assert statuses[0] == "uploading", seen[name]
            ranks = [RANK[s] for s in statuses]  # only the five words, never backwards
            assert ranks == sorted(ranks), seen[name]
            working = [int(v) for s, v in seen[name] if s not in ("succeeded", "failed")]
            assert working, seen[name]  # a progress bar while it worked...
            assert all(0 <= v <= 100 for v in working)
        assert all(v is None for s, v in seen[good_file.name] if s == "succeeded")  # ...not after

        # Play it in the page, and seek (Range requests on the signed link).
        audio = good.locator("audio")
        audio.evaluate("a => new Promise(ok => a.readyState >= 1 ? ok() : a.onloadedmetadata = ok)")
        assert (
            abs(audio.evaluate("a => a.duration") - (SAMPLES[good_file.name].audio_seconds or 0))
            <= 0.2
        )
        audio.evaluate("a => a.play()")
        page.wait_for_function("a => a.currentTime > 0.3", arg=audio.element_handle())
        audio.evaluate("a => { a.currentTime = 2; }")
        page.wait_for_function("a => a.currentTime >= 2 || a.ended", arg=audio.element_handle())

        # Download through the link.
        with page.expect_download() as download:
            good.get_by_role("link", name="Download").click()
        assert download.value.suggested_filename == "h264_aac.mp3"
        mp3 = tmp_path / "downloaded.mp3"
        download.value.save_as(mp3)
        assert inspect_audio(mp3).codec == "mp3"

        # Delete the failed one; the history is the same after a reload.
        bad.get_by_role("button", name="Delete").click()
        expect(bad).to_have_count(0)
        page.reload()
        expect(jobs.get_by_role("listitem")).to_have_count(1)
        expect(good.get_by_text("succeeded", exact=True)).to_be_visible()
        expect(good.get_by_role("link", name="Download")).to_be_visible()
        expect(good.get_by_role("button", name="Delete")).to_be_visible()

        # A phone's width: everything fits, nothing scrolls sideways.
        page.set_viewport_size({"width": 375, "height": 812})
        expect(good.get_by_role("button", name="Delete")).to_be_in_viewport()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        context.close()
        assert problems == []

    # The emailed link, fetched with no credentials at all, gives the same MP3.
    outbox = tmp_path / "var" / "outbox"
    wait_for(lambda: len(list(outbox.glob("*.eml"))) >= 2, 30, "two emails")
    bodies = [
        email.message_from_bytes(p.read_bytes()).get_payload(decode=True).decode()
        for p in outbox.glob("*.eml")
    ]
    [link] = [m.group(0) for b in bodies if (m := re.search(r"http://\S+/mp3/\S+", b))]
    emailed = requests.get(link, timeout=30)
    assert emailed.headers["Content-Type"] == "audio/mpeg"
    assert emailed.content == mp3.read_bytes()


def test_csrf_and_headers(site: str) -> None:
    """A session cookie alone changes nothing; the page's headers are strict."""
    http = requests.Session()
    body = {"email": "bob@example.com", "password": PASSWORD}
    assert http.post(f"{site}/api/v1/users", json=body, timeout=10).status_code == 201
    login = http.post(f"{site}/session", json=body, timeout=10)
    assert login.status_code == 200
    csrf = login.json()["csrf"]
    assert http.get(f"{site}/api/v1/jobs", timeout=10).status_code == 200  # reading needs none
    forged = http.delete(f"{site}/session", timeout=10)
    assert (forged.status_code, forged.json()["error"]["code"]) == (403, "csrf")
    wrong = http.delete(f"{site}/session", headers={"X-CSRF-Token": csrf + "x"}, timeout=10)
    assert wrong.status_code == 403
    other_site = http.delete(
        f"{site}/session",
        headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
        timeout=10,
    )
    assert other_site.status_code == 403
    cross_login = http.post(
        f"{site}/session", json=body, headers={"Origin": "https://evil.example"}, timeout=10
    )
    assert cross_login.status_code == 403
    assert http.delete(f"{site}/session", headers={"X-CSRF-Token": csrf}, timeout=10).ok
    assert http.get(f"{site}/session", timeout=10).json() == {"email": None}

    page = requests.get(site, timeout=10)
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in page.text  # nothing inline
    assert " style=" not in page.text
    api = requests.get(site, headers={"Accept": "application/json"}, timeout=10)
    assert api.json()["openapi"] == "/openapi.json"


def test_a_page_without_a_stream_polls(samples: dict[str, Path], tmp_path: Path) -> None:
    """A server with no thread to spare for a live stream (503 busy) still shows the job's
    progress and end: the page polls instead."""
    from playwright.sync_api import expect

    with (
        dev_stack(tmp_path / "var", tmp_path / "dev.log", VIDEO2MP3_LIVE_PAGES="0") as site,
        chromium() as browser,
    ):
        page = browser.new_page()
        refused: list[int] = []
        page.on(
            "response",
            lambda r: r.url.endswith("/api/v1/events") and refused.append(r.status),
        )
        page.goto(site)
        page.get_by_label("Email").fill("cy@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign up").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        page.get_by_label("Videos").set_input_files(samples["h264_aac.mp4"])
        job = page.get_by_role("list", name="Jobs").get_by_role("listitem")
        expect(job.get_by_text("succeeded", exact=True)).to_be_visible(timeout=60_000)
        expect(job.get_by_role("link", name="Download")).to_be_visible()
        assert refused
        assert set(refused) == {503}


# Records every status word and line of words each card shows, however briefly.
WATCH_WORDS = """() => {
  window.said = {};
  new MutationObserver(() => {
    for (const li of document.querySelectorAll('#jobs > li')) {
      const name = li.querySelector('.name').textContent;
      const now = [li.querySelector('.status').textContent, li.querySelector('.meta').textContent];
      const seen = (window.said[name] ??= []);
      if (String(seen.at(-1)) !== String(now)) seen.push(now);
    }
  }).observe(document.querySelector('#jobs'), {subtree: true, childList: true,
                                              attributes: true, characterData: true});
}"""
FULL = "Waiting — 2 of your videos are already converting; this one starts when one finishes"


def test_videos_past_the_limit_wait_their_turn(
    samples: dict[str, Path], media_dir: Path, tmp_path: Path
) -> None:
    """More videos than a person may convert at once: those past the limit wait and say why, a
    busy server (503) is waited for too, and every one converts; none is lost."""
    from playwright.sync_api import Route, expect

    long_audio = make_sample(LONG, media_dir)
    settings = {"VIDEO2MP3_MAX_ACTIVE_JOBS": "2", "VIDEO2MP3_ACTIVE_JOBS_RETRY_SECONDS": "1"}
    with (
        dev_stack(tmp_path / "var", tmp_path / "dev.log", **settings) as site,
        chromium() as browser,
    ):
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(site)
        page.get_by_label("Email").fill("dee@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign up").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        token = requests.post(f"{site}/login", auth=("dee@example.com", PASSWORD), timeout=10)
        fill_up(site, {"Authorization": f"Bearer {token.text}"}, long_audio)

        # The first upload meets a busy proxy in front of the server; the others, a full place.
        busy: list[str] = []

        def busy_once(route: Route) -> None:
            if route.request.method != "POST" or busy:
                route.fallback()
                return
            busy.append(route.request.url)
            route.fulfill(
                status=503,
                headers={"Retry-After": "1"},
                json={"error": {"code": "unavailable", "message": "the server is busy"}},
            )

        page.route("**/api/v1/jobs", busy_once)
        page.evaluate(WATCH_WORDS)
        names = ["h264_aac.mp4", "vp9_opus.webm", "surround_5_1.mkv"]
        page.get_by_label("Videos").set_input_files([samples[name] for name in names])
        jobs = page.get_by_role("list", name="Jobs")
        expect(jobs.get_by_text(FULL).first).to_be_visible(timeout=30_000)
        expect(page.get_by_role("status")).to_contain_text("already converting")
        for name in names:
            card = jobs.get_by_role("listitem").filter(has_text=name)
            expect(card.get_by_text("succeeded", exact=True)).to_be_visible(timeout=90_000)
        expect(jobs.get_by_role("listitem")).to_have_count(5)  # and the two that held the places
        said = page.evaluate("window.said")
        assert busy
        for name in names:
            assert "failed" not in [s for s, _ in said[name]], said[name]
            assert any(s == "waiting" and w for s, w in said[name]), said[name]
        everything = [w for name in names for _, w in said[name]]
        assert FULL in everything
        assert any(w.startswith("Waiting — the server is busy") for w in everything), said
        # The same video again is converted already: ready at once (201), not a failure.
        page.get_by_label("Videos").set_input_files(samples[names[0]])
        again = jobs.get_by_role("listitem").filter(has_text=names[0])
        expect(again.get_by_text("succeeded", exact=True)).to_have_count(2)
        expect(again.get_by_text("failed", exact=True)).to_have_count(0)
        refusals = re.compile(r"Failed to load resource: .* status of (429|503)\b")
        assert [p for p in problems if not refusals.match(p)] == [], problems
