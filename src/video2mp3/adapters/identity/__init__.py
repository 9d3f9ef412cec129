"""Identity adapters: ``HTTPIdentity`` (the auth service over HTTP) and ``InProcessIdentity``."""
