"""The auth service: users (argon2 password hashes in its own SQL database) and JWTs.

Tokens are signed with Ed25519 (EdDSA); the public keys are published as JWKS so the gateway
verifies tokens locally, without a round trip per request.
"""
