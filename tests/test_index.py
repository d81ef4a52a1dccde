"""The SQLite corpus index: what it holds, incremental updates, and damaged or foreign files."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from feeds.corpus import LoadOptions, load_corpus
from feeds.index import indexer
from feeds.index.indexer import Target, apply, open_index, reconcile, update
from feeds.index.reader import IndexReader, NotReady
from feeds.settings import load_settings
from tests.support import document, index_view

# Every row of every table, in a stable order: two indexes are equal when these are.
# What a corpus decides, whatever order its files came in. Left out, by design: copy
# numbers, an edit's time (`data[10]`) and how entries are sealed into archive pages
# (arrival order); which entries each feed serves is compared.
TABLE_QUERIES = {
    "documents": "SELECT path, size, mtime_ns, digest, outcome, reason, repairs, article_id,"
    " quality FROM documents ORDER BY path",
    "articles": "SELECT id, path, digest, quality, published, provider,"
    " json_remove(data, '$[10]') FROM articles ORDER BY id",
    "article_topics": "SELECT * FROM article_topics ORDER BY topic, published, id",
    "feeds": "SELECT kind, slug, name, domain, count, newest, digest FROM feeds"
    " ORDER BY kind, slug",
    "entries": "SELECT kind, slug, published, id FROM entries WHERE retired = 0"
    " ORDER BY kind, slug, published, id",
    "names": "SELECT * FROM names ORDER BY kind, slug, name",
}


def target_for(root: Path, data_dir: Path, **overrides: object) -> Target:
    settings = load_settings({"CORPUS_DIR": str(root), "DATA_DIR": str(data_dir), **overrides})
    return Target.from_settings(settings)


def rows(target: Target) -> dict[str, list[tuple]]:
    db = sqlite3.connect(target.path)
    try:
        return {name: db.execute(query).fetchall() for name, query in TABLE_QUERIES.items()}
    finally:
        db.close()


def test_the_index_holds_what_a_whole_load_gives(generated: Path, tmp_path: Path) -> None:
    view = index_view(generated, tmp_path, MIN_QUALITY=20)
    loaded = load_corpus(generated, LoadOptions(min_quality=20))
    newest_first = sorted(loaded.articles, key=lambda a: (-a.published.timestamp(), a.id))
    assert list(view.articles) == newest_first
    for slug in view.topics:
        expected = [a for a in newest_first if slug in {t.slug for t in a.topics}]
        assert list(view.by_topic[slug]) == expected
        names = [t.name for a in expected for t in a.topics if t.slug == slug]
        assert view.topics[slug].name == min(set(names), key=lambda n: (-names.count(n), n))
    for slug in view.providers:
        expected = [a for a in newest_first if a.provider.slug == slug]
        assert list(view.by_provider[slug]) == expected
    report = view.report()
    assert sorted(s.path for s in report.skipped) == sorted(s.path for s in loaded.report.skipped)
    assert len(report.filtered) == len(loaded.report.filtered) > 0
    assert view.counts()["loaded"] == len(loaded.articles)


def test_feeds_read_newest_first_in_slices_and_are_read_only(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    docs = {
        "old": document(
            publishedDateTime="2020-01-01T00:00:00Z",
            webUrl='"https://a.com/old"',
            topics="\n  - Robots\n  - AI",
        ),
        "new": document(
            publishedDateTime="2023-01-01T00:00:00Z",
            webUrl='"https://a.com/new"',
            topics="\n  - ai",
        ),
        "other": document(
            publishedDateTime="2021-01-01T00:00:00Z",
            webUrl='"https://b.org/x"',
            provider="\n  name: B\n  domain: www.B.org",
        ),
    }
    for name, text in docs.items():
        (corpus / f"{name}.txt").write_text(text)
    view = index_view(corpus, tmp_path / "data")
    links = ["https://a.com/new", "https://b.org/x", "https://a.com/old"]
    assert [a.link for a in view.articles] == links
    assert [a.link for a in view.by_topic["ai"]] == links
    assert [a.link for a in view.by_topic["robots"]] == ["https://a.com/old"]
    assert set(view.providers) == {"example.com", "b.org"}
    assert view.providers["b.org"].name == "B"
    assert [a.link for a in view.articles[1:3]] == links[1:3]
    assert view.articles[-1].link == links[-1]
    assert view.articles[5:9] == ()
    with pytest.raises(IndexError):
        view.articles[3]
    with pytest.raises(TypeError):
        view.topics["new"] = None  # read-only


def change(root: Path, how: str) -> str:
    """Change the corpus one way; returns the path the change is about."""
    files = sorted(root.rglob("*.txt"))
    path = files[len(files) // 2]
    if how == "add":
        text = document(webUrl='"https://example.com/added"', title='"Added"')
        (root / "added.txt").write_text(text)
        return "added.txt"
    if how == "edit":
        path.write_text(path.read_text().replace("title:", "title: Edited", 1))
    elif how == "rename":
        path.rename(path.with_name("renamed.txt"))
    elif how == "remove":
        path.unlink()
    elif how == "duplicate":  # a better copy of an indexed article
        text = path.read_text().replace("---\n", "---\nquality: 1000\n", 1)
        (root / "better.txt").write_text(text)
    return path.relative_to(root).as_posix()


def test_a_corpus_arriving_in_batches_equals_one_built_at_once(
    generated: Path, tmp_path: Path
) -> None:
    """Feeds joined article by article (live) equal feeds derived from a whole first build."""
    root = tmp_path / "corpus"
    files = sorted(path for path in generated.rglob("*") if path.is_file())
    batched = target_for(root, tmp_path / "batched")
    for batch in (files[:50], files[50:400], files[400:]):
        for path in batch:
            destination = root / path.relative_to(generated)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
        update(batched)
    full = target_for(root, tmp_path / "full")
    update(full)
    assert rows(batched) == rows(full)


def test_feed_names_are_the_most_used_spelling_however_files_arrive(tmp_path: Path) -> None:
    spellings = ["robots", "Robots", "ROBOTS", "Robots", "robots", "Robots"]
    root = tmp_path / "corpus"
    root.mkdir()
    batched = target_for(root, tmp_path / "batched")
    for index, spelling in enumerate(spellings):  # "robots" leads until the last file
        (root / f"{index}.txt").write_text(
            document(
                title=f'"Robot {index}"',
                webUrl=f'"https://robots.example/{index}"',
                topics=f"\n  - {spelling}",
                provider=f"\n  name: {spelling} Weekly\n  domain: robots.example",
            )
        )
        update(batched)
    full = target_for(root, tmp_path / "full")
    update(full)
    assert rows(batched) == rows(full)
    view = index_view(root, tmp_path / "view")
    assert view.topics["robots"].name == "Robots"
    assert [p.name for p in view.providers.values()] == ["Robots Weekly"]


def test_changes_applied_during_a_walk_are_kept_by_it(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The follow loop applies what it saw while a long reconciliation walks the directory
    (a write before a SIGHUP, or during a restart's walk); the walk must not undo it."""
    root = tmp_path / "corpus"
    shutil.copytree(generated, root)
    target = target_for(root, tmp_path / "walked")
    update(target)
    for path in sorted(root.rglob("*.txt"))[::3]:  # a walk with work to do
        path.write_text(path.read_text().replace("title: ", "title: Changed ", 1))
    doomed = sorted(root.rglob("*.txt"))[-1]
    db = open_index(target)
    calls = []

    def meanwhile() -> None:
        if not calls:
            (root / "arrived.txt").write_text(document(title='"Arrived mid-walk"'))
            doomed.unlink()
            apply(db, target, ["arrived.txt", doomed.relative_to(root).as_posix()])
        calls.append(1)

    monkeypatch.setattr(indexer, "MEANWHILE_SECONDS", 0)
    try:
        reconcile(db, target, meanwhile=meanwhile)
    finally:
        db.close()
    assert len(calls) > 1
    full = target_for(root, tmp_path / "full")
    update(full)
    assert rows(target) == rows(full)
    paths = {row[0] for row in rows(target)["documents"]}
    assert "arrived.txt" in paths and doomed.relative_to(root).as_posix() not in paths


