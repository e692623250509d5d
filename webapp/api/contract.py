"""What each API route promises: `describe` names its request, its answers and its errors.

Put `@describe(...)` right under the route decorator::

    @bp.post("/users/jobs")
    @describe(body=JobInput, responses={201: JobDetailOut})
    @login_required
    def create_job(): ...

The OpenAPI document (webapp/api/openapi.py) is generated from these descriptions and
the pydantic models they name, and the same models shape the answers: whatever the view
returns for a status (a model, or a dict read through the model) is dumped by the model
the description gives for that status, so the document and the wire cannot drift apart.
A status the description does not list is a bug, raised as one. Errors are raised
(webapp.web.errors) and answered in the error shape; the statuses every route of a kind can
give are added for it (401 with a bearer token, 403 for admins, 400/413/415/422 with a
JSON body, 422 with a query), and `errors` adds the rest (404, 409, 429, ...).
tests/api/test_openapi.py fails for any /api route without a description.
"""

from dataclasses import dataclass
from dataclasses import field
from functools import wraps

from flask import Response
from pydantic import BaseModel

# What each error status means, for the document; `errors` may say more for one route.
ERROR_DESCRIPTIONS = {
    400: "The body is not valid JSON (`malformed_json`).",
    401: "No bearer token, or one that is invalid, expired or revoked.",
    403: "The token is valid but the account is not an admin.",
    404: "No such resource (another user's counts as none).",
    409: "The resource is not in a state that allows this.",
    413: "The body is larger than MAX_CONTENT_LENGTH.",
    415: "The body is not sent as `Content-Type: application/json`.",
    422: "Invalid input: `fields` maps each field to what is wrong with it.",
    429: "Too many requests: wait and try again.",
}


@dataclass(frozen=True)
class Raw:
    """An answer that is not JSON shaped by a model (an HTML page, the document itself)."""

    media_type: str
    schema: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Contract:
    """One route's description, kept on its view function as `__contract__`."""

    responses: dict  # status: (model or Raw, description or None)
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path: type[BaseModel] | None = None
    errors: dict = field(default_factory=dict)
    tag: str | None = None


class UndocumentedResponse(RuntimeError):
    """A view answered with a status or a shape its description does not list."""


def describe(*, responses, body=None, query=None, path=None, errors=(), tag=None):
    """Describe a route for the OpenAPI document and shape its answers with the models named.

    `responses` maps each status answered with a body of our own to a pydantic model (or
    `Raw`), or to `(model, description)`; `body`, `query` and `path` are the models of the
    JSON body, the query string and the path parameters; `errors` lists the error statuses
    particular to this route (a list, or a mapping of status to description), answered
    with the error shape.
    """
    if not isinstance(errors, dict):
        errors = {status: ERROR_DESCRIPTIONS[status] for status in errors}
    answers = {status: answer if isinstance(answer, tuple) else (answer, None) for status, answer in responses.items()}
    contract = Contract(responses=answers, body=body, query=query, path=path, errors=dict(errors), tag=tag)

    def decorate(view):
        @wraps(view)
        def shaped(*args, **kwargs):
            return shape(view(*args, **kwargs), contract.responses, view.__name__)

        shaped.__contract__ = contract
        return shaped

    return decorate


def shape(result, responses, name):
    """Dump a view's answer through the model its description gives for that status."""
    if isinstance(result, Response):
        return result
    body, status, headers = _unpack(result, responses)
    if status not in responses:
        raise UndocumentedResponse(f"{name} answered {status}, which its description does not list")
    declared, _description = responses[status]
    if isinstance(declared, Raw):
        return body, status, headers
    if not isinstance(body, declared):
        body = declared.model_validate(body)
    return body.model_dump(mode="json"), status, headers


def _unpack(result, responses):
    """(body, status, headers) from what a view returns; no status means its only success status."""
    headers = {}
    if isinstance(result, tuple):
        body, status, *rest = result
        if rest:
            headers = rest[0]
        return body, status, headers
    successes = [status for status in responses if 200 <= status < 300]
    status = successes[0] if len(successes) == 1 else 200
    return result, status, headers
