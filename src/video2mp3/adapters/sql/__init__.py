"""SQL adapters: the repositories of auth's users, the gateway's jobs and the notifier's
deliveries, on SQLAlchemy.

MySQL (PyMySQL) in production and SQLite embedded run the same code; ``engine`` holds the few
differences. Schemas are migrated by ``video2mp3.migrations``.
"""
