"""BitsAdmin syntax: a script can swap `bitsadmin` for `bitscli` and keep working."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bitscli.cli.compat import translate
from bitscli.errors import ExitCode


def test_bitsadmin_script_end_to_end(ok, tmp_path: Path) -> None:
    out = ok("/create", "/download", "myjob").stdout
    guid = out.split()[2].rstrip(".")
    assert re.fullmatch(r"\{[0-9A-F-]{36}\}", guid)
    assert ok("/ADDFILE", "myjob", "http://127.0.0.1:9/f", str(tmp_path / "f")).stdout.startswith("Added ")
    assert ok("/SetPriority", "myjob", "HIGH").stdout == "Priority set to HIGH.\n"
    assert ok("/RAWRETURN", "/GETSTATE", "myjob").stdout == "SUSPENDED"
    assert ok("/rawreturn", "/getpriority", guid).stdout == "HIGH"
    assert "STATE: SUSPENDED" in ok("/info", "myjob", "/verbose").stdout
    assert ok("/INFO", "myjob").stdout.startswith(f"{guid} 'myjob' SUSPENDED")
    assert ok("/list", "/allusers").stdout.endswith("Listed 1 job(s).\n")
    assert ok("/resume", "myjob").stdout == "Job resumed.\n"
    assert ok("/cancel", "myjob").stdout == "Job canceled.\n"


def test_raw_create_prints_the_bare_guid(ok) -> None:
    assert re.fullmatch(r"\{[0-9A-F-]{36}\}", ok("/RAWRETURN", "/CREATE", "/UPLOAD", "up").stdout)
    assert ok("/rawreturn", "/gettype", "up").stdout == "UPLOAD"


def test_wrap_prefixes_are_accepted(ok) -> None:
    ok("/NOWRAP", "/create", "w")
    assert ok("/WRAP", "/list").stdout.endswith("Listed 1 job(s).\n")


def test_values_that_look_like_options_stay_values(ok) -> None:
    ok("/create", "j")
    ok("/setdescription", "j", "--not-an-option")
    assert ok("getdescription", "j").stdout == "--not-an-option\n"


def test_reset_with_allusers(ok) -> None:
    ok("/create", "a")
    assert ok("/RESET", "/ALLUSERS").stdout.endswith("1 out of 1 jobs canceled.\n")


def test_version_and_help(ok) -> None:
    assert ok("/UTIL", "/VERSION").stdout.startswith("bitscli ")
    assert "create" in ok("/?").stdout
    assert "Create a job" in ok("/create", "/?").stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["/CACHE", "/LIST"],
        ["/PEERS", "/LIST"],
        ["/PEERCACHING", "/ENABLE"],
        ["/GETPEERSTATS"],
        ["/SETPEERCACHINGFLAGS", "j", "1"],
        ["/TAKEOWNERSHIP", "j"],
        ["/SETHELPERTOKEN", "j"],
        ["/GETCLIENTCERTIFICATE", "j"],
        ["/UTIL", "/SETIEPROXY", "LOCALSYSTEM", "NO_PROXY"],
    ],
)
def test_deprecated_and_windows_only_switches_say_not_supported(cli, argv: list[str]) -> None:
    result = cli(*argv)
    assert result.exit_code == ExitCode.NOT_SUPPORTED
    assert result.stderr.startswith("error: ")
    assert "not supported" in result.stderr


def test_peer_caching_explains_why(cli) -> None:
    assert "deprecated in Windows 7" in cli("/PEERCACHING", "/ENABLE").stderr


def test_invalid_switch(cli) -> None:
    result = cli("/FROB", "x")
    assert result.exit_code == ExitCode.USAGE
    assert "Invalid command: /FROB" in result.stderr


@pytest.mark.parametrize(
    ("bitsadmin", "ours"),
    [
        (["/create", "/upload-reply", "n"], ["create", "--upload-reply", "--", "n"]),
        (["/Create", "n"], ["create", "--", "n"]),
        (["/RAWRETURN", "/GETSTATE", "j"], ["getstate", "--raw", "--", "j"]),
        (["/RAWRETURN", "/RESUME", "j"], ["resume", "--", "j"]),  # /RAWRETURN only affects /CREATE and /GET*
        (["/info", "j", "/VERBOSE"], ["info", "--verbose", "--", "j"]),
        (["/list", "/ALLUSERS", "/verbose"], ["list", "--all-users", "--verbose"]),
        (["/monitor", "/refresh", "2"], ["monitor", "--refresh", "2"]),
        (
            ["/TRANSFER", "t", "/DOWNLOAD", "/PRIORITY", "high", "http://h/f", "/tmp/f"],
            ["transfer", "--download", "--priority", "high", "--", "t", "http://h/f", "/tmp/f"],
        ),
        (["/addfile", "j", "http://h/f", "/download"], ["addfile", "--", "j", "http://h/f", "/download"]),
        (["/HELP"], ["--help"]),
    ],
)
def test_translation(bitsadmin: list[str], ours: list[str]) -> None:
    assert translate(bitsadmin) == ours
