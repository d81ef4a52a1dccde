"""Loading documents: every kind of broken file is skipped or repaired, and said so."""

from __future__ import annotations

import codecs
import itertools
import json
import os
import pwd
import signal
import subprocess
import sys
import tempfile
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.corpus import LoadOptions, Skip, load_corpus, read_document, scan
from tests.support import PROJECT_ROOT, SEEDS, children, document, gone, wait_for


def load(root: Path, **options: object):
    return load_corpus(root, LoadOptions(**options))


def only_skip_with(root: Path, **options: object) -> str:
    corpus = load(root, **options)
    assert len(corpus.report.skipped) == 1, corpus.report.skipped
    return corpus.report.skipped[0].reason


def test_seeds_load_completely() -> None:
    corpus = load(SEEDS)
    assert corpus.report.files == 2
    assert corpus.report.loaded == 2
    assert not corpus.report.skipped
    worcester = next(a for a in corpus.articles if a.provider.slug == "nypost.com")
    assert worcester.published == datetime(2021, 12, 15, 18, 10, tzinfo=UTC)
    assert [t.slug for t in worcester.topics] == ["computer-vision", "ai"]
    assert worcester.image is None  # only its related articles have images
    assert len(worcester.related) == 3
    boston = next(a for a in corpus.articles if a.provider.slug == "wbur.org")
    assert boston.image is not None
    assert (boston.image.width, boston.image.height) == (3000, 2000)
    assert boston.image.mime_type == "image/jpeg"


BROKEN = {
    "malformed YAML": ("---\ntitle: [unclosed\n---\n", "malformed YAML"),
    "no front matter": ("just some text\n", "no front matter"),
    "unclosed front matter": ("---\ntitle: x\n", "no front matter"),
    "empty file": ("", "empty file"),
    "front matter is a list": ("---\n- a\n- b\n---\n", "front matter is a list"),
    "missing title": (document(title=None), "title is missing"),
    "title is a mapping": (document(title="\n  a: b"), "title is a dict"),
    "missing date": (document(publishedDateTime=None), "publishedDateTime is missing"),
    "nonsense date": (document(publishedDateTime='"next tuesday"'), "is not a date"),
    "date is a list": (document(publishedDateTime="[1, 2]"), "not a date"),
    "no provider at all": (document(provider=None, webUrl=None), "provider is missing"),
    "YAML aliases": ("---\na: &x [1, 2]\nb: *x\ntitle: t\n---\n", "YAML aliases"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_document_is_skipped_with_its_reason(tmp_path: Path, name: str) -> None:
    text, reason = BROKEN[name]
    (tmp_path / "broken.txt").write_text(text, encoding="utf-8")
    (tmp_path / "good.txt").write_text(document(), encoding="utf-8")
    corpus = load(tmp_path)
    assert [s.path for s in corpus.report.skipped] == ["broken.txt"]
    assert reason in corpus.report.skipped[0].reason
    assert corpus.report.loaded == 1


def test_binary_and_non_utf8_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (tmp_path / "latin1.txt").write_bytes(document(title='"Caf\xe9"').encode("latin-1"))
    reasons = {s.path: s.reason for s in load(tmp_path).report.skipped}
    assert reasons["binary.txt"].startswith("binary file")
    assert reasons["latin1.txt"].startswith("not UTF-8: byte 0xe9")


def test_bom_and_crlf_load(tmp_path: Path) -> None:
    text = document(title='"With BOM"').replace("\n", "\r\n")
    (tmp_path / "bom.txt").write_bytes(codecs.BOM_UTF8 + text.encode("utf-8"))
    corpus = load(tmp_path)
    assert [a.title for a in corpus.articles] == ["With BOM"]


def test_long_fields_are_bounded_and_oversized_files_skipped(tmp_path: Path) -> None:
    (tmp_path / "huge.txt").write_text(document(excerpt='"' + "x" * 5000 + '"'))
    (article,) = load(tmp_path).articles
    assert len(article.excerpt) == 2000
    assert only_skip_with(tmp_path, max_file_bytes=1000).startswith("too large: ")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-12-15T18:10:00Z", datetime(2021, 12, 15, 18, 10, tzinfo=UTC)),
        ('"2021-12-15T18:10:00Z"', datetime(2021, 12, 15, 18, 10, tzinfo=UTC)),
        ("2021-12-15T20:10:00+02:00", datetime(2021, 12, 15, 18, 10, tzinfo=UTC)),
        ("2021-12-15 18:10:00", datetime(2021, 12, 15, 18, 10, tzinfo=UTC)),
        ("2021-12-15", datetime(2021, 12, 15, tzinfo=UTC)),
        ('"2021-12-15"', datetime(2021, 12, 15, tzinfo=UTC)),
        ('"Wed, 15 Dec 2021 13:10:00 -0500"', datetime(2021, 12, 15, 18, 10, tzinfo=UTC)),
    ],
)
def test_every_date_form_becomes_aware_utc(tmp_path: Path, value: str, expected: datetime) -> None:
    (tmp_path / "dated.txt").write_text(document(publishedDateTime=value))
    (article,) = load(tmp_path).articles
    assert article.published == expected
    assert article.published.utcoffset().total_seconds() == 0


