"""Signed download links: they open one MP3, expire, survive key rotation and resist tampering."""

from __future__ import annotations

from pathlib import Path

import pytest

from video2mp3.errors import Forbidden, NotFound, SettingsError
from video2mp3.signing import DownloadLinks, SecretRing, generate

NOW = 1_800_000_000.0


def links(folder: Path, ttl: int = 3600) -> DownloadLinks:
    return DownloadLinks(SecretRing.load(folder), ttl)


def test_a_token_opens_its_mp3_until_it_expires(tmp_path: Path) -> None:
    generate(tmp_path)
    signer = links(tmp_path, ttl=600)
    token = signer.token(7, "65a1.b/c+d", now=NOW)
    target = signer.open(token, now=NOW + 599)
    assert (target.owner_id, target.mp3_fid) == (7, "65a1.b/c+d")
    with pytest.raises(Forbidden) as expired:
        signer.open(token, now=NOW + 601)
    assert expired.value.code == "link_expired"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: "8" + t[1:],  # another owner
        lambda t: t.replace(t.split(".")[2], str(int(t.split(".")[2]) + 3600)),  # a later expiry
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # another MAC
        lambda t: t.rsplit(".", 1)[0],  # no MAC
        lambda t: "garbage",
        lambda t: "",
    ],
)
def test_a_changed_token_opens_nothing(tmp_path: Path, tamper: object) -> None:
    generate(tmp_path)
    signer = links(tmp_path)
    token = signer.token(7, "fid", now=NOW)
    with pytest.raises(NotFound):
        signer.open(tamper(token), now=NOW)  # type: ignore[operator]


def test_rotation_keeps_old_links_and_signs_with_the_new_key(tmp_path: Path) -> None:
    generate(tmp_path)
    old = links(tmp_path).token(7, "fid", now=NOW)
    generate(tmp_path)
    rotated = links(tmp_path)
    assert rotated.open(old, now=NOW).mp3_fid == "fid"
    new = rotated.token(7, "fid", now=NOW)
    assert new.split(".")[3] != old.split(".")[3]  # signed by the newest key
    for path in sorted(tmp_path.glob("*.key"))[:1]:
        path.unlink()  # the old key retired: its links die, the new ones live
    retired = links(tmp_path)
    assert retired.open(new, now=NOW).mp3_fid == "fid"
    with pytest.raises(NotFound):
        retired.open(old, now=NOW)


def test_another_ring_or_purpose_does_not_verify(tmp_path: Path) -> None:
    generate(tmp_path / "a")
    generate(tmp_path / "b")
    token = links(tmp_path / "a").token(7, "fid", now=NOW)
    with pytest.raises(NotFound):
        links(tmp_path / "b").open(token, now=NOW)
    ring = SecretRing.load(tmp_path / "a")
    assert ring.verify("csrf", "x", ring.sign("csrf", "x"))
    assert not ring.verify("download", "x", ring.sign("csrf", "x"))


def test_bad_key_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="VIDEO2MP3_LINK_KEY_DIR holds no"):
        SecretRing.load(tmp_path)
    (tmp_path / "a.key").write_text("zz")
    with pytest.raises(SettingsError, match=r"a\.key is not hex"):
        SecretRing.load(tmp_path)
    (tmp_path / "a.key").write_text("ab" * 8)
    with pytest.raises(SettingsError, match="shorter than 32 bytes"):
        SecretRing.load(tmp_path)
