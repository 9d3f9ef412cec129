"""Text from users made safe to put on one line: a file name, a mail header, an HTTP header.

Python's mail and HTTP libraries refuse, or worse pass on, header values with CR, LF or the
other characters that some parsers take as line breaks (U+2028, U+2029, NEL, VT, FF); format
characters such as U+202E (right-to-left override) make a name display as something it is not.
"""

from __future__ import annotations

import unicodedata

# Line and paragraph separators, and control characters (C0, DEL, C1): read as breaks by some.
_BREAKS = {"Zl", "Zp", "Cc"}
# Format (bidi overrides, zero-width), surrogate, private-use and unassigned code points.
_INVISIBLE = {"Cf", "Cs", "Co", "Cn"}


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` with breaks and control characters as spaces, invisible ones dropped, trimmed."""
    kept = "".join(
        " " if category in _BREAKS else c
        for c in text
        if (category := unicodedata.category(c)) not in _INVISIBLE
    )
    cleaned = " ".join(kept.split())
    return cleaned[:limit].strip() if limit else cleaned
