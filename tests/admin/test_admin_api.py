"""The admin API: everyone's jobs, users, roles, and the 403s around them."""

from datetime import UTC
from datetime import datetime
from datetime import timedelta


def next_year():
    return (datetime.now(UTC) + timedelta(days=365)).isoformat()


def make_job(client, headers, subject="s"):
    payload = {"to": "r@example.com", "subject": subject, "body": "b", "send_at": next_year()}
    return client.post("/api/users/jobs", json=payload, headers=headers).json


def test_non_admins_get_403_on_every_admin_route(client, api):
    headers = api.user()
    me = client.get("/api/users/me", headers=headers).json
    for method, path in [
        ("get", "/api/admin/jobs"),
        ("get", "/api/admin/users"),
        ("patch", f"/api/admin/users/{me['id']}/role"),
        ("post", "/api/admin/jobs/000000000000000000000000/retry"),
    ]:
        response = getattr(client, method)(path, headers=headers, json={"role": "admin"})
        assert response.status_code == 403, path
        assert response.json["error"]["code"] == "forbidden"
    assert client.get("/api/users/me", headers=headers).json["role"] == "user"


def test_admin_sees_all_users_jobs_and_filters_them(client, api):
    alice, bob, admin = api.user("alice@example.com"), api.user("bob@example.com"), api.admin()
    make_job(client, alice, "from alice")
    job = make_job(client, bob, "from bob")
    client.post(f"/api/users/jobs/{job['id']}/cancel", headers=bob)
    everything = client.get("/api/admin/jobs", headers=admin).json
    assert {item["subject"] for item in everything["items"]} == {"from alice", "from bob"}
    assert everything["counts"]["PENDING"] == 1 and everything["counts"]["CANCELLED"] == 1
    by_owner = client.get("/api/admin/jobs?owner=alice@example.com", headers=admin).json
    assert [item["subject"] for item in by_owner["items"]] == ["from alice"]
    by_status = client.get("/api/admin/jobs?status=CANCELLED", headers=admin).json
    assert [item["subject"] for item in by_status["items"]] == ["from bob"]
    assert client.get("/api/admin/jobs?owner=nobody@example.com", headers=admin).json["total"] == 0
    assert client.get(f"/api/admin/jobs/{job['id']}", headers=admin).json["status"] == "CANCELLED"


def test_admin_lists_users_and_changes_roles(client, api):
    admin = api.admin("root@example.com")
    user_headers = api.user("carol@example.com")
    users = client.get("/api/admin/users?per_page=10", headers=admin).json
    carol = next(user for user in users["items"] if user["email"] == "carol@example.com")
    assert set(carol) >= {"id", "email", "role", "created_at"}
    response = client.patch(f"/api/admin/users/{carol['id']}/role", json={"role": "admin"}, headers=admin)
    assert response.status_code == 200 and response.json["role"] == "admin"
    # The promotion applies to carol's existing token at once.
    assert client.get("/api/admin/users", headers=user_headers).status_code == 200


def test_the_last_admin_cannot_be_demoted(client, api):
    admin = api.admin("only@example.com")
    me = client.get("/api/users/me", headers=admin).json
    response = client.patch(f"/api/admin/users/{me['id']}/role", json={"role": "user"}, headers=admin)
    assert response.status_code == 409
    assert client.get("/api/users/me", headers=admin).json["role"] == "admin"


def test_role_change_validates_input(client, api):
    admin = api.admin()
    me = client.get("/api/users/me", headers=admin).json
    bad_role = client.patch(f"/api/admin/users/{me['id']}/role", json={"role": "root"}, headers=admin)
    assert bad_role.status_code == 422
    unknown = client.patch("/api/admin/users/000000000000000000000000/role", json={"role": "user"}, headers=admin)
    assert unknown.status_code == 404


def test_create_admin_command_creates_then_promotes(app, client, api):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-admin", "ops@example.com"], env={"ADMIN_PASSWORD": "ops-password-1"})
    assert result.exit_code == 0, result.output
    headers = api.login("ops@example.com", "ops-password-1")
    assert client.get("/api/admin/users", headers=headers).status_code == 200
    api.register("dave@example.com")
    result = runner.invoke(args=["create-admin", "dave@example.com"])
    assert result.exit_code == 0 and "dave@example.com is an admin" in result.output
