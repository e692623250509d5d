"""Answering the live tables' polls: from a change mark when it can, from the content when it must.

A polling element (a job table's rows, a job's detail) keeps the ETag of what it shows and
sends it back in `If-None-Match` (static/js/app.js). The ETag has three parts,
`<mark>.<issued>.<content>`:

- `mark`: what the table is (whose, which filters, page, zone) and the change mark it was
  made from (webapp/services/jobs/change_marks.py), read with the session's account;
- `issued`: when the ETag was made (Unix seconds, hex);
- `content`: a hash of everything the fragment shows.

`unchanged_by_mark` answers 304 when the client's ETag has the current mark and was issued
less than REVALIDATE_SECONDS ago: no query beyond the account's, so an unchanged poll is one
database round trip. Otherwise the view loads the table and `answer` compares contents:
the same content is still a 304 (with a fresh ETag, which the page keeps), anything else a 200.
So a change whose mark was lost (a process killed before it flushed its notes) shows within
REVALIDATE_SECONDS at worst, and a table whose mark moved for another page of it costs a query
but no body.
"""

import time

from flask import make_response
from flask import render_template
from flask import request

from webapp.web.htmx import etag_of

# How long an ETag is trusted on its mark alone; after that the table is read and compared.
REVALIDATE_SECONDS = 30
NO_MARK = "none"


def mark_of(*parts):
    """The mark part of an ETag: a hash of what identifies the table and its change mark."""
    return etag_of("mark", *parts)


def compose(mark, content, issued=None):
    """The ETag (unquoted) for `content` shown under `mark`, issued now."""
    issued = int(time.time() if issued is None else issued)
    return f"{mark or NO_MARK}.{issued:x}.{content}"


def _parse(etag):
    parts = etag.split(".")
    if len(parts) != 3:
        return None
    try:
        return parts[0], int(parts[1], 16), parts[2]
    except ValueError:
        return None


def _client_etags():
    return [parsed for etag in request.if_none_match.as_set() if (parsed := _parse(etag))]


def _respond(status, etag, body=""):
    response = make_response(body, status)
    response.set_etag(etag)
    # Our script sends If-None-Match itself; no-store keeps the browser's cache from answering instead.
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    return response


def unchanged_by_mark(mark, now=None):
    """A 304 if the client's ETag has this mark and is recent enough, else None (then load the table)."""
    if mark is None:
        return None
    now = time.time() if now is None else now
    for client_mark, issued, content in _client_etags():
        if client_mark == mark and 0 <= now - issued < REVALIDATE_SECONDS:
            return _respond(304, compose(client_mark, content, issued))
    return None


def answer(template, mark, content, /, **context):
    """The fragment with a fresh ETag; a 304 (with that ETag) if the client already shows this content."""
    etag = compose(mark, content)
    if any(client_content == content for _, _, client_content in _client_etags()):
        return _respond(304, etag)
    return _respond(200, etag, render_template(template, **context))