def test_a_walk_of_a_served_index_commits_what_it_found_before_it_ends(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart or SIGHUP walks every file (18 s at a million): a change it finds early
    is served then, not when the walk ends."""
    root = tmp_path / "corpus"
    shutil.copytree(generated, root)
    target = target_for(root, tmp_path / "data")
    update(target)
    first = sorted(root.rglob("*.txt"))[0]
    first.write_text(first.read_text().replace("title: ", "title: Found early ", 1))
    label = first.relative_to(root).as_posix()
    db = open_index(target)
    before = db.execute("SELECT digest FROM documents WHERE path = ?", (label,)).fetchone()
    seen = []

    def meanwhile() -> None:
        row = db.execute("SELECT digest FROM documents WHERE path = ?", (label,)).fetchone()
        seen.append(row != before)

    monkeypatch.setattr(indexer, "MEANWHILE_SECONDS", 0)
    time.sleep(1)  # commits are paced to a second past the last one
    try:
        reconcile(db, target, meanwhile=meanwhile)
    finally:
        db.close()
    assert True in seen[:-1], "the change waited for the end of the walk"


@pytest.mark.parametrize("how", ["add", "edit", "rename", "remove", "duplicate"])
def test_a_change_parses_only_what_changed_and_equals_a_full_build(
    generated: Path, tmp_path: Path, how: str
) -> None:
    root = tmp_path / "corpus"
    shutil.copytree(generated, root)
    incremental = target_for(root, tmp_path / "incremental")
    update(incremental)
    change(root, how)
    changes = update(incremental)
    assert changes is not None
    assert changes.parsed == {"add": 1, "edit": 1, "rename": 1, "remove": 0, "duplicate": 1}[how]
    assert changes.removed == {"rename": 1, "remove": 1}.get(how, 0)
    full = target_for(root, tmp_path / "full")
    update(full)
    assert rows(incremental) == rows(full)


def test_the_served_copy_of_a_duplicate_follows_its_files(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = document(title='"Plain"')
    (corpus / "a.txt").write_text(text)
    (corpus / "b.txt").write_text(
        text.replace('"Plain"', '"Better"').replace("---\n", "---\nquality: 5\n", 1)
    )
    target = target_for(corpus, tmp_path / "data")
    update(target)
    assert [a.title for a in IndexReader(target.path).view().articles] == ["Better"]
    (corpus / "b.txt").unlink()
    update(target)
    assert [a.title for a in IndexReader(target.path).view().articles] == ["Plain"]


def test_a_rewrite_that_keeps_size_and_mtime_is_still_seen(tmp_path: Path) -> None:
    """A file rewritten within the clock tick it was read in keeps its stamp: hash it."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    path = corpus / "a.txt"
    path.write_text(document(title='"Title one"'))
    target = target_for(corpus, tmp_path / "data")
    update(target)
    stamp = path.stat()
    path.write_text(document(title='"Title two"'))
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert update(target).parsed == 1
    assert IndexReader(target.path).view().articles[0].title == "Title two"


def test_a_damaged_index_is_set_aside_and_rebuilt(generated: Path, tmp_path: Path) -> None:
    target = target_for(generated, tmp_path)
    update(target)
    expected = rows(target)
    with target.path.open("r+b") as handle:
        handle.seek(0)
        handle.write(b"not a database at all" * 10)
    for suffix in ("-wal", "-shm"):
        Path(f"{target.path}{suffix}").unlink(missing_ok=True)
    update(target)
    assert rows(target) == expected
    assert list(tmp_path.glob("*.damaged-*")), "the damaged file is kept for inspection"


def test_an_index_of_another_corpus_or_code_is_never_trusted(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(document())
    target = target_for(corpus, tmp_path / "data")
    update(target)
    db = sqlite3.connect(target.path)
    db.execute("UPDATE meta SET value = 'other code' WHERE key = 'code'")
    db.execute("DELETE FROM articles")
    db.commit()
    db.close()
    update(target)
    assert len(IndexReader(target.path).view().articles) == 1


def test_readers_wait_for_the_first_complete_index(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(document())
    target = target_for(corpus, tmp_path / "data")
    reader = IndexReader(target.path)
    with pytest.raises(NotReady):
        reader.view()  # no file yet
    db = open_index(target)
    with pytest.raises(NotReady):
        reader.view()  # a file, but no complete build in it
    reconcile(db, target)
    db.close()
    assert len(reader.view().articles) == 1


def test_a_rescan_that_finds_no_change_commits_nothing(tmp_path: Path) -> None:
    """Without change events the indexer rescans every few seconds: a commit at each would
    make every worker open a new view and drop its cached answers."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(document())  # its stamp in doubt: hashed, unchanged
    target = target_for(corpus, tmp_path / "data")
    update(target)
    reader = IndexReader(target.path)
    before = reader.view()
    changes = update(target)
    assert changes is not None and (changes.parsed, changes.removed) == (0, 0)
    assert reader.view() is before


def test_a_file_in_doubt_is_hashed_until_a_rescan_finds_it_unchanged_after_its_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file read within DOUBT_NS of its write (as every file indexed from its change
    event is) may have been written again in the same clock tick, so a rescan hashes it.
    Its read time was never moved on, so it was hashed at every rescan for ever: one
    rescan that finds it unchanged, long after its write, takes it out of doubt."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(document())
    written = time.time_ns() - 60 * 10**9
    os.utime(corpus / "a.txt", ns=(written, written))
    target = target_for(corpus, tmp_path / "data")
    update(target)
    db = open_index(target)
    db.execute("UPDATE documents SET read_ns = mtime_ns")  # read as it was written
    db.close()
    hashed: list[Path] = []
    real_hash = indexer._hash

    def counted(path: Path) -> str:
        hashed.append(path)
        return real_hash(path)

    monkeypatch.setattr(indexer, "_hash", counted)
    for _ in range(3):
        changes = update(target)
        assert changes is not None and (changes.parsed, changes.removed) == (0, 0)
    assert len(hashed) == 1


def test_a_new_view_follows_each_commit_and_old_views_stay_whole(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(document(webUrl='"https://example.com/a"'))
    target = target_for(corpus, tmp_path / "data")
    update(target)
    reader = IndexReader(target.path)
    before = reader.view()
    assert reader.view() is before  # nothing committed: the same view
    (corpus / "b.txt").write_text(document(webUrl='"https://example.com/b"'))
    update(target)
    after = reader.view()
    assert after is not before
    assert len(after.articles) == 2
    assert len(list(before.articles)) == len(before.articles) == 1


# The tables that grow with the corpus: a statement reading one of them whole costs a
# tenth of a second or more at 1,000,000 documents.
CORPUS_SIZED = ("documents", "articles", "article_topics", "entries", "withdrawn", "retired")


def test_a_live_add_edit_and_removal_read_no_corpus_sized_table_whole(tmp_path: Path) -> None:
    """A removal at 1,000,000 documents took 0.5 s of SQL: the withdrawal deleted the
    article's topics by id, which is not their key (0.38 s), and the guard against an
    emptied corpus counted every document (0.13 s). Every statement an add, an edit and a
    removal run now finds its rows through an index, or reads a bounded number of them."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number in range(20):
        (corpus / f"{number}.md").write_text(
            document(title=f'"Article {number}"', webUrl=f'"https://example.com/{number}"')
        )
    target = target_for(corpus, tmp_path / "data")
    update(target)
    db = open_index(target)
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    for title in ('"Live one"', '"Live one, edited"', None):
        if title is None:
            (corpus / "live.md").unlink()
        else:
            (corpus / "live.md").write_text(document(title=title, webUrl='"https://example.com/l"'))
        apply(db, target, {"live.md"}, ())
    db.set_trace_callback(None)
    whole = []
    for sql in dict.fromkeys(statements):
        if not sql.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            continue
        for *_, step in db.execute("EXPLAIN QUERY PLAN " + sql):
            table = step.split()[1] if step.startswith("SCAN ") else ""
            if table in CORPUS_SIZED and " LIMIT " not in sql:
                whole.append(f"{step}: {' '.join(sql.split())[:120]}")
    db.close()
    assert whole == []


def test_a_folder_named_like_a_document_takes_its_documents_when_it_goes(
    tmp_path: Path,
) -> None:
    """`notes.md/` removed or renamed is named as one path (by a change event or the folder
    poller): its documents must go with it, or a renamed one is indexed twice."""
    corpus = tmp_path / "corpus"
    (corpus / "notes.md").mkdir(parents=True)
    (corpus / "notes.md" / "a.md").write_text(document(webUrl='"https://example.com/a"'))
    target = target_for(corpus, tmp_path / "data")
    update(target)
    (corpus / "notes.md").rename(corpus / "old")
    db = open_index(target)
    apply(db, target, {"notes.md", "old"}, set())
    assert [path for (path,) in db.execute("SELECT path FROM documents")] == ["old/a.md"]
    db.close()
