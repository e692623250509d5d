"""The API describes itself: GET /api/openapi.json (OpenAPI 3.1) names every /api route, its
errors and the shape of every answer, and /api/docs shows it in a browser under our CSP.

The fuzz test (tests/api/test_fuzz_api.py) attacks the API from this document; here the document
itself is checked, real answers are held to it, and the regressions the fuzzer found stay fixed.
"""

import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from playwright.sync_api import expect
from pydantic import ValidationError

from tests.support.browser import screenshot
from webapp.web.security_headers import CONTENT_SECURITY_POLICY

PROJECT_ROOT = Path(__file__).resolve().parents[2]
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
ERROR_REF = "#/components/schemas/ErrorOut"


@pytest.fixture()
def document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.json


def openapi_path(rule):
    """`/api/users/jobs/<job_id>` (werkzeug) as `/api/users/jobs/{job_id}` (OpenAPI)."""
    return re.sub(r"<(?:[^<>]*:)?([^<>:]+)>", r"{\1}", rule)


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def answer_schema(document, method, path, status):
    """A validator for the document's schema of this answer (refs resolved inside the document)."""
    response = document["paths"][path][method.lower()]["responses"].get(str(status))
    assert response is not None, f"{method} {path} answered {status}, which the document does not list"
    schema = response["content"]["application/json"]["schema"]
    return Draft202012Validator(
        {**schema, "components": document["components"]}, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def assert_documented(document, method, path, response):
    """The answer's status is listed for the operation and its body matches that schema."""
    assert response.mimetype == "application/json"
    errors = sorted(answer_schema(document, method, path, response.status_code).iter_errors(response.json), key=str)
    assert not errors, f"{method} {path} -> {response.status_code}: {[error.message for error in errors]}"


# --- the document ---------------------------------------------------------------------------------------


def test_every_api_route_is_in_the_document_and_nothing_else(app, document):
    routes = {
        (method, openapi_path(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods - IMPLICIT_METHODS
    }
    documented = {(method, path) for method, path, _operation in operations(document)}
    missing = sorted(routes - documented)
    assert not missing, (
        "routes the document does not describe: put @describe(...) (webapp/api/contract.py) "
        f"right under their route decorator: {missing}"
    )
    assert not sorted(documented - routes), "the document describes routes that do not exist"


def test_the_document_is_valid_openapi_3_1_and_public(client, document):
    assert document["openapi"] == "3.1.0"
    validate_openapi(document)
    assert client.get("/api/openapi.json").status_code == 200  # no token needed to read it


def test_bearer_auth_is_a_security_scheme_and_every_error_has_the_error_shape(document):
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    error = document["components"]["schemas"]["ErrorOut"]
    assert error["required"] == ["error"] and error["additionalProperties"] is False
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert sorted(detail["required"]) == ["code", "fields", "message"]
    for method, path, operation in operations(document):
        label = f"{method} {path}"
        assert operation["summary"], label
        responses = operation["responses"]
        for status, response in responses.items():
            if status.startswith("4"):
                assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}, (label, status)
        if operation.get("security"):
            assert operation["security"] == [{"bearerAuth": []}] and "401" in responses, label
        if path.startswith("/api/admin/"):
            assert operation.get("security") and "403" in responses, label
        if "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= set(responses), label
        if any(parameter["in"] == "query" for parameter in operation.get("parameters", ())):
            assert "422" in responses, label
        if "{" in path:
            assert "404" in responses, label
        assert any(status.startswith("2") for status in responses), label
    for path in ("/api/auth/login", "/api/auth/register"):
        assert "429" in document["paths"][path]["post"]["responses"], f"{path} is throttled"


def test_request_bodies_are_the_validation_models(document):
    """The body schemas are generated from webapp/services/validation.py's models, not written twice."""
    from webapp.services.validation import JobInput

    body = document["paths"]["/api/users/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/JobInput"}
    schema = document["components"]["schemas"]["JobInput"]
    assert set(schema["properties"]) == set(JobInput.model_fields)
    assert schema["additionalProperties"] is False and sorted(schema["required"]) == ["body", "subject", "to"]
    assert schema["properties"]["subject"]["maxLength"] == 998


# --- real answers, held to the document -----------------------------------------------------------------


def later(days=1):
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def test_real_answers_match_the_document(client, api, document):
    user = api.user()
    admin = api.admin()
    created = client.post(
        "/api/users/jobs",
        headers=user,
        json={
            "to": ["Ada Lovelace <ada@example.com>", "bob@bücher.example"],
            "subject": "Hello",
            "body": "Hi.",
            "send_at": later(),
        },
    )
    assert_documented(document, "POST", "/api/users/jobs", created)
    job_id = created.json["id"]
    me = client.get("/api/users/me", headers=user)
    calls = [
        ("GET", "/api/users/me", "/api/users/me", user, None),
        ("GET", "/api/users/jobs", "/api/users/jobs?status=PENDING", user, None),
        ("GET", "/api/users/jobs/{job_id}", f"/api/users/jobs/{job_id}", user, None),
        ("GET", "/api/admin/jobs", "/api/admin/jobs", admin, None),
        ("GET", "/api/admin/jobs/{job_id}", f"/api/admin/jobs/{job_id}", admin, None),
        ("GET", "/api/admin/users", "/api/admin/users", admin, None),
        ("PATCH", "/api/admin/users/{user_id}/role", f"/api/admin/users/{me.json['id']}/role", admin, {"role": "user"}),
        ("GET", "/api/admin/stats", "/api/admin/stats", admin, None),
        ("GET", "/api/admin/delivery", "/api/admin/delivery", admin, None),
        ("GET", "/api/health", "/api/health", None, None),
        ("POST", "/api/users/jobs/{job_id}/cancel", f"/api/users/jobs/{job_id}/cancel", user, None),
        # the errors: 409, 404, 403, 401, 422, 400 and 415
        ("POST", "/api/users/jobs/{job_id}/cancel", f"/api/users/jobs/{job_id}/cancel", user, None),
        ("GET", "/api/users/jobs/{job_id}", "/api/users/jobs/6650c0ffee0ddba11ad0be15", user, None),
        ("GET", "/api/admin/jobs", "/api/admin/jobs", user, None),
        ("GET", "/api/users/me", "/api/users/me", {"Authorization": "Bearer not-a-token"}, None),
        ("GET", "/api/users/jobs", "/api/users/jobs?per_page=101", user, None),
        ("POST", "/api/users/jobs", "/api/users/jobs", user, {"to": [], "subject": "", "body": 1}),
    ]
    seen = set()
    for method, template, url, headers, body in calls:
        response = client.open(url, method=method, headers=headers or {}, json=body)
        assert_documented(document, method, template, response)
        seen.add(response.status_code)
    malformed = client.post("/api/users/jobs", headers={**user, "Content-Type": "application/json"}, data="{nope")
    assert_documented(document, "POST", "/api/users/jobs", malformed)
    form = client.post("/api/users/jobs", headers=user, data={"to": "ada@example.com"})
    assert_documented(document, "POST", "/api/users/jobs", form)
    seen |= {malformed.status_code, form.status_code}
    assert seen == {200, 400, 401, 403, 404, 409, 415, 422}
    login = client.post("/api/auth/login", json={"email": "nobody@example.com", "password": "x"})
    assert_documented(document, "POST", "/api/auth/login", login)
    assert login.status_code == 401


def test_a_429_matches_the_document_with_its_retry_after(app, client, api, document, monkeypatch):
    monkeypatch.setitem(app.config, "JOB_CREATE_RATE_LIMIT", "1 per minute")
    user = api.user()
    payload = {"to": "ada@example.com", "subject": "Hello", "body": "Hi.", "send_at": later()}
    assert client.post("/api/users/jobs", headers=user, json=payload).status_code == 201
    refused = client.post("/api/users/jobs", headers=user, json=payload)
    assert refused.status_code == 429
    assert_documented(document, "POST", "/api/users/jobs", refused)
    header = document["paths"]["/api/users/jobs"]["post"]["responses"]["429"]["headers"]["Retry-After"]
    assert header["required"] and Draft202012Validator(header["schema"]).is_valid(int(refused.headers["Retry-After"]))


# --- query strings: the documented bounds are the enforced ones -------------------------------------------


@pytest.mark.parametrize("path", ["/api/users/jobs", "/api/admin/jobs", "/api/admin/users"])
def test_documented_query_bounds_are_enforced_at_their_edges(client, api, document, path):
    headers = api.admin() if path.startswith("/api/admin/") else api.user()
    parameters = {parameter["name"]: parameter for parameter in document["paths"][path]["get"]["parameters"]}

    def status(**query):
        return client.get(path, headers=headers, query_string=query).status_code

    for name in ("page", "per_page"):
        schema = parameters[name]["schema"]
        low, high = schema["minimum"], schema["maximum"]
        assert (status(**{name: low}), status(**{name: high})) == (200, 200), name
        assert (status(**{name: low - 1}), status(**{name: high + 1})) == (422, 422), name
        assert status(**{name: "two"}) == 422
    if "status" in parameters:
        for value in parameters["status"]["schema"]["enum"]:
            assert status(status=value) == 200, value
        assert status(status="SENT") == 422
    # An empty value is an absent one, and the document says so.
    for name, parameter in parameters.items():
        assert parameter["allowEmptyValue"] is True, name
        assert status(**{name: ""}) == 200, name


def test_a_page_written_with_a_zero_fraction_is_that_page(client, api):
    """Fuzzer finding: `page=2.0` is an integer to JSON Schema and the document, but was a 422."""
    headers = api.user()
    assert client.get("/api/users/jobs?page=2.0&per_page=1e1", headers=headers).json["page"] == 2
    half = client.get("/api/users/jobs?page=2.5", headers=headers)
    assert half.status_code == 422 and half.json["error"]["fields"] == {"page": "must be a whole number"}
    huge = client.get("/api/users/jobs?page=1e999999999", headers=headers)
    assert huge.json["error"]["fields"] == {"page": "must be between 1 and 100000"}


def test_an_unknown_audit_action_is_refused_whoever_the_actor(client, api):
    """Fuzzer finding: `action=bogus` was a 200 with no entries when `actor` matched no one."""
    response = client.get("/api/admin/audit?actor=not-an-id&action=bogus", headers=api.admin())
    assert response.status_code == 422 and set(response.json["error"]["fields"]) == {"action"}


def test_a_405_names_the_methods_the_route_takes(client, api):
    """Fuzzer finding: a 405 came without its `Allow` header (RFC 9110), on the API and the pages."""
    response = client.delete("/api/users/me", headers=api.user())
    assert response.status_code == 405
    assert {method.strip() for method in response.headers["Allow"].split(",")} >= {"GET"}
    assert response.json["error"]["code"] == "method_not_allowed"
    page = client.put("/signup")
    assert page.status_code == 405 and "POST" in page.headers["Allow"]


# --- the descriptions shape the answers -----------------------------------------------------------------


def test_an_answer_with_a_status_or_a_field_its_description_does_not_list_is_refused():
    from webapp.api.contract import UndocumentedResponse
    from webapp.api.contract import shape
    from webapp.api.schemas import MessageOut

    responses = {200: (MessageOut, None)}
    assert shape({"message": "ok"}, responses, "view") == ({"message": "ok"}, 200, {})
    with pytest.raises(UndocumentedResponse):
        shape(({"message": "made"}, 201), responses, "view")
    with pytest.raises(ValidationError):
        shape({"message": "ok", "secret": "leaked"}, responses, "view")


# --- the page -----------------------------------------------------------------------------------------------


def test_the_docs_page_loads_only_our_own_files(client):
    response = client.get("/api/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    html = response.get_data(as_text=True)
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="/static/' in attributes and not body.strip() for attributes, body in scripts)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert not [url for url in assets if re.match(r"(https?:)?//", url)], "a file from another site"
    for url in assets:
        if url.startswith("/static/"):
            with client.get(url) as asset:  # a file answer holds the file open until closed
                assert asset.status_code == 200, url
    vendored = PROJECT_ROOT / "webapp" / "static" / "vendor" / "swagger-ui-5.35.0"
    assert (vendored / "LICENSE").read_text().startswith("\n                                 Apache License")
    assert "swagger-ui-dist@5.35.0" in (PROJECT_ROOT / "webapp" / "static" / "vendor" / "README.md").read_text()


def test_the_docs_page_shows_every_operation_in_chromium_under_our_csp(open_browser, client):
    document = client.get("/api/openapi.json").json
    page = open_browser()
    violations = []
    page.on("console", lambda message: message.text.startswith("CSP ") and violations.append(message.text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', event => "
        "console.log('CSP ' + event.violatedDirective + ' ' + event.blockedURI))"
    )
    page.goto("/api/docs")
    blocks = page.locator(".opblock")
    expect(blocks).to_have_count(sum(1 for _operation in operations(document)))
    shown = {
        (
            block.locator(".opblock-summary-method").inner_text(),
            block.locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for block in blocks.all()
    }
    assert shown == {(method, path) for method, path, _operation in operations(document)}
    screenshot(page, "api-docs", full_page=False)

    # An operation opens with the document's example, and "Try it out" calls the API from the page.
    create = page.locator("#operations-Jobs-create_job")
    create.locator(".opblock-summary").click()
    expect(create.locator(".body-param__example")).to_contain_text("Bob <bob@example.com>")
    health = page.locator("#operations-Service-health")
    health.locator(".opblock-summary").click()
    health.get_by_role("button", name="Try it out").click()
    health.get_by_role("button", name="Execute").click()
    expect(health.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")
    assert violations == []

    # The listener does hear a violation: an inline script is refused, and said so.
    page.evaluate("document.body.appendChild(Object.assign(document.createElement('script'), {text: '1'}))")
    for _ in range(50):
        if violations:
            break
        page.wait_for_timeout(100)
    assert violations and "script-src" in violations[0], violations
