"""A user's jobs through the API: every validation rule, listing, IDOR, cancel."""

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest


def later(seconds=3600):
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def job_payload(**changes):
    payload = {"to": "reader@example.com", "subject": "Hello", "body": "Body text", "send_at": later()}
    payload.update(changes)
    return payload


def test_create_job_returns_the_job_in_full(client, api):
    headers = api.user()
    response = client.post("/api/users/jobs", json=job_payload(to=["a@example.com", "b@example.com"]), headers=headers)
    assert response.status_code == 201
    job = response.json
    assert job["status"] == "PENDING"
    assert job["to"] == ["a@example.com", "b@example.com"]
    assert job["attempts"] == 0 and job["last_error"] is None and job["sent_at"] is None
    assert job["send_at"].endswith("Z") and job["created_at"].endswith("Z")
    me = client.get("/api/users/me", headers=headers).json
    assert job["owner_id"] == me["id"]
    for key in (
        "id",
        "owner_id",
        "to",
        "subject",
        "body",
        "send_at",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "updated_at",
        "sent_at",
    ):
        assert key in job


def test_send_at_with_an_offset_is_stored_in_utc(client, api):
    headers = api.user()
    year = datetime.now(UTC).year + 2
    response = client.post("/api/users/jobs", json=job_payload(send_at=f"{year}-06-01T09:30:00+02:00"), headers=headers)
    assert response.json["send_at"] == f"{year}-06-01T07:30:00.000Z"


def test_send_at_omitted_means_now(client, api):
    headers = api.user()
    before = datetime.now(UTC) - timedelta(seconds=1)
    response = client.post(
        "/api/users/jobs", json={"to": "x@example.com", "subject": "s", "body": "b"}, headers=headers
    )
    assert response.status_code == 201
    send_at = datetime.fromisoformat(response.json["send_at"])
    assert before <= send_at <= datetime.now(UTC) + timedelta(seconds=1)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"to": "not-an-email"}, "to.0"),
        ({"to": []}, "to"),
        ({"to": [f"r{i}@example.com" for i in range(51)]}, "to"),
        ({"to": 42}, "to"),
        ({"subject": ""}, "subject"),
        ({"subject": "x" * 999}, "subject"),
        ({"subject": "Hi\r\nBcc: victim@example.com"}, "subject"),
        ({"subject": ["list"]}, "subject"),
        ({"body": "x" * (100 * 1024 + 1)}, "body"),
        ({"body": None}, "body"),
        ({"send_at": "2030-13-01T10:00:00"}, "send_at"),  # no offset is a wall time (issue 8); month 13 is not
        ({"send_at": "tomorrow"}, "send_at"),
        ({"send_at": 1893456000}, "send_at"),
        ({"send_at": (datetime.now(UTC) - timedelta(minutes=2)).isoformat()}, "send_at"),
        ({"priority": "high"}, "priority"),
    ],
)
def test_invalid_jobs_are_refused_with_the_field_named(client, api, changes, field):
    headers = api.user()
    response = client.post("/api/users/jobs", json=job_payload(**changes), headers=headers)
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["fields"], response.json
    assert client.get("/api/users/jobs", headers=headers).json["total"] == 0


def test_limits_themselves_are_accepted(client, api):
    headers = api.user()
    payload = job_payload(
        to=[f"r{i}@example.com" for i in range(50)],
        subject="x" * 998,
        body="y" * 100 * 1024,
        send_at=(datetime.now(UTC) - timedelta(seconds=30)).isoformat(),
    )
    assert client.post("/api/users/jobs", json=payload, headers=headers).status_code == 201


def test_missing_fields_are_each_named(client, api):
    response = client.post("/api/users/jobs", json={}, headers=api.user())
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"to", "subject", "body"}


def test_a_huge_request_is_refused_with_json(client, api):
    response = client.post("/api/users/jobs", json=job_payload(body="z" * 2_000_000), headers=api.user())
    assert response.status_code == 413
    assert response.json["error"]["code"] == "request_entity_too_large"


def test_list_shows_only_my_jobs_newest_first_with_paging(client, api):
    mine, theirs = api.user(), api.user()
    for n in range(3):
        client.post("/api/users/jobs", json=job_payload(subject=f"mine {n}"), headers=mine)
    client.post("/api/users/jobs", json=job_payload(subject="theirs"), headers=theirs)
    page1 = client.get("/api/users/jobs?per_page=2", headers=mine).json
    assert page1["total"] == 3 and page1["page"] == 1 and page1["per_page"] == 2
    assert [job["subject"] for job in page1["items"]] == ["mine 2", "mine 1"]
    page2 = client.get("/api/users/jobs?per_page=2&page=2", headers=mine).json
    assert [job["subject"] for job in page2["items"]] == ["mine 0"]


def test_list_filters_by_status(client, api):
    headers = api.user()
    job = client.post("/api/users/jobs", json=job_payload(), headers=headers).json
    client.post("/api/users/jobs", json=job_payload(), headers=headers)
    client.post(f"/api/users/jobs/{job['id']}/cancel", headers=headers)
    cancelled = client.get("/api/users/jobs?status=CANCELLED", headers=headers).json
    assert [item["id"] for item in cancelled["items"]] == [job["id"]]
    assert client.get("/api/users/jobs?status=PENDING", headers=headers).json["total"] == 1


@pytest.mark.parametrize("query", ["per_page=0", "per_page=101", "page=0", "page=abc", "status=DONE"])
def test_bad_list_parameters_are_422(client, api, query):
    response = client.get(f"/api/users/jobs?{query}", headers=api.user())
    assert response.status_code == 422


def test_another_users_job_is_not_found_never_forbidden(client, api):
    owner, intruder = api.user(), api.user()
    job = client.post("/api/users/jobs", json=job_payload(), headers=owner).json
    assert client.get(f"/api/users/jobs/{job['id']}", headers=intruder).status_code == 404
    assert client.post(f"/api/users/jobs/{job['id']}/cancel", headers=intruder).status_code == 404
    assert client.get(f"/api/users/jobs/{job['id']}", headers=owner).json["status"] == "PENDING"


@pytest.mark.parametrize("job_id", ["nope", "000000000000000000000000", "x" * 500])
def test_bad_or_unknown_job_ids_are_404(client, api, job_id):
    response = client.get(f"/api/users/jobs/{job_id}", headers=api.user())
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_cancel_a_pending_job_then_cancel_again_is_409(client, api):
    headers = api.user()
    job = client.post("/api/users/jobs", json=job_payload(), headers=headers).json
    response = client.post(f"/api/users/jobs/{job['id']}/cancel", headers=headers)
    assert response.status_code == 200 and response.json["status"] == "CANCELLED"
    again = client.post(f"/api/users/jobs/{job['id']}/cancel", headers=headers)
    assert again.status_code == 409
