"""First renders are bounded per worker and per client; cached answers never wait for them.

The gate's rules are checked directly (threads standing in for clients); what it is for
is checked through the real server: a poller of a cached feed keeps being answered while
clients flood it with never-seen custom feeds, which get quick 503s beyond the bound.
Compression is done only for the codings clients ask for, and previews and searches
asked twice are rendered once.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import pytest
import requests

from feeds import renders
from feeds.app import create_app
from feeds.http.fastpath import BUSY, FastPath
from feeds.http.observe import FAST_TIER
from feeds.http.served import served
from feeds.renders import CLIENT, Busy, RenderGate
from tests.support import Server, wait_for

FLOOD_SECONDS = 4.0
FLOODERS = 16
POLL_PAUSE = 0.05
WRK_CONNECTIONS = 32


def in_thread(gate: RenderGate, client: str) -> tuple[threading.Event, threading.Event, list]:
    """A render by `client` in a thread: (admitted, release, outcome), held until released."""
    admitted, release, outcome = threading.Event(), threading.Event(), []

    def run() -> None:
        CLIENT.set(client)
        try:
            with gate.admit():
                admitted.set()
                release.wait(10)
            outcome.append("rendered")
        except Busy:
            outcome.append("busy")
            admitted.set()

    threading.Thread(target=run, daemon=True).start()
    return admitted, release, outcome


def admits(gate: RenderGate, client: str) -> bool:
    token = CLIENT.set(client)
    try:
        with gate.admit():
            return True
    except Busy:
        return False
    finally:
        CLIENT.reset(token)


def test_one_client_gets_its_share_and_others_still_render() -> None:
    gate = RenderGate(running=1, waiting=2, per_client=1)
    admitted, release, _ = in_thread(gate, "10.0.0.1")
    assert admitted.wait(5)
    assert not admits(gate, "10.0.0.1")  # no slot free, its one render in flight: refused
    second, release_second, outcome = in_thread(gate, "10.0.0.2")  # waits for the slot
    wait_until(lambda: gate.in_flight == 2)
    release.set()
    assert second.wait(5)  # the other client's turn came
    release_second.set()
    wait_until(lambda: outcome == ["rendered"] and gate.in_flight == 0)
    assert admits(gate, "10.0.0.1")  # its render is done: its share is back
    assert gate.refused == 1


def test_a_free_slot_is_anyones() -> None:
    """A reader whose feeds all need a first render (a release) is not refused while the
    worker has a slot free; only under contention does its share bind."""
    gate = RenderGate(running=2, waiting=2, per_client=1)
    admitted, release, _ = in_thread(gate, "10.0.0.1")
    assert admitted.wait(5)
    assert admits(gate, "10.0.0.1")  # the second slot was free
    release.set()
    wait_until(lambda: gate.in_flight == 0)
    assert gate.refused == 0


def test_renders_beyond_the_running_and_waiting_bound_are_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = RenderGate(running=1, waiting=1, per_client=1)
    slots, _ = gate._parts()
    waited: list[str] = []  # the clients that asked the semaphore for a slot, in order

    class Recorded:
        def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
            waited.append(CLIENT.get())
            return slots.acquire(blocking, timeout)

        def release(self) -> None:
            slots.release()

    monkeypatch.setattr(gate, "_slots", Recorded())
    first, release_first, first_outcome = in_thread(gate, "10.0.0.1")
    assert first.wait(5)
    _, release_second, second_outcome = in_thread(gate, "10.0.0.2")  # waits for the slot
    wait_until(lambda: gate.in_flight == 2 and len(waited) == 2)
    assert not admits(gate, "10.0.0.3")
    assert gate.refused == 1 and gate.in_flight == 2
    assert waited == ["10.0.0.1", "10.0.0.2"], "refused, not queued for a slot"
    release_second.set()
    release_first.set()
    wait_until(lambda: len(first_outcome) == len(second_outcome) == 1)
    assert first_outcome == second_outcome == ["rendered"]  # the waiter got its turn
    assert gate.in_flight == 0


def test_work_without_a_client_and_renders_inside_renders_take_no_slot() -> None:
    gate = RenderGate(running=1, waiting=0, per_client=1)
    with gate.admit():  # a command or a WebSub push: no client
        pass
    token = CLIENT.set("10.0.0.1")
    try:
        with gate.admit(), gate.admit():  # a custom feed's query, then its document
            assert gate.in_flight == 1
    finally:
        CLIENT.reset(token)
    assert gate.in_flight == 0


def test_the_locks_are_made_in_each_process_that_uses_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Made in the preloading master, they would be real OS locks in gevent workers."""
    gate = RenderGate(running=1, waiting=0)
    assert gate._slots is None and gate._lock is None  # nothing made when the app is built
    assert admits(gate, "10.0.0.1")
    made = gate._slots
    assert made is not None and admits(gate, "10.0.0.1") and gate._slots is made
    monkeypatch.setattr(renders.os, "getpid", lambda: -1)  # as in a forked worker
    assert admits(gate, "10.0.0.1")
    assert gate._slots is not made


