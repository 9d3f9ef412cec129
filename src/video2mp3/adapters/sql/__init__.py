"""SQL adapters: the repositories of auth's users and the gateway's jobs, on SQLAlchemy.

MySQL (PyMySQL) in production and SQLite embedded run the same code; ``engine`` holds the few
differences. Schemas are migrated by ``video2mp3.migrations``.
"""
