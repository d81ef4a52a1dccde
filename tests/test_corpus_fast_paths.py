"""Each shortcut of the corpus stage gives what the whole work gives, on hostile strings.

The golden parse (test_corpus_golden.py) pins whole documents; these compare a quick
path with the full one it skips, value by value, over strings drawn from the characters
that make each check decide (spaces of every kind, controls, `<`, `>`, `:`, `@`, `[`).
"""

from __future__ import annotations

from random import Random

from feeds.corpus.normalize import clean_text, cleaned

ROUNDS = 20_000

TEXT_ALPHABET = ["a", "Z", "é", "東", "🚀", " ", "  ", "\t", "\n", "\xa0", "\x85", "\u2028"]
TEXT_ALPHABET += ["\x00", "\x1f", "\x7f", "\ufffe", "<", ">", "<b>", "…", "&", "-", "\u200b"]


def strings(alphabet: list[str], seed: int, longest: int = 12) -> list[str]:
    rng = Random(seed)
    return ["".join(rng.choices(alphabet, k=rng.randint(0, longest))) for _ in range(ROUNDS)]


def test_text_passed_by_the_quick_check_is_what_cleaning_gives() -> None:
    for limit in (5, 300):
        for text in strings(TEXT_ALPHABET, seed=limit):
            assert clean_text(text, "title", limit) == cleaned(text, limit), repr(text)