def test_repairs_are_reported_and_article_kept(tmp_path: Path) -> None:
    text = document(
        title='"Bad\\x01 <b>bold</b> title"',
        webUrl='"javascript:alert(1)"',
        topics='"Single Topic"',
        excerpt="[1, 2]",
    )
    text = text.replace("provider:", 'originalUrl: "https://example.com/real"\nprovider:')
    (tmp_path / "repair.txt").write_text(text)
    corpus = load(tmp_path)
    (article,) = corpus.articles
    assert article.title == "Bad bold title"
    assert article.link == "https://example.com/real"
    assert [t.slug for t in article.topics] == ["single-topic"]
    assert article.excerpt == ""
    notes = " | ".join(note for _, note in corpus.report.repairs)
    assert "webUrl is not an http(s) URL" in notes
    assert "excerpt is a list" in notes


def test_non_http_links_never_become_links(tmp_path: Path) -> None:
    for index, url in enumerate(
        [
            "javascript:alert(1)",
            "data:text/html,x",
            "/relative/path",
            "ftp://example.com/x",
            "https://",
        ]
    ):
        text = document(webUrl=f'"{url}"', title=f'"t{index}"')
        (tmp_path / f"{index}.txt").write_text(text)
    corpus = load(tmp_path)
    assert corpus.report.loaded == 5
    assert all(article.link is None for article in corpus.articles)


