"""Reading a request body: bounded, strict, and a 400 in one log line whatever arrives.

The body comes through the server's reader (gunicorn's chunked parser, werkzeug's length
limit), which raises its own exceptions on a bad chunk size or terminator, an over-long
chunk extension or a peer that hangs up before the declared length: all of those are the
client's fault, so they are a 400 (gunicorn then closes the connection), logged as one
line naming the error's class only, as its message quotes the client's bytes.
"""

from __future__ import annotations

import logging
from typing import TypeVar
from urllib.parse import parse_qsl

from flask import request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

log = logging.getLogger("feeds.http")

MAX_FIELDS = 32
_Refusal = TypeVar("_Refusal", bound=HTTPException)


def read_body(max_bytes: int) -> bytes:
    """The whole body, declared or chunked; at most one byte more than `max_bytes` is read
    (werkzeug stops there), and a longer body is a 413 at once."""
    request.max_content_length = max_bytes + 1  # the byte more tells a longer body
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:  # a declared length above the limit: nothing was read
        body = None
    except Exception as error:  # the server's body reader failed on the client's bytes
        raise malformed(error.__class__.__name__) from None
    if body is None or len(body) > max_bytes:
        raise refused(RequestEntityTooLarge(f"requests are at most {max_bytes} bytes"), "too large")
    declared = request.content_length
    if declared is not None and len(body) != declared:  # the peer hung up early
        raise malformed("shorter than its Content-Length")
    return body


def malformed(why: str) -> BadRequest:
    """The 400 for a body that cannot be read, logged as one line."""
    answer = BadRequest("the request body is malformed (its chunked encoding or length)")
    return refused(answer, why)


def refused(answer: _Refusal, why: str) -> _Refusal:
    """`answer`, logged as one line that names the route and `why`, and quotes no byte."""
    route = request.url_rule.rule if request.url_rule else "?"
    log.info("%s %s: malformed request body (%s)", request.method, route, why)
    return answer


def read_form(max_bytes: int) -> MultiDict[str, str]:
    """The fields of an `application/x-www-form-urlencoded` body, read strictly: UTF-8,
    every field `name=value`, at most MAX_FIELDS; anything else is a 400."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise BadRequest("send the fields as application/x-www-form-urlencoded")
    body = read_body(max_bytes)
    try:
        fields = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeError:
        raise refused(BadRequest("the form is not UTF-8"), "not UTF-8") from None
    except ValueError:
        reason = f"the form must be name=value fields joined by &, at most {MAX_FIELDS}"
        raise refused(BadRequest(reason), "not a form") from None
    return MultiDict(fields)
