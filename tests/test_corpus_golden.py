"""The golden parse (tests/golden.py): every document of a fixed corpus parses as pinned."""

from __future__ import annotations

import json

import pytest

from feeds.corpus import PARSER_VERSION
from tests import golden


@pytest.fixture(scope="module")
def pinned() -> dict:
    return json.loads(golden.GOLDEN_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def now() -> dict:
    return golden.current()


def test_the_golden_file_is_of_this_parser_version(pinned: dict) -> None:
    assert pinned["parser_version"] == PARSER_VERSION, (
        f"PARSER_VERSION is {PARSER_VERSION}, the golden file's {pinned['parser_version']}: "
        f"regenerate it with `{golden.REGENERATE}`"
    )


def test_every_document_parses_as_pinned(pinned: dict, now: dict) -> None:
    changed = golden.changed_documents(pinned, now)
    assert not changed, (
        f"{len(changed)} documents parse differently than PARSER_VERSION {PARSER_VERSION} "
        f"pinned: {', '.join(changed[:20])}{' ...' if len(changed) > 20 else ''}. If that is "
        f"meant, bump PARSER_VERSION and regenerate with `{golden.REGENERATE}` "
        "(`python -m tests.golden --show LABEL` prints an outcome)"
    )
    assert now["seeds"] == pinned["seeds"]


def test_the_golden_corpus_holds_every_kind_of_outcome(now: dict) -> None:
    """The pin covers articles, repairs, broken and filtered documents, not only the happy path."""
    mutated = -(-golden.GENERATED_COUNT // golden.MUTATED_EVERY)
    assert len(now["documents"]) == golden.GENERATED_COUNT + mutated + now["hostile"] + 2
    seeds = now["seeds"].values()
    assert {seed["outcome"] for seed in seeds} == {"parsed"}
    assert all("secured" not in json.dumps(seed) for seed in seeds)
