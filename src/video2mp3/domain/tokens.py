"""The token contract between auth, which signs, and the gateway, which verifies."""

from __future__ import annotations

ALGORITHM = "EdDSA"  # Ed25519: small keys, fast verification, no algorithm confusion with RSA
ISSUER = "video2mp3-auth"
AUDIENCE = "video2mp3"
