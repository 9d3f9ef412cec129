"""``video2mp3 admin``: commands for an operator, run where the gateway's settings are.

``video2mp3 admin usage`` lists what each user stores (videos still kept, MP3s) and how many of
their jobs wait or convert: the figures the quotas (``VIDEO2MP3_QUOTA_BYTES``,
``VIDEO2MP3_MAX_ACTIVE_JOBS``) are checked against. ``--json`` prints one object per user.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from video2mp3.settings import Settings

COLUMNS = ("owner_id", "email", "jobs", "active_jobs", "video_bytes", "mp3_bytes", "stored_bytes")


def add_commands(commands: Any) -> None:
    """Register ``admin`` and its subcommands on the CLI's subparsers."""
    admin = commands.add_parser("admin", help="operator commands (gateway settings)")
    actions = admin.add_subparsers(dest="admin_command", required=True)
    usage = actions.add_parser("usage", help="what each user stores and has running")
    usage.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from video2mp3 import bootstrap  # here: the client's commands need none of the server

    rows = [
        {**dataclasses.asdict(u), "stored_bytes": u.stored_bytes}
        for u in bootstrap.jobs(settings).usage()
    ]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    table = [COLUMNS, *[tuple(str(row[c]) for c in COLUMNS) for row in rows]]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print(
            "  ".join(
                cell.ljust(w) if i == 1 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
    return 0
