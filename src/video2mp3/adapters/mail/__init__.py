"""Mail adapters: ``SMTPMailer`` (a real mail server) and ``OutboxMailer`` (a folder, for dev)."""