def wait_until(done: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not done in time"
        time.sleep(0.01)


def test_the_fast_path_refuses_a_new_query_from_a_client_whose_renders_are_in_flight() -> None:
    gate = RenderGate(running=1, waiting=0, per_client=1)  # no slot free once it renders
    fast = FastPath(lambda: "view", 10, 10**6, gate)
    asking = {"REQUEST_METHOD": "GET", "PATH_INFO": "/feeds/custom.rss", "REMOTE_ADDR": "10.0.0.1"}
    with slot_taken(gate, "10.0.0.1"):
        refused = fast.lookup({**asking, "QUERY_STRING": "q=new"})
        assert refused is BUSY and refused.status == 503
        assert ("Retry-After", "1") in refused.headers
        assert fast.lookup(asking) is None  # no query: Flask answers
        assert fast.lookup({**asking, "QUERY_STRING": "q=new", "REMOTE_ADDR": "10.0.0.2"}) is None
    wait_until(lambda: gate.in_flight == 0)
    assert fast.lookup({**asking, "QUERY_STRING": "q=new"}) is None


# Through Flask: the 503, and cached answers while every slot is taken.


@contextmanager
def slot_taken(app_gate: RenderGate, client: str = "127.0.0.1") -> Iterator[None]:
    admitted, release, outcome = in_thread(app_gate, client)
    assert admitted.wait(5)
    try:
        yield
    finally:
        release.set()
        wait_until(lambda: bool(outcome))  # the slot is free again, not only asked to be


def test_over_the_bound_a_render_gets_503_and_a_cached_feed_is_still_served(
    generated: Path,
) -> None:
    app = create_app({"CORPUS_DIR": str(generated), "RENDERS": 1, "RENDER_QUEUE": 0})
    client = app.test_client()
    assert client.get("/feeds/all.rss").status_code == 200
    gate = served(app).runtime.site.cache.gate
    with slot_taken(gate, "192.0.2.9"):
        refused = client.get("/feeds/custom.rss?min_quality=-1&limit=500")
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["Cache-Control"] == "no-store"
        assert b"busy" in refused.data
        assert client.get("/feeds/all.rss").status_code == 200  # cached: no slot needed
        assert client.get("/?q=ai").status_code == 503  # a search is a render too
        assert client.get("/feeds/all.rss?limit=77").status_code == 503  # so is a new limit
    assert client.get("/feeds/custom.rss?min_quality=-1&limit=500").status_code == 200
    assert served(app).runtime.site.cache.stats["busy"] == 3


@pytest.mark.parametrize("first", ["gzip", "br", "identity"])
def test_validators_are_the_same_whichever_coding_is_made_first(
    generated: Path, first: str
) -> None:
    codings = [first, *(c for c in ("gzip", "br", "identity") if c != first)]
    client = create_app({"CORPUS_DIR": str(generated)}).test_client()
    etags = {}
    for coding in codings:
        answer = client.get(
            "/feeds/custom.atom?min_quality=10", headers={"Accept-Encoding": coding}
        )
        assert answer.status_code == 200
        etags[coding] = answer.headers["ETag"]
    plain = etags["identity"].strip('"')
    assert etags == {"identity": f'"{plain}"', "gzip": f'"{plain}-gz"', "br": f'"{plain}-br"'}


# Through the real server (gunicorn from the Procfile, one worker so counts add up).


def health(server: Server) -> dict:
    return server.get("/healthz").json()["cache"]


def test_identity_costs_no_compression_and_each_coding_is_made_once(
    server_factory: Callable[..., Server], generated: Path
) -> None:
    server = server_factory(FEEDS_CORPUS_DIR=str(generated), WEB_CONCURRENCY="1")
    path = "/feeds/custom.rss?min_quality=20&limit=300"
    before = health(server)["compressions"]
    plain = server.get(path, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    assert health(server)["compressions"] == before
    for _ in range(2):
        packed = server.get(path, headers={"Accept-Encoding": "gzip"})
        assert packed.headers["Content-Encoding"] == "gzip"
        assert packed.content == plain.content  # requests inflates it
    assert health(server)["compressions"] == {**before, "gzip": before["gzip"] + 1}
    assert packed.headers["ETag"] == plain.headers["ETag"][:-1] + '-gz"'


def test_a_preview_and_a_search_asked_twice_render_once(
    server_factory: Callable[..., Server], generated: Path
) -> None:
    server = server_factory(FEEDS_CORPUS_DIR=str(generated), WEB_CONCURRENCY="1")
    for path in ("/custom?min_quality=30", "/?q=the"):
        before = health(server)["renders"]
        answers = [server.get(path) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert answers[0].headers["ETag"] == answers[1].headers["ETag"]
        assert health(server)["renders"] == before + 1, path


def flood(url: str, seconds: float, index: int) -> list[tuple[int, str]]:
    """Never-seen custom feeds of 500 entries, one after another, for `seconds`."""
    outcomes = []
    deadline = time.monotonic() + seconds
    counter = 0
    with requests.Session() as session:
        while time.monotonic() < deadline:
            counter += 1
            quality = f"-{index % 900 + 1}.{counter % 1000:03d}"
            try:
                answer = session.get(
                    f"{url}/feeds/custom.rss?min_quality={quality}&limit=500", timeout=30
                )
                outcomes.append((answer.status_code, answer.headers.get("Retry-After", "")))
            except requests.RequestException as error:
                outcomes.append((0, type(error).__name__))
    return outcomes


def poll(
    session: requests.Session, url: str, seconds: float, pause: float = POLL_PAUSE
) -> list[int]:
    """A reader of a cached feed: the status of each of its requests, for `seconds`."""
    answers = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answers.append(session.get(f"{url}/feeds/all.rss", timeout=30).status_code)
        time.sleep(pause)
    return answers


def answered(server: Server, count: Callable[[list[dict]], int], expected: int) -> list[dict]:
    """The one worker's access log, in the order it answered, once `count` of it reaches
    `expected` (the log is written once a second)."""
    return wait_for(
        lambda: [json.loads(line) for line in server.log().splitlines() if line.startswith("{")],
        lambda entries: count(entries) >= expected,
        timeout=10,
    )


def polls_of(entries: list[dict]) -> list[int]:
    """Where the answers to the poller of /feeds/all.rss are in the log."""
    return [n for n, entry in enumerate(entries) if entry["path"] == "/feeds/all.rss"]


def test_a_poller_of_a_cached_feed_is_answered_through_a_flood_of_first_renders(
    server_factory: Callable[..., Server], generated: Path
) -> None:
    # One worker; three renders per client so some wait for the one slot: a waiting render
    # must not freeze the worker (the semaphore is gevent's, made in the worker).
    server = server_factory(
        FEEDS_CORPUS_DIR=str(generated),
        WEB_CONCURRENCY="1",
        FEEDS_RENDERS="1",
        FEEDS_RENDER_QUEUE="2",
        FEEDS_RENDERS_PER_CLIENT="3",
    )
    reader = requests.Session()  # a poller keeps its connection: opened before the flood
    assert reader.get(f"{server.url}/feeds/all.rss", timeout=30).status_code == 200
    with reader, ThreadPoolExecutor(FLOODERS + 1) as pool:
        flooders = [pool.submit(flood, server.url, FLOOD_SECONDS, i) for i in range(FLOODERS)]
        time.sleep(0.5)  # the flood is on
        polled = pool.submit(poll, reader, server.url, FLOOD_SECONDS - 1).result()
        outcomes = [outcome for future in flooders for outcome in future.result()]
    assert polled and set(polled) == {200}
    assert len(polled) >= 3  # answers on both sides of renders (the checks below)
    # Not how long each took, but how: every poll after the first render was answered by
    # the fast path, none waited for a render slot, and renders went on between them (a
    # waiting render that froze the worker would have left the poller without an answer).
    entries = answered(server, lambda e: len(polls_of(e)), 1 + len(polled))
    first, *during = polls_of(entries)
    assert entries[first]["cache"] == "render"
    assert [entries[n]["cache"] for n in during] == [FAST_TIER] * len(polled)
    rendered_between = [
        entry
        for entry in entries[during[0] : during[-1]]
        if entry["path"].startswith("/feeds/custom.rss") and entry["status"] == 200
    ]
    assert rendered_between, "the poller was answered while renders went on"
    rendered = [o for o in outcomes if o[0] == 200]
    refused = [o for o in outcomes if o[0] == 503]
    assert rendered, "renders must still get through"
    assert refused and all(retry == "1" for _, retry in refused)
    assert {status for status, _ in outcomes} <= {200, 503}
    assert health(server)["renders_in_flight"] == 0


def test_a_poller_takes_turns_with_clients_looping_on_quick_refusals(
    server_factory: Callable[..., Server], generated: Path
) -> None:
    """wrk asks again the moment each 400 arrives; gevent would read those requests
    back to back without serving anyone else, unless each Flask request pauses first."""
    server = server_factory(FEEDS_CORPUS_DIR=str(generated), WEB_CONCURRENCY="1")
    reader = requests.Session()
    assert reader.get(f"{server.url}/feeds/all.rss", timeout=30).status_code == 200
    command = [
        "wrk",
        "-t1",
        f"-c{WRK_CONNECTIONS}",
        f"-d{FLOOD_SECONDS:.0f}s",
        f"{server.url}/feeds/custom.rss?x=1",
    ]
    with reader, subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as wrk:
        time.sleep(0.5)
        polled = poll(reader, server.url, FLOOD_SECONDS - 1.5, pause=0)
        flood_report = wrk.communicate(timeout=FLOOD_SECONDS + 30)[0]
    assert "Non-2xx or 3xx responses" in flood_report  # the 400s were sent
    assert polled and set(polled) == {200}
    # Counts, not durations: the worker answered the poller in turns with wrk's refusals,
    # all through the flood. A poller that asks again at once waits for at most a round
    # or two of wrk's connections (one request each); without the pause, a connection is
    # served back to back while its next request is already there, and the poller waited
    # behind hundreds (measured: 90th percentile 62 refusals with the pause, 278 to 526
    # without).
    entries = answered(server, lambda e: len(polls_of(e)), 1 + len(polled))
    refusals = [n for n, entry in enumerate(entries) if entry["status"] == 400]
    polls = polls_of(entries)[1:]
    assert len(polls) == len(polled) >= 5 and refusals
    assert refusals[0] < polls[0] and polls[-1] < refusals[-1], "polled only before or after"
    between = sorted(later - earlier - 1 for earlier, later in pairwise(polls))
    assert between[len(between) * 9 // 10] <= 3 * WRK_CONNECTIONS, between
