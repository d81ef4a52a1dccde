"""Turning untrusted YAML values into clean text, links, dates and numbers.

Each function either returns a value every feed format can carry or raises
`Unusable` with a short reason that ends up in the load report.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

# XML 1.0 forbids C0 controls other than tab/newline/return, surrogates and U+FFFE/U+FFFF;
# C1 controls and noncharacters are legal but every validator warns about them.
_UNSAFE_CHARS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
_XML_UNSAFE = re.compile(f"[{_UNSAFE_CHARS}]")
# An http(s) URL in the spelling almost every link has: a plain ASCII host (no user, port
# or brackets), then path, query and fragment; `_plain_url` takes it only when printable
# and without spaces. For these `urlsplit` would only confirm what the pattern shows, so
# its groups stand in.
_PLAIN_URL = re.compile(
    r"(?P<scheme>https?)://(?P<host>[A-Za-z0-9.-]+)(?P<path>/[^?#]*)?"
    r"(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?",
    re.S,
)
_WHITESPACE = re.compile(r"\s+")
_ANY_SPACE = re.compile(r"\s")  # the characters str.isspace() accepts, for str patterns
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# The URL extensions of feeds (feeds.render.FORMATS; a test keeps the two equal). A domain
# is a provider's slug, and `/feeds/providers/nypost.com.rss` is the RSS feed of nypost.com.
FEED_EXTENSIONS = frozenset({"rss", "atom", "json"})
_TAG = re.compile(r"<[^<>]{0,2000}>")
_MAX_URL = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRACKING_PARAMS = frozenset({"fbclid", "gclid", "mc_cid", "mc_eid"})  # and every utm_*

_IMAGE_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "jpe": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "svg": "image/svg+xml",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "ico": "image/x-icon",
}


class Unusable(ValueError):
    """A value cannot be served; the message says why, for the load report."""


def clean_text(value: Any, field: str, max_length: int) -> str:
    """One line of plain text: markup tags removed, whitespace folded, XML-safe, bounded.

    Corpus text is plain text by contract. Tags are dropped rather than escaped because
    a reader shows `<b>` in a title as literal noise; `<` on its own stays and is escaped
    by the renderers.
    """
    text = value if type(value) is str else _as_text(value, field)
    if len(text) <= max_length and _already_clean(text):
        return text
    return cleaned(text, max_length)


def _as_text(value: Any, field: str) -> str:
    """Any value but a `str` as text, or why not. Nearly every value is a `str` and skips
    these checks, which cost more than the cleaning check itself."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Unusable(f"{field} is a {type(value).__name__}, not text")
    try:
        return str(value)
    except ValueError:  # an int past sys.get_int_max_str_digits() (4,300 digits)
        raise Unusable(f"{field} is a number too long to write as text") from None


def _already_clean(text: str) -> bool:
    """Whether cleaning would leave the text as it is; true of most corpus text.

    Every character cleaning removes or folds (XML-unsafe ones, whitespace other than the
    space) is unprintable, so printable text with no `<`, no double space and no space at
    either end is clean. One C loop and four searches cost less than a regex per value.
    """
    return (
        text.isprintable()
        and "<" not in text
        and "  " not in text
        and not text.startswith(" ")
        and not text.endswith(" ")
    )


def _plain_url(url: str) -> re.Match[str] | None:
    """The parts of a URL in the usual spelling (printable, no spaces, plain host)."""
    if url.isprintable() and " " not in url:
        return _PLAIN_URL.fullmatch(url)
    return None


def cleaned(text: str, max_length: int) -> str:
    """The whole cleaning of `clean_text`, for text its quick check does not pass."""
    text = _XML_UNSAFE.sub("", text)
    text = _WHITESPACE.sub(" ", _TAG.sub(" ", text)).strip()
    if len(text) > max_length:
        text = text[: max_length - 1].rstrip() + "…"
    return text


