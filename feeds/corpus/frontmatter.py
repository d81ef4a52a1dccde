"""Bytes to the front-matter mapping: decoded, split, bounded in depth (`nesting`), parsed
by yaml-rs, with the secured token withheld; reasons never quote the document."""

from __future__ import annotations

import codecs
import marshal
import re
from typing import Any

import yaml_rs

from feeds.corpus.nesting import check_nesting
from feeds.corpus.normalize import Unusable

MAX_YAML_NODES = 20_000

SECRET_FIELD = "secured"  # an opaque token that is never served, logged or quoted

MIN_SECRET_MATCH = 8  # shorter secret strings are compared whole, not searched for


def parse_front_matter(raw: bytes) -> dict[str, Any]:
    """Bytes to the front matter mapping, with reasons that never quote the document."""
    if not raw.strip():
        raise Unusable("empty file")
    if b"\x00" in raw and not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise Unusable("binary file: contains NUL bytes")
    text = _decode(raw).replace("\r\n", "\n").replace("\r", "\n")
    metadata = _parse_yaml(front_matter_text(text))
    if not isinstance(metadata, dict):
        raise Unusable(f"front matter is a {type(metadata).__name__}, not a mapping")
    _withhold_secret(metadata)
    return metadata


# A delimiter line as python-frontmatter's YAML handler reads it: three or more dashes,
# then whitespace up to a line's end (which may cross blank lines, so the front matter
# starts after them and YAML's line numbers stay the file's).
_DELIMITER = re.compile(r"^-{3,}\s*$", re.M)


def front_matter_text(text: str) -> str:
    """The text between the opening delimiter line and the next one, as python-frontmatter
    cut it. Its split ran the pattern at every position of the file; a closing line
    starts with `\\n---`, so `str.find` proposes each and the pattern confirms it."""
    opening = _DELIMITER.match(text)
    if opening is None:
        raise Unusable("no front matter: the file must start with a '---' line")
    start = opening.end()
    candidate = text.find("\n---", start)
    while candidate != -1:
        if _DELIMITER.match(text, candidate + 1):
            return text[start : candidate + 1]
        candidate = text.find("\n---", candidate + 1)
    raise Unusable("no front matter: the closing '---' line is missing")


# yaml-rs reads YAML 1.2: `no` is text and `0777` decimal (see `to_parsed` for
# `published`); dates stay text for `aware_datetime`, so a quoted "2021-12-15" title stays
# a title; any alias is refused (real front matter has none, and billion-laughs or
# `title: *secret` tricks need them); a repeated key keeps its last value, as libyaml did.
YAML_OPTIONS: dict[str, Any] = {
    "parse_datetime": False,
    "alias_limits": yaml_rs.AliasLimits(max_total_replayed_events=0),
    "duplicate_key_policy": yaml_rs.DuplicateKeyPolicy.LastWins,
}

# Reasons in our own words: a YAML library's messages quote the document (and so could
# quote the secured token), so none of their text is ever passed on.

_ERROR_LINE = re.compile(r"\bline ([0-9]+)")


def _parse_yaml(front: str) -> Any:
    """The YAML value of the front matter; any failure becomes Unusable in our words."""
    check_nesting(front)
    try:
        return yaml_rs.loads(front, **YAML_OPTIONS)
    except yaml_rs.YAMLDecodeError as error:
        raise Unusable(_decode_error_reason(str(error))) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # hostile text fails in many ways, a Rust panic among them
        raise Unusable("malformed YAML: a value its tag cannot hold") from None


def _decode_error_reason(message: str) -> str:
    """yaml-rs's message classified, never quoted: it shows the document's text.

    The front matter starts on the opening `---` line, so its line numbers are the file's.
    """
    if message.startswith("alias replay limit"):
        return "YAML aliases are not allowed"
    if message.startswith("Invalid value"):
        return "malformed YAML: a value its tag cannot hold"
    line = _ERROR_LINE.search(message)
    return "malformed YAML: not valid YAML" + (f" at line {line[1]}" if line else "")


def _withhold_secret(metadata: dict[str, Any]) -> None:
    """Drop the secured token, and refuse a document whose other values hold it.

    The token is only ever removed, never read into a reason. Aliases and merge keys are
    refused already; this also catches a copy, in any field, or through any future parser.
    """
    secret = metadata.pop(SECRET_FIELD, None)
    if not _surely_clean(metadata, secret):
        _check_values(metadata, secret)


def _check_values(metadata: dict[str, Any], secret: Any) -> None:
    """The whole check: every string of the front matter against every string of the
    secret, merge keys and the size bound on the way."""
    texts = _texts(metadata)
    if secret is None:
        return
    joined = "\0".join(texts)  # one search per secret, not per value
    whole: set[str] | None = None  # made only for a short secret string: rare
    for text in filter(None, _texts(secret)):
        if len(text) >= MIN_SECRET_MATCH:
            found = text in joined  # a whole value is a part of the joined text too
        else:
            whole = set(texts) if whole is None else whole
            found = text in whole
        if found:
            raise Unusable(f"another field holds the {SECRET_FIELD} value (alias or copy)")


def _surely_clean(metadata: dict[str, Any], secret: Any) -> bool:
    """Whether one pass in C shows that `_check_values`, which walks every value in
    Python, would find nothing: no merge key, at most MAX_YAML_NODES values, no copy of
    the secret. Nearly every document is shown clean here, in a third of the time.

    marshal's version 2 writes every occurrence out (no back-references), each string as
    its UTF-8 bytes and each key and item as one byte or more: a `<<` key or a string
    holding the secret leaves their bytes in it, and `_texts` counts fewer values than it
    has bytes. Anything else goes to the whole check: a match (even a false one), a secret
    that is not a string or holds a NUL (the joined search may match it across two
    values), a value marshal cannot write.
    """
    if secret is not None and (type(secret) is not str or "\0" in secret):
        return False
    try:
        written = marshal.dumps(metadata, 2)
    except ValueError:
        return False
    if len(written) > MAX_YAML_NODES or b"<<" in written:
        return False
    return secret is None or secret.encode("utf-8", "surrogatepass") not in written


def _texts(root: Any) -> list[str]:
    """Every string in a YAML value, keys included; huge trees and merge keys are refused.

    One pass over the tree before any code reads fields from it. YAML 1.2 has no merge
    keys: yaml-rs keeps `<<` as a plain key, so a document relying on one would silently
    mean something else than its author wrote.
    """
    texts: list[str] = []
    stack = [root]
    values = 0
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is str:
            texts.append(node)
        elif kind is dict:
            if "<<" in node:
                raise Unusable("YAML merge keys (<<) are not supported")
            values += len(node)
            stack.extend(node)
            stack.extend(node.values())
        elif kind is list or kind is tuple:  # tuples: complex keys
            values += len(node)
            stack.extend(node)
        if values > MAX_YAML_NODES:
            raise Unusable(f"front matter too large: more than {MAX_YAML_NODES} values")
    return texts


def _decode(raw: bytes) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise Unusable("not valid UTF-16 despite its byte-order mark") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Unusable(
            f"not UTF-8: byte 0x{raw[error.start]:02x} at offset {error.start}"
        ) from None
