"""The auth service's HTTP API on MySQL: sign-up, login, and the JWKS the gateway verifies with."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from flask.testing import FlaskClient

from video2mp3 import bootstrap
from video2mp3.auth.app import create_app
from video2mp3.auth.keys import generate
from video2mp3.health import Health
from video2mp3.settings import load


@pytest.fixture
def client(tmp_path: Path, mysql_database: str) -> FlaskClient:
    generate(tmp_path / "keys")
    settings = load(auth_db_url=mysql_database, jwt_key_dir=tmp_path / "keys")
    bootstrap.create_schemas(settings, "auth")
    return create_app(bootstrap.accounts(settings)).test_client()


def test_signup_login_and_jwks(client: FlaskClient) -> None:
    created = client.post("/users", json={"email": "ann@example.com", "password": "pw-123456"})
    assert created.status_code == 201
    assert created.get_json()["email"] == "ann@example.com"
    assert (
        client.post(
            "/users", json={"email": "ann@example.com", "password": "pw-123456"}
        ).status_code
        == 409
    )

    token = client.post("/login", auth=("ann@example.com", "pw-123456")).text
    jwks = client.get("/.well-known/jwks.json")
    assert jwks.cache_control.max_age == 300
    [key] = jwks.get_json()["keys"]
    assert (key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", "EdDSA")
    assert "d" not in key  # never the private part
    claims = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["EdDSA"],
        audience="video2mp3",
        issuer="video2mp3-auth",
    )
    assert claims["email"] == "ann@example.com"
    assert claims["exp"] - claims["iat"] == 3600


def test_wrong_credentials(client: FlaskClient) -> None:
    client.post("/users", json={"email": "ann@example.com", "password": "pw-123456"})
    response = client.post("/login", auth=("ann@example.com", "nope"))
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert client.post("/login").status_code == 401


def test_the_database_is_checked_beside_readiness(client: FlaskClient) -> None:
    health: Health = client.application.extensions["video2mp3.health"]
    health.check_dependencies()
    assert health.dependency_states() == {"database": "ok"}
    assert health.readiness() == {}
    assert client.get("/readyz").status_code == 404  # on the admin port only
