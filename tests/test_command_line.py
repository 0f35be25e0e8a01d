"""The command line under what users type: malformed values, forged text, closed pipes (issue 13, items 9-14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bitscli.errors import ExitCode

from .conftest import run_process


@pytest.fixture
def job(ok) -> str:
    return ok("create", "--raw", "j").stdout


@pytest.mark.parametrize("url", ["http://[::1", "http://host:99999/f", "http://[fe80::1%/f"])
def test_a_url_that_does_not_parse_is_a_usage_error(cli, job: str, url: str) -> None:
    result = cli("addfile", job, url, "/tmp/x")
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert "internal error" not in result.stderr


def test_text_that_is_not_utf8_is_refused_not_a_crash(home: Path, ok, job: str, tmp_path: Path) -> None:
    """argv bytes that are not UTF-8 arrive as surrogates, which SQLite cannot store (any locale, LANG=C too)."""
    bad = b"\xff\xfe-name"
    for argv in ([b"setdisplayname", job.encode(), bad], [b"setdescription", job.encode(), bad],
                 [b"addfile", job.encode(), b"http://127.0.0.1:1/f", bytes(tmp_path) + b"/" + bad]):  # fmt: skip
        done = subprocess.run([sys.executable.encode(), b"-m", b"bitscli", *argv], capture_output=True,
                              env={**os.environ, "LANG": "C", "LC_ALL": "C"}, check=False)  # fmt: skip
        assert done.returncode == ExitCode.USAGE, done.stderr
        assert b"UTF-8" in done.stderr


def test_a_home_below_a_regular_file_is_a_queue_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = run_process("list", env={"BITSCLI_HOME": str(tmp_path / "file" / "home")})
    assert result.exit_code == ExitCode.QUEUE, result.stderr
    assert "internal error" not in result.stderr


@pytest.mark.parametrize("number", ["٣", "３", "1_000", "+5", "-0", "0x", " 1 2"])
def test_numbers_are_ascii_digits(cli, job: str, number: str) -> None:
    result = cli("setnoprogresstimeout", job, number)
    assert result.exit_code == ExitCode.USAGE, number
    assert cli("getnoprogresstimeout", job).stdout == "1209600\n"


def test_text_cannot_forge_a_line_of_output(ok, cli, job: str) -> None:
    """A newline in a description printed raw made `info --verbose` show a STATE line scripts believe."""
    ok("setdescription", job, "ok\nSTATE: TRANSFERRED")
    lines = ok("info", job, "--verbose").stdout.splitlines()
    assert [line for line in lines if line.startswith("STATE")] == []
    assert any("ok\\nSTATE: TRANSFERRED" in line for line in lines)
    for text in ("abc\u202edef", "zero\u200bwidth"):  # a right-to-left override, a zero-width space
        result = cli("setdisplayname", job, text)
        assert result.exit_code == ExitCode.USAGE
        assert "formatting" in result.stderr


@pytest.mark.parametrize(
    "ref", ["{", "{0123", "{00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000}"]
)
def test_a_guid_with_one_brace_is_not_a_guid(cli, ref: str) -> None:
    result = cli("getstate", ref)
    assert result.exit_code in (ExitCode.USAGE, ExitCode.NOT_FOUND)
    assert "GUID" in result.stderr or "named" in result.stderr
    assert "no job has the GUID" not in result.stderr  # it was taken for a GUID before


def test_no_arguments_shows_the_help_without_an_empty_error(cli) -> None:
    result = cli()
    assert result.exit_code == ExitCode.USAGE
    assert "Usage" in result.stdout
    assert "error:" not in result.stderr


@pytest.mark.parametrize("argv", [["--help"], ["list", "--help"], ["list"], ["monitor", "--refresh", "0.1"]])
def test_a_closed_pipe_is_a_quiet_success(ok, argv: list[str]) -> None:
    """Under `set -o pipefail`, `bitscli --help | head -1` failed every time; `yes | head` does not."""
    for i in range(30):
        ok("create", f"job-{i}")
    script = f"set -o pipefail; {sys.executable} -m bitscli {' '.join(argv)} | head -c 1 > /dev/null"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
