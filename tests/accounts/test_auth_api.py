"""Accounts through the API: register, log in, log out, revocation."""

import os
import uuid

import pytest
import redis
import requests


def test_register_returns_the_new_user_with_role_user(client):
    response = client.post("/api/auth/register", json={"email": "Ada@Example.com", "password": "long-enough"})
    assert response.status_code == 201
    assert response.json["email"] == "ada@example.com"
    assert response.json["role"] == "user"
    assert len(response.json["id"]) == 24


def test_register_twice_with_the_same_email_is_a_conflict(client, api):
    assert api.register("dup@example.com").status_code == 201
    response = api.register("DUP@example.com")
    assert response.status_code == 409
    assert response.json["error"]["fields"] == {"email": "is already registered"}


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"email": "not-an-email", "password": "long-enough"}, "email"),
        ({"email": "a@example.com", "password": "short"}, "password"),
        ({"email": "a@example.com"}, "password"),
        ({"email": "a@example.com", "password": 12345678}, "password"),
        ({"email": "a@example.com", "password": "long-enough", "role": "admin"}, "role"),
    ],
)
def test_register_rejects_bad_input_with_field_errors(client, payload, field):
    response = client.post("/api/auth/register", json=payload)
    assert response.status_code == 422
    assert field in response.json["error"]["fields"]
    assert response.json["error"]["code"] == "validation_failed"


def test_register_cannot_choose_its_own_role(client):
    client.post("/api/auth/register", json={"email": "sneaky@example.com", "password": "long-enough", "role": "admin"})
    response = client.post("/api/auth/login", json={"email": "sneaky@example.com", "password": "long-enough"})
    assert response.status_code == 401  # the account was never created


def test_login_returns_a_bearer_token(client, api):
    api.register("b@example.com")
    response = client.post("/api/auth/login", json={"email": "b@example.com", "password": "correct-horse-9"})
    assert response.status_code == 200
    assert response.json["token_type"] == "Bearer"
    assert response.json["expires_in"] == 3600
    me = client.get("/api/users/me", headers={"Authorization": f"Bearer {response.json['access_token']}"})
    assert me.json["email"] == "b@example.com"


