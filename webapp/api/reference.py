"""The API's own description: the OpenAPI document and a page to read it."""

from flask import current_app
from flask import render_template

from webapp.api.blueprint import bp
from webapp.api.contract import Raw
from webapp.api.contract import describe
from webapp.api.openapi import openapi_document


@bp.get("/openapi.json")
@describe(responses={200: Raw("application/json", {"type": "object", "required": ["openapi", "paths"]})})
def openapi_json():
    """This document: OpenAPI 3.1, generated from the models that validate and shape the API."""
    return openapi_document(current_app._get_current_object())


@bp.get("/docs")
@describe(responses={200: Raw("text/html", {"type": "string"})})
def docs():
    """A page to read this document in a browser (Swagger UI, served from this site)."""
    return render_template("api/docs.html")
