"""The ``video2mp3`` client commands (login, convert, jobs, get, rm): a terminal front end that
speaks only the public HTTP API, so it works against ``make run``, compose or a remote server."""