def test_wrong_password_and_unknown_email_get_the_same_answer(client, api):
    api.register("c@example.com")
    wrong = client.post("/api/auth/login", json={"email": "c@example.com", "password": "wrong-password"})
    unknown = client.post("/api/auth/login", json={"email": "nobody@example.com", "password": "wrong-password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json


def test_logout_revokes_the_token_at_once(client, api):
    headers = api.user("leaving@example.com")
    assert client.post("/api/auth/logout", headers=headers).status_code == 200
    response = client.get("/api/users/me", headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "token_revoked"
    # A new login still works, with a new token; the old one stays dead.
    again = api.login("leaving@example.com")
    assert again != headers
    assert client.get("/api/users/me", headers=again).json["email"] == "leaving@example.com"
    assert client.get("/api/users/me", headers=headers).status_code == 401


def test_a_logout_is_kept_on_the_account_and_expired_ones_are_dropped_with_the_next(app, client, api):
    from datetime import timedelta

    from webapp.models import User
    from webapp.timeutil import utcnow

    first, second = api.user("twice@example.com"), api.login("twice@example.com")
    user = User.objects(email="twice@example.com").first()
    # A logout from long ago, of a token that has expired since: nothing needs it any more.
    User.objects(id=user.id).update_one(**{"set__revoked_tokens__0ld-0ne": utcnow() - timedelta(minutes=1)})

    assert client.post("/api/auth/logout", headers=first).status_code == 200
    assert client.post("/api/auth/logout", headers=second).status_code == 200

    revoked = User.objects(id=user.id).first().revoked_tokens
    assert len(revoked) == 2 and "0ld-0ne" not in revoked
    for headers in (first, second):
        assert client.get("/api/users/me", headers=headers).json["error"]["code"] == "token_revoked"


def test_a_token_issued_and_logged_out_before_the_upgrade_stays_revoked(app, client, api):
    """Earlier versions kept each logout as a RevokedToken document and issued tokens without the
    claim that says where to look: such a token is still checked there until it expires."""
    from datetime import UTC
    from datetime import datetime

    from flask_jwt_extended import create_access_token
    from flask_jwt_extended import decode_token

    from webapp.models import RevokedToken
    from webapp.models import User

    api.register("old-token@example.com")
    user = User.objects(email="old-token@example.com").first()
    with app.app_context():
        old, kept = create_access_token(identity=str(user.id)), create_access_token(identity=str(user.id))
        claims = decode_token(old)
    RevokedToken(jti=claims["jti"], expires_at=datetime.fromtimestamp(claims["exp"], UTC)).save()

    refused = client.get("/api/users/me", headers={"Authorization": f"Bearer {old}"})
    assert refused.status_code == 401 and refused.json["error"]["code"] == "token_revoked"
    assert client.get("/api/users/me", headers={"Authorization": f"Bearer {kept}"}).status_code == 200


@pytest.mark.faults
def test_a_revoked_token_stays_revoked_when_redis_restarts_empty(app, tmp_path):
    """A web process whose throttle and queue live on a throwaway Redis; Redis is restarted with
    nothing kept (no persistence), and the logged-out token is still refused: revocations are in
    MongoDB. Logging in again works against the fresh Redis."""
    from tests.support.faults import Fleet
    from tests.support.faults import RedisServer

    broker = RedisServer(tmp_path / "redis.log").start()
    fleet = Fleet({**os.environ, "REDIS_URL": broker.url, "HUEY_NAME": f"auth-{uuid.uuid4().hex[:8]}"}, tmp_path)
    try:
        web = fleet.web()
        account = {"email": "keep-out@example.com", "password": "correct-horse-9"}
        assert requests.post(f"{web}/api/auth/register", json=account, timeout=10).status_code == 201
        token = requests.post(f"{web}/api/auth/login", json=account, timeout=10).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert requests.post(f"{web}/api/auth/logout", headers=headers, timeout=10).status_code == 200
        assert redis.Redis.from_url(broker.url).dbsize() > 0  # the throttle counted there

        broker.stop()
        broker.start()
        assert redis.Redis.from_url(broker.url).dbsize() == 0  # everything Redis held is gone

        refused = requests.get(f"{web}/api/users/me", headers=headers, timeout=10)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_revoked"
        login = requests.post(f"{web}/api/auth/login", json=account, timeout=10)
        assert login.status_code == 200
        fresh = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert requests.get(f"{web}/api/users/me", headers=fresh, timeout=10).json()["email"] == account["email"]
    finally:
        fleet.stop()
        broker.stop()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic dXNlcjpwYXNz"}])
def test_protected_routes_need_a_valid_token(client, headers):
    response = client.get("/api/users/me", headers=headers)
    assert response.status_code == 401
    assert set(response.json["error"]) == {"code", "message", "fields"}


def test_malformed_json_is_a_400_not_a_500(client):
    response = client.post("/api/auth/login", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "malformed_json"


def test_non_json_body_is_refused_clearly(client):
    response = client.post("/api/auth/register", data="email=a@example.com", content_type="text/plain")
    assert response.status_code == 415


def test_a_json_array_body_is_a_422(client):
    response = client.post("/api/auth/register", json=["a@example.com", "long-enough"])
    assert response.status_code == 422


def test_unknown_api_path_answers_json(client):
    response = client.get("/api/nope")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_health_says_ok_when_the_database_answers(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    # ok, or degraded when no consumer is alive or delivery is paused (tests/monitoring/test_status_figures.py)
    assert response.json["database"] == "ok" and response.json["status"] in {"ok", "degraded"}


def test_registration_is_throttled_per_ip_with_a_json_429(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "SIGNUP_RATE_LIMIT", "2 per minute")
    ip = f"10.99.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"  # a fresh bucket per run
    statuses = [
        client.post(
            "/api/auth/register",
            json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "long-enough"},
            environ_base={"REMOTE_ADDR": ip},
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [201, 201, 429]
    refused = client.post(
        "/api/auth/register",
        json={"email": "late@example.com", "password": "long-enough"},
        environ_base={"REMOTE_ADDR": ip},
    )
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "too_many_requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
