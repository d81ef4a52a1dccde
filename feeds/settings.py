"""The settings: one frozen, typed `Settings`, each field a documented row (default, parser,
help), parsed once at start and handed to the stages as is.

Values come from the defaults below, then a TOML file (``config/feeds.toml``, or the
file named by ``FEEDS_CONFIG``), then the environment with the ``FEEDS_`` prefix.
The settings table of docs/settings.md is generated from the fields (``SETTINGS``), so
the two cannot drift; nothing reads a setting by its name as a string.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config" / "feeds.toml"  # in a checkout; optional
BUNDLED_CORPUS = Path(__file__).parent / "seeds"  # package data (a link to seeds/ in a checkout)
ENV_PREFIX = "FEEDS_"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; raised at startup, never per request."""


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _positive_int(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"must be at least 1, got {number}")
    return number


def _non_negative_int(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"must be 0 or more, got {number}")
    return number


def _optional_float(value: Any) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    return float(value)


def _positive_float(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"must be more than 0, got {number}")
    return number


def _one_of(*choices: str, empty: bool = False) -> Callable[[Any], str]:
    """A parser of one of `choices` (any case), or of "" when `empty`."""

    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices and not (empty and text == ""):
            raise ValueError(f"must be {'empty or ' if empty else ''}one of {', '.join(choices)}")
        return text

    return parse


_cache_type = _one_of("simple", "filesystem", "redis")
_render_cache = _one_of("simple", "filesystem", "redis", empty=True)
_store = _one_of("sqlite", "redis", "postgresql", empty=True)


def _database_url(value: Any) -> str:
    text = str(value).strip()
    if text and not text.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be empty or a postgresql:// URL")
    return text


def _secret(value: Any) -> str:
    text = str(value).strip()
    if text and len(text) < 32:
        raise ValueError("must be empty or at least 32 characters (e.g. `openssl rand -hex 32`)")
    return text


_access_log = _one_of("json", "classic", "off")


def _base_url(value: Any) -> str:
    text = str(value).strip().rstrip("/")
    if text and not text.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return text


_HOST_NAME = re.compile(r"[a-z0-9_.-]+|\[[0-9a-f:.]+\]")