def http_url(value: Any) -> str | None:
    """The URL if it is an absolute http(s) URL a reader can follow, else None."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if len(url) <= _MAX_URL and _plain_url(url):
        return url
    return checked_url(url)


def checked_url(url: str) -> str | None:
    """The whole check of `http_url`, for URLs its quick pattern does not pass."""
    if len(url) > _MAX_URL or _XML_UNSAFE.search(url) or _ANY_SPACE.search(url):
        return None
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname or not port_ok:
        return None
    return url


def identity_url(url: str) -> str:
    """The spelling of an http(s) link that an article's id is derived from.

    Corrections that do not change which page a link names give one spelling: the scheme
    becomes `https`, the host lower case without a default port, the fragment and
    tracking parameters (`utm_*`, `fbclid`, `gclid`, `mc_cid`, `mc_eid`) go, and a path
    whose last segment has no dot ends in `/` (`/story` and `/story/` are one page;
    `/story.html` stays). A link already spelled this way is returned unchanged, so the
    ids of such links are the ones they always had.
    """
    plain = _plain_url(url)
    if plain and _spelled_for_identity(plain):
        return url
    return identity_spelling(url)


def _spelled_for_identity(plain: re.Match[str]) -> bool:
    """Whether a plain URL already has its identity spelling, so nothing would change."""
    path = plain["path"]
    return (
        plain["scheme"] == "https"
        and plain["query"] is None
        and plain["fragment"] is None
        and plain["host"].islower()
        and path is not None
        and (path.endswith("/") or "." in path.rsplit("/", 1)[-1])
    )


def identity_spelling(url: str) -> str:
    """The whole rewriting of `identity_url`, for links not spelled that way already."""
    parts = urlsplit(url)
    normal = SplitResult(
        scheme="https",
        netloc=_identity_netloc(parts),
        path=_identity_path(parts.path),
        query="&".join(pair for pair in parts.query.split("&") if not _tracking(pair)),
        fragment="",
    )
    return urlunsplit(normal)


def _identity_netloc(parts: SplitResult) -> str:
    """userinfo@host:port with the host in lower case and a default port dropped."""
    userinfo, at, hostport = parts.netloc.rpartition("@")
    host = hostport.lower()
    if parts.port is not None and parts.port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = host.rsplit(":", 1)[0]
    return f"{userinfo}{at}{host}"


def _identity_path(path: str) -> str:
    last = path.rsplit("/", 1)[-1]
    return path if path.endswith("/") or "." in last else path + "/"


def _tracking(pair: str) -> bool:
    """An empty query part, or one whose name is a known tracking parameter."""
    name = pair.split("=", 1)[0].lower()
    return not pair or name.startswith("utm_") or name in _TRACKING_PARAMS


def domain_name(value: Any) -> str | None:
    """A lowercase public host name without `www.`, or None when the value is not one.

    A domain becomes a provider's slug, so it must not look like any other slug: it has a
    dot, which slugs made from names never have (`lonely-press` would be the slug of
    `Lonely Press`), and it does not end in a feed extension (`nypost.com.rss` would
    share a path with the feeds of `nypost.com`); no top-level domain is either.
    """
    if not isinstance(value, str):
        return None
    host = value.strip().lower().rstrip(".").removeprefix("www.")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = host.split(".")
    valid = all(_HOST_LABEL.fullmatch(label) for label in labels)
    valid = valid and len(labels) > 1 and labels[-1] not in FEED_EXTENSIONS
    return host if host and len(host) <= 253 and valid else None


def aware_datetime(value: Any, field: str) -> datetime:
    """Any date form YAML or people write, as an aware UTC datetime.

    Unquoted YAML timestamps arrive as `datetime` (naive when no zone was given) or
    `date`; quoted ones as strings in ISO 8601 or RFC 2822. A missing zone means UTC,
    the corpus's documented convention.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time())
    elif isinstance(value, str) and value.strip():
        parsed = _parse_date_text(value.strip(), field)
    elif value is None or value == "":
        raise Unusable(f"{field} is missing")
    else:
        raise Unusable(f"{field} is a {type(value).__name__}, not a date")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except (OverflowError, ValueError) as error:
        raise Unusable(f"{field} is out of range") from error
    if not 1900 <= parsed.year <= 9999:
        raise Unusable(f"{field} year {parsed.year} is out of range")
    return parsed


# YAML 1.1's timestamp: what an unquoted date meant to libyaml (`2021-12-15t18:10:00z`,
# `2001-12-14 21:59:43.10 -5`); YAML 1.2 parsers give it as text, so it is read here.
_YAML_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]*))?(?:[ \t]*(Z|z|[-+][0-9]{1,2}(?::?[0-9]{2})?))?"
)


def _parse_date_text(text: str, field: str) -> datetime:
    candidate = text.replace(" ", "T", 1) if re.match(r"\d{4}-\d\d-\d\d \d", text) else text
    try:
        return datetime.fromisoformat(candidate)
    except ValueError:
        pass
    match = _YAML_TIMESTAMP.fullmatch(text)
    if match:
        return _yaml_timestamp(match, field)
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        # The value is not quoted: reasons and logs never repeat a document's text.
        raise Unusable(f"{field} is not a date in ISO 8601 or RFC 2822 form") from None


def _yaml_timestamp(match: re.Match[str], field: str) -> datetime:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    offset = timedelta(0)
    if zone and zone not in "Zz":
        hours, _, minutes = zone[1:].partition(":")
        if not minutes and len(hours) > 2:
            hours, minutes = hours[:-2], hours[-2:]
        offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
        offset = -offset if zone[0] == "-" else offset
    try:
        parts = (int(year), int(month), int(day), int(hour), int(minute), int(second))
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        return datetime(*parts, micro, timezone(offset) if zone else None)
    except ValueError:
        raise Unusable(f"{field} is not a valid date") from None


def positive_int(value: Any) -> int | None:
    """A positive pixel size or count; strings of digits count, anything else is unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        try:
            number = int(value.strip())
        except ValueError:  # digits int() does not read (`²`), or more than 4,300 of them
            return None
    else:
        return None
    return number if 0 < number < 1_000_000 else None


def image_mime_type(url: str) -> str | None:
    """The MIME type named by the URL path's extension; None rather than a guess."""
    plain = _plain_url(url)
    path = (plain["path"] or "" if plain else urlsplit(url).path).lower()
    extension = path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
    return _IMAGE_TYPES.get(extension)
