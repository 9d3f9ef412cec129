"""The client's subcommands of ``video2mp3``: login, logout, convert, jobs, get and rm.

``add_commands`` registers them on the main parser; each sets ``run`` to its handler, which
returns the exit code: 0 on success, 1 when something failed (one line saying what), 2 for
usage errors (argparse's own). The server and token come from ``config``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from video2mp3.client import config
from video2mp3.client.api import Api
from video2mp3.client.convert import add_option_flags, check_jobs, chosen_options, convert
from video2mp3.client.errors import ClientError

Handler = Callable[[argparse.Namespace], int]


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def command(name: str, help_text: str, run: Handler) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        parser.add_argument("--server", help="the server's URL (default: stored at login)")
        parser.set_defaults(run=run, parser=parser)
        return parser

    login_cmd = command("login", "log in to a server and remember the token", login)
    login_cmd.add_argument("--email")
    login_cmd.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    command("logout", "forget the stored token", logout)
    convert_cmd = command("convert", "convert videos to MP3s on the server", _convert)
    convert_cmd.add_argument("files", nargs="+", metavar="FILE")
    convert_cmd.add_argument(
        "-o", "--output", type=Path, help="save the MP3s here (created if missing)"
    )
    convert_cmd.add_argument("--jobs", type=check_jobs, default=2, help="files at once (default 2)")
    convert_cmd.add_argument("--force", action="store_true", help="overwrite existing MP3s")
    convert_cmd.add_argument("--json", action="store_true", help="one JSON object per event")
    add_option_flags(convert_cmd)
    jobs_cmd = command("jobs", "list your jobs, newest first", jobs)
    jobs_cmd.add_argument("--json", action="store_true", help="one JSON object per job")
    get_cmd = command("get", "download a job's MP3", get)
    get_cmd.add_argument("id")
    get_cmd.add_argument(
        "-o", "--output", type=Path, default=Path("."), help="save it here (created if missing)"
    )
    get_cmd.add_argument("--force", action="store_true", help="overwrite an existing file")
    rm_cmd = command("rm", "delete a job and its files", rm)
    rm_cmd.add_argument("id")


def run(args: argparse.Namespace) -> int:
    """Run a client command, turning every expected failure into one line and exit code 1."""
    handler: Handler = args.run
    try:
        return handler(args)
    except ClientError as exc:
        print(f"video2mp3: {exc.message} ({exc.code})", file=sys.stderr)
        return 1


def _session(args: argparse.Namespace) -> Api:
    stored = config.load(config.config_file())
    server = config.server_of(stored, args.server)
    if not stored.token:
        raise ClientError("not_logged_in", "not logged in: run 'video2mp3 login' first")
    return Api(server, stored.token)


def login(args: argparse.Namespace) -> int:
    path = config.config_file()
    server = config.server_of(config.load(path), args.server)
    email = args.email
    if args.password_stdin:
        if not email:
            args.parser.error("--password-stdin needs --email")
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        email = email or input("Email: ").strip()
        password = getpass.getpass("Password: ")
    api = Api(server)
    try:
        token = api.login(email, password)
    finally:
        api.close()
    config.save(path, config.Config(server=server, token=token))
    print(f"logged in to {server} as {email}")
    return 0


def logout(args: argparse.Namespace) -> int:
    path = config.config_file()
    stored = config.load(path)
    if path.exists():
        config.save(path, config.Config(server=stored.server, token=None))
    print("logged out")
    return 0


def _convert(args: argparse.Namespace) -> int:
    options = chosen_options(args, args.parser)
    if args.output is not None:
        _check_folder(args)
    api = _session(args)
    try:
        return convert(api, args, options)
    finally:
        api.close()


def _check_folder(args: argparse.Namespace) -> None:
    """A usage error when ``-o`` names something that is not a folder; a missing folder is
    created (with its parents) when the first MP3 is saved in it."""
    if args.output.exists() and not args.output.is_dir():
        args.parser.error(f"{args.output} is not a directory")


def jobs(args: argparse.Namespace) -> int:
    api = _session(args)
    try:
        items = api.jobs()
    finally:
        api.close()
    if args.json:
        for job in items:
            print(json.dumps(job))
        return 0
    table = Table("id", "status", "progress", "file", "created", box=None)
    for job in items:
        error = f" ({job['error']['code']})" if job.get("error") else ""
        table.add_row(
            job["id"],
            job["status"] + error,
            f"{job['progress'] * 100:.0f}%",
            job["filename"],
            job["created_at"],
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    return 0


def get(args: argparse.Namespace) -> int:
    _check_folder(args)
    api = _session(args)
    try:
        path = api.download(args.id, args.output, force=args.force)
    finally:
        api.close()
    print(path)
    return 0


def rm(args: argparse.Namespace) -> int:
    api = _session(args)
    try:
        api.delete(args.id)
    finally:
        api.close()
    print(f"deleted {args.id}")
    return 0
