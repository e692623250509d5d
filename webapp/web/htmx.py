"""HTMX glue: one place decides "whole page or fragment", one place answers polls cheaply.

A page `{% include %}`s its fragments, and the same view returns only the
fragment when HTMX asks for it, so there is one template for both.
"""

import hashlib

from flask import make_response
from flask import render_template
from flask import request

from webapp.extensions import htmx


def is_partial():
    """True when HTMX swaps part of a page: an HTMX request that is not boosted.

    A history-restore request (the back button with no cached snapshot) wants
    the whole page, like a boosted link does.
    """
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render_page_or_fragment(page, fragment, status=200, **context):
    """Render `fragment` for a partial HTMX request and `page` otherwise.

    `Vary: HX-Request` keeps a cache (or the back button) from serving one for the other.
    """
    template = fragment if is_partial() else page
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response


def etag_of(*parts):
    """A short strong ETag (unquoted) for whatever decides what a fragment shows."""
    return hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=12).hexdigest()


def render_if_changed(template, etag, /, **context):
    """Answer a poll: 304 with no body when the client's copy is current, else the fragment.

    The ETag is worked out from the data before any rendering, so an unchanged
    table costs a query and a few hundred bytes of headers. Our JS sends
    `If-None-Match` itself (a browser's own cache would turn the 304 back into
    a 200 with the old body, and htmx would swap it), and `no-store` keeps the
    browser's cache out of the way. `etag` is positional only, so the template may
    get an `etag` of its own in `context` (the detail view's polling element does).
    """
    if request.if_none_match.contains(etag):
        response = make_response("", 304)
    else:
        response = make_response(render_template(template, **context))
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    return response
