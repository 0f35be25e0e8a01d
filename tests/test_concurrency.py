"""Many real processes writing the queue at the same moment lose nothing and report no errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bitscli.service.context import open_context
from bitscli.service.jobs import get_job, list_jobs

# Each child imports everything first, then waits for the go file, so all of them write together.
_CHILD = """
import os, sys, time
from bitscli.cli import main
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.001)
sys.exit(main(sys.argv[2:]))
"""


def _run_together(commands: list[list[str]], tmp_path: Path) -> list[subprocess.CompletedProcess[str]]:
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(go), *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for argv in commands
    ]
    time.sleep(0.5)  # let the children reach the barrier; correctness does not depend on it
    go.touch()
    results = []
    for child, argv in zip(children, commands, strict=True):
        out, err = child.communicate(timeout=240)
        results.append(subprocess.CompletedProcess(argv, child.returncode, out, err))
    return results


def test_32_adders_and_32_creators_at_once(ok, tmp_path: Path) -> None:
    target = ok("create", "--raw", "shared").stdout
    downloads = tmp_path / "dl"
    downloads.mkdir()
    adders = [["addfile", target, f"http://127.0.0.1:9/f{i}", str(downloads / f"f{i}")] for i in range(32)]
    creators = [["create", f"new-{i}"] for i in range(32)]
    results = _run_together(adders + creators, tmp_path)

    for result in results:
        assert result.returncode == 0, f"{result.args}: {result.stderr}"
        assert result.stderr == "", result.stderr
    ctx = open_context()
    job = get_job(ctx, target)
    assert sorted(f.local_name for f in job.files) == sorted(str(downloads / f"f{i}") for i in range(32))
    names = sorted(j.display_name for j in list_jobs(ctx))
    assert names == sorted(["shared", *(f"new-{i}" for i in range(32))])
    assert len({j.id for j in list_jobs(ctx)}) == 33


def test_first_use_by_many_processes_at_once(home: Path, tmp_path: Path) -> None:
    assert not home.exists()
    results = _run_together([["create", f"first-{i}"] for i in range(16)], tmp_path)
    for result in results:
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", result.stderr
    ctx = open_context()
    assert sorted(j.display_name for j in list_jobs(ctx)) == sorted(f"first-{i}" for i in range(16))
