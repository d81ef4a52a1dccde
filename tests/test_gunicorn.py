"""How the Procfile's gunicorn runs: what several instances on one host share."""

from __future__ import annotations

import re
import stat
import time
from pathlib import Path

from tests.support import Server

CONTROL_SOCKET = re.compile(r"Control socket (disabled|listening at (\S+))")


def control_socket(server: Server, timeout: float = 10) -> str:
    """`disabled`, or the path this instance's control socket listens at."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = CONTROL_SOCKET.search(server.log())
        if match:
            return match[2] or match[1]
        time.sleep(0.05)
    raise AssertionError(f"no control socket line within {timeout}s:\n{server.log()}")


def test_two_instances_share_no_control_socket(server_factory, tmp_path: Path) -> None:
    """gunicorn's default is one socket per user: the second instance took over the first's."""
    home = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": "", "FEEDS_LOG_LEVEL": "debug"}
    first, second = server_factory(**home), server_factory(**home)
    assert control_socket(first) == control_socket(second) == "disabled"
    assert not (tmp_path / ".gunicorn").exists()


def test_an_instance_can_have_its_own_control_socket(server_factory, tmp_path: Path) -> None:
    paths = [tmp_path / "one.ctl", tmp_path / "two.ctl"]
    servers = [server_factory(FEEDS_CONTROL_SOCKET=str(path)) for path in paths]
    for server, path in zip(servers, paths, strict=True):
        assert control_socket(server) == str(path)
        mode = path.stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