def _host_names(value: Any) -> tuple[str, ...]:
    """Lower-case names without a port: `example.org`, `127.0.0.1`, `[::1]`; from text
    (commas or spaces between) or a list (TOML, or settings already parsed)."""
    parts = value if isinstance(value, list | tuple) else [value]
    names = " ".join(map(str, parts)).replace(",", " ").lower().split()
    for name in names:
        if not _HOST_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a host name (no port; IPv6 in brackets: [::1])")
    return tuple(names)


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the documented table: `FEEDS_<name>`, its default, parser and help."""

    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str


def setting(default: Any, parse: Callable[[Any], Any], help: str) -> Any:
    """A field of `Settings`: its default, its parser and its help."""
    return field(default=default, metadata={"parse": parse, "help": help})


@dataclass(frozen=True, slots=True)
class StoreKinds:
    """Where each store lives: the render cache (`simple`, `filesystem`, `redis`), the hub's
    subscriptions and the subscriber counts (`sqlite`, `redis`, `postgresql`)."""

    render_cache: str
    hub: str
    stats: str


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, parsed and typed: read once at start, then passed on as is.

    Each field is one row of the documented table (`settings_table`): its default, its
    parser (text from the TOML file or the environment to the value) and its help.
    """

    corpus_dir: str = setting(
        str(BUNDLED_CORPUS),
        str,
        "Directory read recursively for `*.txt` and `*.md` documents.",
    )
    base_url: str = setting(
        "",
        _base_url,
        "Public origin for absolute links (`https://feeds.example.org`, or with a path prefix "
        "the proxy strips: `https://example.org/news`); empty: from each request. Set it in "
        "production.",
    )
    allowed_hosts: tuple[str, ...] = setting(
        "localhost, 127.0.0.1, [::1]",
        _host_names,
        "Host names (any port, comma-separated) this server answers for, besides "
        "`FEEDS_BASE_URL`'s; any other `Host` gets a 400 before anything is rendered. List "
        "the public name when a proxy passes it and `FEEDS_BASE_URL` is not set.",
    )
    deployment: str = setting(
        "",
        str,
        "Name of this deployment in shared stores (Redis): hub subscriptions, deliveries and "
        "subscriber counts are kept under it, so two deployments on one Redis never see each "
        "other's; empty: derived from `FEEDS_BASE_URL`, else from the corpus directory's path.",
    )
    site_title: str = setting(
        "feeds",
        str,
        "Name of the site, used in feed titles and pages.",
    )
    site_description: str = setting(
        "Articles from the corpus, as RSS, Atom and JSON feeds.",
        str,
        "One line describing the site, used in feed descriptions.",
    )
    default_items: int = setting(
        50,
        _positive_int,
        "Entries per feed when the request gives no `?limit=`.",
    )
    max_items: int = setting(
        500,
        _positive_int,
        "Largest `?limit=` accepted; larger values are a 400.",
    )
    include_unpublished: bool = setting(
        True,
        _bool,
        "Serve documents marked `published: false`.",
    )
    min_quality: float | None = setting(
        None,
        _optional_float,
        "Skip documents whose `quality` is below this number; empty: no minimum.",
    )
    strict: bool = setting(
        False,
        _bool,
        "Refuse to start when any document was skipped.",
    )
    max_file_bytes: int = setting(
        1_048_576,
        _positive_int,
        "Documents larger than this are skipped unread, so one file cannot bloat every feed.",
    )
    data_dir: str = setting(
        "",
        str,
        "Directory of the corpus index (one SQLite file per corpus directory and load options); "
        "empty: `$XDG_DATA_HOME/feeds` (`~/.local/share/feeds`).",
    )
    watch: bool = setting(
        True,
        _bool,
        "Follow the corpus directory's change events (inotify): a new, changed or removed file "
        "reaches the feeds within a second. Off on file systems without events (NFS, SMB, "
        "some container mounts); then `FEEDS_RESCAN_SECONDS` finds changes.",
    )
    rescan_seconds: int = setting(
        3600,
        _non_negative_int,
        "Seconds between full rescans of the corpus directory (a safety net for missed events); "
        "without events, seconds between looks at its folders (e.g. 5), and full rescans (for "
        "edits in place) as often as 3 % of a core allows; 0: only at start and SIGHUP.",
    )
    schedule: bool = setting(
        True,
        _bool,
        "Hold back documents dated in the future until their time, then publish and push them; "
        "off: serve them at once.",
    )
    cache_type: str = setting(
        "simple",
        _cache_type,
        "What the three stores below default to: `simple` (a render cache in each process) or "
        "`filesystem` (one shared by the workers of a host), with SQLite for the hub and the "
        "counts; or `redis` for all three (several hosts).",
    )
    render_cache: str = setting(
        "",
        _render_cache,
        "Where rendered documents are shared: `simple` (not at all: each worker's memory), "
        "`filesystem` (the workers of one host, `FEEDS_CACHE_DIR`) or `redis` (every host); "
        "empty: as `FEEDS_CACHE_TYPE`.",
    )
    hub_store: str = setting(
        "",
        _store,
        "Where the built-in hub keeps subscriptions and deliveries: `sqlite` (this host, "
        "`FEEDS_WEBSUB_DB`), `redis` or `postgresql` (every host); empty: `postgresql` when "
        "`FEEDS_DATABASE_URL` is set, else `redis` when `FEEDS_CACHE_TYPE` is, else `sqlite`.",
    )
    stats_store: str = setting(
        "",
        _store,
        "Where subscriber counts are kept: `sqlite` (a file of this host's data directory), "
        "`redis` or `postgresql` (every host); empty: `postgresql` when `FEEDS_DATABASE_URL` "
        "is set, else `redis` when `FEEDS_CACHE_TYPE` is, else `sqlite`.",
    )
    database_url: str = setting(
        "",
        _database_url,
        "PostgreSQL database (`postgresql://user:password@host/name`) that the hosts of a fleet "
        "share for the hub and the subscriber counts (the corpus index stays in SQLite for "
        "now); each deployment keeps its tables in its own schema, migrated at start.",
    )
    database_timeout: float = setting(
        2.0,
        _positive_float,
        "Seconds a PostgreSQL statement, or a wait for a pooled connection, may take (libpq "
        "connects within at least 2 s); then the hub and the counts answer 503 with "
        "`Retry-After` and deliveries wait for the next poll.",
    )
    cache_dir: str = setting(
        "",
        str,
        "Directory for the `filesystem` cache; empty: a temporary directory.",
    )
    cache_redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        str,
        "Redis URL of every store set to `redis`.",
    )
    redis_timeout: float = setting(
        0.5,
        _positive_float,
        "Seconds a Redis command (or a connection) may take, for every store in Redis; one "
        "try, no retry. Then the render cache is left alone for 5 s, the hub and the counts "
        "answer 503 with `Retry-After` and deliveries wait for the next poll.",
    )
    cache_threshold: int = setting(
        2000,
        _positive_int,
        "Rendered responses kept per process, and by the `filesystem` backend.",
    )
    cache_ttl: int = setting(
        86_400,
        _positive_int,
        "Seconds each rendered response is kept in the `filesystem` or `redis` cache.",
    )
    cache_secret: str = setting(
        "",
        _secret,
        "Key (32+ characters) of an HMAC-SHA256 on each shared cache value, so that who can "
        "write to Redis cannot change the feeds served; empty: a checksum only.",
    )
    cache_local_mb: int = setting(
        128,
        _positive_int,
        "Megabytes of rendered responses each worker keeps in memory (twice: cache and fast path).",
    )
    renders: int = setting(
        2,
        _positive_int,
        "Documents each worker renders at once (a first request for a feed, page or filter); "
        "cached answers never wait for them.",
    )
    render_queue: int = setting(
        8,
        _non_negative_int,
        "Further renders each worker lets wait (up to 5 s) for one of `FEEDS_RENDERS`; beyond "
        "that, and beyond `FEEDS_RENDERS_PER_CLIENT`, a request gets a quick 503 with "
        "`Retry-After`.",
    )
    renders_per_client: int = setting(
        1,
        _positive_int,
        "Renders one client address may have running or waiting in each worker, so one "
        "client cannot take every slot. Behind a proxy that forwards no client address "
        "every client shares one.",
    )
    max_age: int = setting(
        300,
        _positive_int,
        "`Cache-Control: max-age` in seconds for feeds; the RSS `<ttl>` says the same in minutes.",
    )
    archive_page_size: int = setting(
        50,
        _positive_int,
        "Entries per RFC 5005 archive page (at most `FEEDS_DEFAULT_ITEMS`); a change applies "
        "to pages sealed from then on: sealed pages never change.",
    )
    websub_hub_url: str = setting(
        "",
        _base_url,
        "An external WebSub hub to advertise; empty: the built-in hub at `/websub`.",
    )
    websub_db: str = setting(
        "",
        str,
        "SQLite file of the built-in hub's subscriptions and deliveries (when "
        "`FEEDS_HUB_STORE` is `sqlite`); empty: one file per deployment in `FEEDS_DATA_DIR`.",
    )
    websub_allow_private_callbacks: bool = setting(
        False,
        _bool,
        "Let WebSub callbacks be loopback, private or reserved addresses (tests, intranets).",
    )
    websub_max_subscriptions: int = setting(
        10_000,
        _positive_int,
        "Most subscriptions the built-in hub holds, over all topics and callbacks.",
    )
    websub_max_per_host: int = setting(
        100,
        _positive_int,
        "Most subscriptions of one callback host (the IPv4 address, or IPv6 /64, that answered "
        "the verification), so one party cannot fill the hub; renewals are never refused.",
    )
    websub_max_per_topic: int = setting(
        1000,
        _positive_int,
        "Most subscriptions of one topic (feed URL); renewals are never refused.",
    )
    websub_min_lease_seconds: int = setting(
        60,
        _positive_int,
        "Shortest lease granted; longer asks are capped at 30 days, none asked gets 10 days.",
    )
    websub_retry_seconds: int = setting(
        60,
        _positive_int,
        "Wait before retrying a failed push; it doubles after each further failure.",
    )
    websub_max_attempts: int = setting(
        8,
        _positive_int,
        "Failed pushes in a row after which a subscription is dropped.",
    )
    websub_timeout_seconds: int = setting(
        15,
        _positive_int,
        "Longest any one exchange with a WebSub callback may take, connecting to last byte.",
    )
    stats_token: str = setting(
        "",
        _secret,
        "Bearer token (32+ characters) that opens `/metrics`, `/stats` and `/stats.json` to "
        "clients other than local ones (a loopback address and `Host` name, no proxy header); "
        "empty: local clients only.",
    )
    access_log: str = setting(
        "json",
        _access_log,
        "Access log on standard output: `json` (one object per line), `classic` (gunicorn's "
        "format) or `off`.",
    )
    log_level: str = setting(
        "INFO",
        str,
        "Python logging level for the `feeds` loggers.",
    )
    control_socket: str = setting(
        "",
        str,
        "Path of this instance's gunicorn control socket (for `gunicornc`); empty: none. "
        "gunicorn's default path is shared by every instance a user runs.",
    )

    def __post_init__(self) -> None:
        kinds = self.store_kinds
        for name, kind in (("HUB_STORE", kinds.hub), ("STATS_STORE", kinds.stats)):
            if kind == "postgresql" and not self.database_url:
                raise SettingsError(
                    f"{ENV_PREFIX}{name}=postgresql needs {ENV_PREFIX}DATABASE_URL "
                    "(postgresql://…), which is not set"
                )

    @property
    def store_kinds(self) -> StoreKinds:
        """Each store's own setting, else what `FEEDS_DATABASE_URL` or `FEEDS_CACHE_TYPE`
        implies."""
        shared = "redis" if self.cache_type == "redis" else "sqlite"
        shared = "postgresql" if self.database_url else shared
        return StoreKinds(
            self.render_cache or self.cache_type,
            self.hub_store or shared,
            self.stats_store or shared,
        )


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name.upper(), f.default, f.metadata["parse"], f.metadata["help"])
    for f in fields(Settings)
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then the TOML file, then the environment, then explicit overrides (tests)."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    config_file = Path(environ.get(ENV_PREFIX + "CONFIG", DEFAULT_CONFIG_FILE))
    if config_file.is_file():
        with config_file.open("rb") as handle:
            for key, value in tomllib.load(handle).items():
                raw[_known(key.upper(), str(config_file))] = value
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "CONFIG":
            name = key.removeprefix(ENV_PREFIX)
            if name in _BY_NAME:
                raw[name] = value
    for key, value in (overrides or {}).items():
        raw[_known(key.upper(), "overrides")] = value
    return Settings(**{name.lower(): _parse(_BY_NAME[name], value) for name, value in raw.items()})