def test_provider_from_link_host_when_missing(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(document(provider=None, webUrl='"https://www.Example.org/x"'))
    (article,) = load(tmp_path).articles
    assert article.provider.slug == "example.org"


def test_duplicates_are_counted_and_one_copy_served(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(document(excerpt='"first copy"'))
    (tmp_path / "b.txt").write_text(document(excerpt='"second copy"'))
    corpus = load(tmp_path)
    assert corpus.report.loaded == 1
    (skip,) = corpus.report.skipped
    assert skip.reason.startswith("duplicate: same article as ")


def test_id_survives_rename_and_move(tmp_path: Path) -> None:
    first = tmp_path / "one"
    first.mkdir()
    (first / "doc.txt").write_text(document())
    before = load(first).articles[0].id
    second = tmp_path / "two" / "deeper"
    second.mkdir(parents=True)
    (first / "doc.txt").rename(second / "renamed.md")
    after = load(tmp_path / "two").articles[0].id
    assert before == after
    assert before.startswith("urn:uuid:")


def test_filters_are_settings_and_counted(tmp_path: Path) -> None:
    draft = document(title='"Draft"').replace("---\n", "---\npublished: false\nquality: 50\n", 1)
    (tmp_path / "draft.txt").write_text(draft)
    (tmp_path / "low.txt").write_text(
        document(title='"Low"', webUrl='"https://example.com/low"').replace(
            "---\n", "---\nquality: 3\n", 1
        )
    )
    assert load(tmp_path).report.loaded == 2
    strict = load(tmp_path, include_unpublished=False, min_quality=10)
    assert strict.report.loaded == 0
    assert sorted(s.reason for s in strict.report.filtered) == [
        "published is false",
        "quality 3 below 10",
    ]
    assert not strict.report.skipped


def test_hidden_files_and_other_suffixes_are_ignored(tmp_path: Path) -> None:
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "a.txt").write_text(document())
    (tmp_path / ".b.txt").write_text(document())
    (tmp_path / "c.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.MD").write_text(document())
    assert [Path(found.path).name for found in scan(tmp_path)] == ["d.MD"]


def test_secured_token_is_never_kept(tmp_path: Path) -> None:
    secret = "TOPSECRETTOKEN=="
    (tmp_path / "a.txt").write_text(document().replace("---\n", f'---\nsecured: "{secret}"\n', 1))
    corpus = load(tmp_path)
    assert secret not in repr(corpus.articles)


def test_impossible_unquoted_date_is_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_text(document(publishedDateTime="2021-13-45"))
    assert only_skip_with(tmp_path).startswith("publishedDateTime is not a date")


def test_a_fifo_is_skipped_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")  # opening it for reading would wait for a writer
    (tmp_path / "good.txt").write_text(document())
    corpus = load(tmp_path)
    assert corpus.report.loaded == 1
    (skip,) = corpus.report.skipped
    assert (skip.path, skip.reason) == (
        "pipe.txt",
        "not a regular file: a FIFO, device, socket or directory",
    )


def test_symbolic_links_are_followed_only_inside_the_corpus(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text(document(title='"Outside"', webUrl='"https://example.com/out"'))
    root = tmp_path / "corpus"
    (root / "real").mkdir(parents=True)
    (root / "real" / "inside.txt").write_text(document(title='"Inside"'))
    (root / "in-link.txt").symlink_to(root / "real" / "inside.txt")
    (root / "out-link.txt").symlink_to(outside)
    (root / "dev-link.txt").symlink_to("/dev/zero")
    corpus = load(root)
    reasons = {skip.path: skip.reason for skip in corpus.report.skipped}
    assert reasons["out-link.txt"] == "a symbolic link to outside the corpus"
    assert reasons["dev-link.txt"] == "a symbolic link to outside the corpus"
    assert reasons["real/inside.txt"].startswith("duplicate: same article as in-link.txt")
    assert [a.title for a in corpus.articles] == ["Inside"]


def load_unprivileged(root: Path) -> tuple[int, list[tuple[str, str]]]:
    """Load in a forked child that drops root first, since root reads mode-000 directories."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            if os.geteuid() == 0:
                nobody = pwd.getpwnam("nobody")
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            report = load(root).report
            found = [report.loaded, [(skip.path, skip.reason) for skip in report.skipped]]
            os.write(writer, json.dumps(found).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    loaded, skipped = json.loads(data)
    return loaded, [tuple(skip) for skip in skipped]


def test_an_unreadable_directory_is_reported_not_dropped() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as name:  # a path `nobody` can reach
        root = Path(name)
        root.chmod(0o755)
        (root / "good.txt").write_text(document())
        locked = root / "locked"
        locked.mkdir()
        (locked / "article.txt").write_text(document(title='"Locked"'))
        locked.chmod(0)
        try:
            loaded, skipped = load_unprivileged(root)
        finally:
            locked.chmod(0o755)
    assert loaded == 1
    assert skipped == [("locked/", "unreadable directory: Permission denied")]


def test_an_unlisted_folder_reads_as_the_skip_scan_gave(tmp_path: Path) -> None:
    """The index reads a folder's label in its parsing processes: the same reason as `scan`."""
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text(document())
    (listed,) = scan(not_a_folder)
    assert listed == Skip("./", "unreadable directory: Not a directory")
    assert read_document(not_a_folder, "./", LoadOptions()) == listed
    assert read_document(tmp_path, "file.txt/", LoadOptions()) == Skip(
        "file.txt/", "unreadable directory: Not a directory"
    )


DEEP = {
    "flow sequences": "a: " + "[" * 30_000 + "]" * 30_000,
    "flow mappings": "a: " + "{a: " * 20_000 + "}" * 20_000,
    "block sequences on one line": "a:\n" + "- " * 30_000 + "x",
    "block mappings by indentation": "".join(f"{' ' * i}k{i}:\n" for i in range(1000)),
    "flow inside deep block": "a:\n" + "- " * 40 + "[" * 40 + "]" * 40,
}


@pytest.mark.parametrize("case", DEEP)
def test_deep_nesting_is_refused_before_parsing(tmp_path: Path, case: str) -> None:
    (tmp_path / "deep.txt").write_text(document().replace("---\n", f"---\n{DEEP[case]}\n", 1))
    (tmp_path / "good.txt").write_text(document(webUrl='"https://example.com/good"'))
    assert only_skip_with(tmp_path) == "nested deeper than 64 levels"


def test_many_brackets_and_moderate_nesting_still_load(tmp_path: Path) -> None:
    """Over the cheap bound, the exact measure lets honest documents through."""
    brackets = '"' + "[Video] {live} " * 40 + '"'
    nested = "extra: " + "[" * 30 + "]" * 30
    (tmp_path / "a.txt").write_text(
        document(title=brackets).replace("---\n", f"---\n{nested}\n", 1)
    )
    (article,) = load(tmp_path).articles
    assert article.title.startswith("[Video] {live}")


TAGS = [
    "!!bool",
    "!!int",
    "!!float",
    "!!timestamp",
    "!!binary",
    "!!null",
    "!!set",
    "!!omap",
    "!!pairs",
    "!!seq",
    "!!map",
    "!!str",
    "!!python/name:os.system",
    "!local",
    "!<tag:x,1:y>",
]
VALUES = ["maybe", "notadate", "0x", "[1, [2]]", "{a: 1}", '""', "~", "2021-02-30", "-"]


def test_no_tag_or_value_stops_the_load(tmp_path: Path) -> None:
    for index, (tag, value) in enumerate(itertools.product(TAGS, VALUES)):
        field = document(webUrl=f'"https://example.com/{index}"', title=f'"t{index}"')
        text = field.replace("---\n", f"---\nheat: {tag} {value}\n", 1)
        (tmp_path / f"{index:03}.txt").write_text(text)
    corpus = load(tmp_path)  # raises, in the unprotected loader, at `!!bool maybe`
    assert corpus.report.loaded + len(corpus.report.skipped) == len(TAGS) * len(VALUES)
    reasons = {skip.reason for skip in corpus.report.skipped}
    assert "malformed YAML: a value its tag cannot hold" in reasons
    for reason in reasons:
        assert "!" not in reason and "maybe" not in reason and "'" not in reason


def with_line(line: str, **fields: str) -> str:
    return document(**fields).replace("---\n", f"---\n{line}\n", 1)


@pytest.mark.parametrize("value", ["false", "no", "No", "off", "OFF"])
def test_yaml_11_false_words_still_mean_unpublished(tmp_path: Path, value: str) -> None:
    """YAML 1.2 reads `no` as text; a draft written for YAML 1.1 must not go live."""
    (tmp_path / "draft.txt").write_text(with_line(f"published: {value}"))
    corpus = load(tmp_path, include_unpublished=False)
    assert corpus.report.loaded == 0
    assert [skip.reason for skip in corpus.report.filtered] == ["published is false"]


def test_yaml_12_reads_words_numbers_and_dates_as_written(tmp_path: Path) -> None:
    """Decided: topics `no`/`on`, a `0777` quality, `yes` and date-like titles are what
    the author wrote (YAML 1.1 made booleans, octal and dates of them and lost them)."""
    text = with_line("quality: 0777\ncategory: yes", title="2021-12-15", topics="[no, on, AI]")
    (tmp_path / "a.txt").write_text(text)
    (tmp_path / "b.txt").write_text(document(title='"2021-12-16"', webUrl='"https://e.com/b"'))
    corpus = load(tmp_path, min_quality=700)  # 0777 is 777 now, not 511
    (first,) = corpus.articles
    assert first.title == "2021-12-15"
    assert [t.name for t in first.topics] == ["no", "on", "AI"]
    assert first.category == "yes"
    assert [s.reason for s in corpus.report.filtered] == ["quality 0 below 700"]


@pytest.mark.parametrize(
    "value",
    ["2021-12-15t18:10:00z", "2021-12-15 13:10:00 -5", "2021-12-15T18:10:00.000Z"],
)
def test_yaml_11_timestamp_spellings_keep_their_meaning(tmp_path: Path, value: str) -> None:
    (tmp_path / "a.txt").write_text(document(publishedDateTime=value))
    (article,) = load(tmp_path).articles
    assert article.published == datetime(2021, 12, 15, 18, 10, tzinfo=UTC)


def test_a_repeated_key_keeps_its_last_value_as_before(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(with_line('title: "first"', title='"last"'))
    (article,) = load(tmp_path).articles
    assert article.title == "last"


def test_parsers_leave_when_their_indexer_is_killed() -> None:
    """An indexer killed mid-build (the supervisor's SIGKILL after its stop timeout) left
    its parsing processes blocked for ever on the pipe back to it, ignoring SIGTERM as
    the indexer does (a flag); they now exit by themselves."""
    indexer = textwrap.dedent(
        """
        import signal, time
        from feeds.corpus.load import read_documents
        signal.signal(signal.SIGTERM, lambda *_: None)  # the indexer's flag, inherited
        outcomes = read_documents(["label"] * 20_000, str.upper, 2)
        next(outcomes)
        print("reading", flush=True)
        time.sleep(60)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", indexer], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "reading\n"
        parsers = children(process.pid)
        assert parsers, "read_documents forks its parsers"
    finally:
        process.kill()
        process.wait()
    try:
        wait_for(lambda: [pid for pid in parsers if not gone(pid)], lambda alive: not alive, 10)
    finally:
        for pid in parsers:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
