"""The smallest WSGI app that answers like our cached feed: the yardstick for throughput.

It serves bytes and headers captured from our own server (one variant per content
coding), so both sides send the same response over the wire and the difference in
requests per second is what our request handling costs. It knows only what a cache hit
needs: pick the variant by `Accept-Encoding`, answer 304 when `If-None-Match` is that
variant's ETag. Run it under the same gunicorn settings as the Procfile's `web`:

    BENCH_BASELINE_SPEC=spec.json \
        gunicorn --config python:feeds.server.gunicorn_config bench.baseline:app

The spec (written by bench/run.py) is JSON: `{"variants": [{"encoding": "" | "gzip",
"status": 200, "headers": [[name, value], ...], "body_path": "..."}]}`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

SPEC_ENV = "BENCH_BASELINE_SPEC"
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]


class Variant:
    """One captured response, with its 304 headers computed once at startup."""

    def __init__(self, headers: list[tuple[str, str]], body: bytes) -> None:
        self.body = body
        self.headers = headers
        self.etag = next((v for k, v in headers if k.lower() == "etag"), None)
        self.not_modified_headers = [(k, v) for k, v in headers if k.lower() != "content-length"]


def load_variants(spec_path: str) -> dict[str, Variant]:
    spec = json.loads(Path(spec_path).read_text())
    variants = {}
    for item in spec["variants"]:
        headers = [(str(k), str(v)) for k, v in item["headers"]]
        variants[item["encoding"]] = Variant(headers, Path(item["body_path"]).read_bytes())
    return variants


def make_app(variants: dict[str, Variant]) -> WSGIApp:
    identity = variants[""]
    gzip = variants.get("gzip", identity)

    def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        variant = gzip if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "") else identity
        if variant.etag is not None and environ.get("HTTP_IF_NONE_MATCH") == variant.etag:
            start_response("304 Not Modified", variant.not_modified_headers)
            return [b""]
        start_response("200 OK", variant.headers)
        return [variant.body]

    return app


app = make_app(load_variants(os.environ[SPEC_ENV])) if SPEC_ENV in os.environ else None
