"""The notifier: emails the owner when a conversion succeeds or fails. It owns no data."""
