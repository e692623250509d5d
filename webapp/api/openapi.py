"""The OpenAPI 3.1 document of the API, generated from the routes' descriptions.

Every route under /api carries a `describe(...)` (webapp/api/contract.py) naming its pydantic
models; this module walks the app's URL map and turns them into one document. pydantic's
JSON Schema (draft 2020-12) is OpenAPI 3.1's own dialect, so the models' schemas go into
`components/schemas` as they are. The document is built once per app, on first use.
"""

import inspect
import re

from pydantic.json_schema import models_json_schema

from webapp.api.contract import ERROR_DESCRIPTIONS
from webapp.api.contract import Raw
from webapp.api.schemas import ErrorOut

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
REF_TEMPLATE = "#/components/schemas/{model}"
SECURITY_SCHEME = "bearerAuth"
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})
# The tag of a route without one, by the first path segment after /api.
TAGS = {"auth": "Account", "users": "Jobs", "admin": "Admin"}
DEFAULT_TAG = "Service"
# Every 429 says when to come back (webapp/web/errors.py).
RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
# A werkzeug rule argument, `<name>` or `<converter(args):name>`.
_RULE_ARGUMENT = re.compile(r"<(?:[^<>]*:)?([^<>:]+)>")
INFO_DESCRIPTION = """\
Schedule email for later and follow its delivery.

Get a bearer token from `POST /api/auth/login` and send it as `Authorization: Bearer <token>`.
Every error is JSON, `{"error": {"code", "message", "fields"}}`, with a 4xx status; `fields`
maps each invalid field to a message (422). Datetimes are ISO-8601 in UTC with a `Z`.
"""


def api_rules(app):
    """The (rule, method) pairs of every route under /api, HEAD and OPTIONS aside."""
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in sorted(rule.methods - IMPLICIT_METHODS):
            yield rule, method


def openapi_document(app):
    """The document for `app`, built on first use and kept on the app."""
    document = app.extensions.get("openapi_document")
    if document is None:
        document = app.extensions["openapi_document"] = build_document(app)
    return document


def build_document(app):
    """Build the OpenAPI 3.1 document from the described routes of `app`."""
    operations = []
    for rule, method in api_rules(app):
        view = app.view_functions[rule.endpoint]
        contract = getattr(view, "__contract__", None)
        if contract is not None:
            operations.append((rule, method, view, contract))
    refs, definitions = models_json_schema(_models(operations), ref_template=REF_TEMPLATE)
    paths = {}
    for rule, method, view, contract in operations:
        path = _openapi_path(rule)
        paths.setdefault(path, {})[method.lower()] = _operation(rule, view, contract, refs)
    tags = sorted({operation["tags"][0] for item in paths.values() for operation in item.values()})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "mailjobs API", "version": API_VERSION, "description": INFO_DESCRIPTION},
        "tags": [{"name": name} for name in tags],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A token from `POST /api/auth/login`.",
                }
            },
        },
    }


def _models(operations):
    """Every model the document refers to, with the JSON Schema mode it is read in."""
    models = {(ErrorOut, "serialization")}
    for _rule, _method, _view, contract in operations:
        if contract.body is not None:
            models.add((contract.body, "validation"))
        for answer, _description in contract.responses.values():
            if not isinstance(answer, Raw):
                models.add((answer, "serialization"))
    return sorted(models, key=lambda pair: (pair[0].__name__, pair[1]))


def _openapi_path(rule):
    """`/api/users/jobs/<job_id>` (or `<int:n>`) as `/api/users/jobs/{job_id}`."""
    return _RULE_ARGUMENT.sub(r"{\1}", rule.rule)


def _operation(rule, view, contract, refs):
    summary, _, description = (inspect.getdoc(view) or "").partition("\n")
    operation = {
        "operationId": rule.endpoint.rpartition(".")[2],
        "summary": summary.strip(),
        "tags": [contract.tag or TAGS.get(rule.rule.split("/")[2], DEFAULT_TAG)],
    }
    if description.strip():
        operation["description"] = description.strip()
    parameters = _path_parameters(rule, contract) + _query_parameters(contract)
    if parameters:
        operation["parameters"] = parameters
    if contract.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(contract.body, "validation")]}},
        }
    auth = getattr(view, "auth_required", None)
    if auth:
        operation["security"] = [{SECURITY_SCHEME: []}]
    operation["responses"] = _responses(contract, auth, refs)
    return operation


def _path_parameters(rule, contract):
    fields = contract.path.model_json_schema()["properties"] if contract.path else {}
    parameters = []
    for name in sorted(rule.arguments):
        schema = dict(fields.get(name, {"type": "string"}))
        schema.pop("title", None)
        description = schema.pop("description", None)
        parameter = {"name": name, "in": "path", "required": True, "schema": schema}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _query_parameters(contract):
    if contract.query is None:
        return []
    schema = contract.query.model_json_schema(ref_template=REF_TEMPLATE)
    required = set(schema.get("required", ()))
    parameters = []
    for name, field_schema in schema["properties"].items():
        field_schema = dict(field_schema)
        field_schema.pop("title", None)
        if field_schema.get("default", "") is None:
            del field_schema["default"]  # absent means no filter; null is not a query value
        description = field_schema.pop("description", None)
        parameter = {"name": name, "in": "query", "required": name in required, "schema": field_schema}
        if getattr(contract.query, "EMPTY_MEANS_ABSENT", False):
            parameter["allowEmptyValue"] = True
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _responses(contract, auth, refs):
    responses = {}
    for status, (answer, description) in sorted(contract.responses.items()):
        if isinstance(answer, Raw):
            content = {answer.media_type: {"schema": answer.schema}}
        else:
            content = {"application/json": {"schema": refs[(answer, "serialization")]}}
            description = description or (inspect.getdoc(answer) or "").partition("\n")[0]
        responses[str(status)] = {"description": description or "OK", "content": content}
    errors = {}
    if auth:
        errors[401] = ERROR_DESCRIPTIONS[401]
    if auth == "admin":
        errors[403] = ERROR_DESCRIPTIONS[403]
    if contract.body is not None:
        for status in (400, 413, 415, 422):
            errors[status] = ERROR_DESCRIPTIONS[status]
    if contract.query is not None:
        errors[422] = ERROR_DESCRIPTIONS[422]
    errors.update(contract.errors)
    error_content = {"application/json": {"schema": refs[(ErrorOut, "serialization")]}}
    for status, description in sorted(errors.items()):
        responses[str(status)] = {"description": description, "content": error_content}
        if status == 429:
            responses["429"]["headers"] = {"Retry-After": RETRY_AFTER}
    return responses
