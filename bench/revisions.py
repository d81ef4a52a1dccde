"""Measure a change: the same one-pass command run against git revision REV's `feeds`
(exported to a temporary folder) and the working tree's, alternating, each pass in a fresh
process, so both sides meet the same machine load."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def alternating(revision: str, command: Sequence[str], rounds: int) -> dict[str, list[float]]:
    """The number each run of `command` prints last, per side: `revision`, then the tree."""
    seconds: dict[str, list[float]] = {revision: [], "working tree": []}
    with tempfile.TemporaryDirectory(prefix="feeds-rev-") as tree:
        archive = subprocess.run(
            ["git", "-C", str(PROJECT), "archive", revision, "feeds"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        trees = {revision: tree, "working tree": str(PROJECT)}
        for number in range(rounds):
            order = list(trees) if number % 2 == 0 else list(reversed(trees))
            for name in order:
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([trees[name], str(PROJECT)])}
                done = subprocess.run(
                    command, env=env, cwd=trees[name], capture_output=True, text=True, check=True
                )
                seconds[name].append(float(done.stdout.split()[-1]))
    return seconds
