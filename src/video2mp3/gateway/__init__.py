"""The gateway: the public HTTP API, the jobs table, the blobs, and the outbox to the bus.

Uploads stream into the blob store; the job row and its ``conversion.requested`` message are
written in one SQL transaction (the outbox) and relayed to the bus, so they never drift apart.
Converter events come back through ``tracker`` and are folded into the jobs idempotently.
"""
