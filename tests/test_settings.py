"""Settings: defaults, then the TOML file, then FEEDS_ variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from feeds.settings import SETTINGS, SettingsError, StoreKinds, load_settings, settings_table
from tests.support import PROJECT_ROOT


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.default_items == 50
    assert settings.cache_type == "simple"
    assert Path(settings.corpus_dir).resolve() == PROJECT_ROOT / "seeds"


def test_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text('site_title = "From file"\nmax_items = 70\ndefault_items = 20\n')
    environ = {"FEEDS_CONFIG": str(config), "FEEDS_MAX_ITEMS": "90", "OTHER": "x"}
    settings = load_settings(environ=environ)
    assert settings.site_title == "From file"
    assert settings.default_items == 20
    assert settings.max_items == 90


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FEEDS_MAX_ITEMS", "many"),
        ("FEEDS_CACHE_TYPE", "memcached"),
        ("FEEDS_BASE_URL", "ftp://x"),
        ("FEEDS_STRICT", "perhaps"),
        ("FEEDS_DEFAULT_ITEMS", "0"),
        ("FEEDS_HUB_STORE", "filesystem"),
        ("FEEDS_RENDER_CACHE", "sqlite"),
        ("FEEDS_REDIS_TIMEOUT", "0"),
    ],
)
def test_bad_values_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(environ={name: value})


@pytest.mark.parametrize(
    ("environ", "kinds"),
    [
        ({}, StoreKinds("simple", "sqlite", "sqlite")),
        ({"FEEDS_CACHE_TYPE": "filesystem"}, StoreKinds("filesystem", "sqlite", "sqlite")),
        ({"FEEDS_CACHE_TYPE": "redis"}, StoreKinds("redis", "redis", "redis")),
        (
            {
                "FEEDS_CACHE_TYPE": "redis",
                "FEEDS_RENDER_CACHE": "simple",
                "FEEDS_STATS_STORE": "sqlite",
            },
            StoreKinds("simple", "redis", "sqlite"),
        ),
        ({"FEEDS_HUB_STORE": "redis"}, StoreKinds("simple", "redis", "sqlite")),
    ],
)
def test_each_store_has_its_own_setting_and_cache_type_is_their_default(
    environ: dict[str, str], kinds: StoreKinds
) -> None:
    assert load_settings(environ=environ).store_kinds == kinds


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text("no_such_setting = 1\n")
    with pytest.raises(SettingsError, match="NO_SUCH_SETTING"):
        load_settings(environ={"FEEDS_CONFIG": str(config)})


def test_docs_document_every_setting() -> None:
    doc = (PROJECT_ROOT / "docs" / "settings.md").read_text()
    assert settings_table() in doc
    assert all(f"FEEDS_{s.name}" in doc for s in SETTINGS)