def data_directory(settings: Settings) -> Path:
    """`FEEDS_DATA_DIR`, else `$XDG_DATA_HOME/feeds` (`~/.local/share/feeds`): what a restart
    must find again (the corpus index, the hub's subscriptions)."""
    configured = str(settings.data_dir).strip()
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base, "feeds")


def corpus_key(corpus: str | os.PathLike[str]) -> str:
    """16 hex digits naming one corpus directory (wherever it is reached from) in the data
    directory's file names: its index, subscriber counts and WebSub files carry it."""
    return hashlib.sha256(os.fsencode(os.path.realpath(corpus))).hexdigest()[:16]


def deployment_key(settings: Settings) -> str:
    """The prefix of every key this deployment keeps in a shared store: its own namespace.

    Hosts of one deployment share it (same `FEEDS_DEPLOYMENT`, else the same public origin,
    else the same corpus path); staging and production on one Redis never do.
    """
    name = (
        str(settings.deployment).strip()
        or str(settings.base_url)
        or os.path.realpath(settings.corpus_dir)
    )
    return "feeds:" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16] + ":"


def writable_data_directory(settings: Settings, purpose: str) -> Path:
    """The data directory, created if needed; the temp directory (logged) when this process
    cannot write there, so a read-only data directory costs `purpose` its persistence only."""
    directory = data_directory(settings)
    with contextlib.suppress(OSError):  # not there and not creatable: judged just below
        directory.mkdir(parents=True, exist_ok=True)
    if os.access(directory, os.W_OK | os.X_OK):
        return directory
    fallback = Path(tempfile.gettempdir())
    logging.getLogger("feeds").warning(
        "data directory %s is not writable (FEEDS_DATA_DIR); %s kept in %s",
        directory,
        purpose,
        fallback,
    )
    return fallback


def _known(name: str, source: str) -> str:
    if name not in _BY_NAME:
        raise SettingsError(f"unknown setting {name} in {source}")
    return name


def _parse(setting: Setting, value: Any) -> Any:
    if value is None:
        return setting.parse(value) if setting.default is None else setting.default
    try:
        return setting.parse(value)
    except (TypeError, ValueError) as error:
        raise SettingsError(f"{ENV_PREFIX}{setting.name}={value!r}: {error}") from error


def settings_table() -> str:
    """The Markdown table of settings for docs/settings.md."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        default = setting.default
        if setting.name == "CORPUS_DIR":
            default = "seeds/"
        shown = "" if default in (None, "") else f"`{default}`"
        rows.append(f"| `{ENV_PREFIX}{setting.name}` | {shown} | {setting.help} |")
    return "\n".join(rows)
