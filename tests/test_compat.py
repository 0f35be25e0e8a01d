"""BitsAdmin syntax: a script can swap `bitsadmin` for `bitscli` and keep working."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bitscli import __version__
from bitscli.cli.compat import banner, translate
from bitscli.errors import ExitCode

from .conftest import Result


def _body(result: Result) -> str:
    """What a BitsAdmin-syntax command printed after its banner (which must be there)."""
    assert result.stdout.startswith(banner(__version__)), result.stdout
    return result.stdout[len(banner(__version__)) :]


def test_bitsadmin_script_end_to_end(ok, tmp_path: Path) -> None:
    out = _body(ok("/create", "/download", "myjob"))
    guid = out.split()[2].rstrip(".")
    assert re.fullmatch(r"\{[0-9A-F-]{36}\}", guid)
    assert _body(ok("/ADDFILE", "myjob", "http://127.0.0.1:9/f", str(tmp_path / "f"))).startswith("Added ")
    assert _body(ok("/SetPriority", "myjob", "HIGH")) == "Priority set to HIGH.\n"
    assert ok("/RAWRETURN", "/GETSTATE", "myjob").stdout == "SUSPENDED"
    assert ok("/rawreturn", "/getpriority", guid).stdout == "HIGH"
    assert "STATE: SUSPENDED" in ok("/info", "myjob", "/verbose").stdout
    assert _body(ok("/INFO", "myjob")).startswith(f"{guid} 'myjob' SUSPENDED")
    assert ok("/list").stdout.endswith("Listed 1 job(s).\n")
    assert _body(ok("/resume", "myjob")) == "Job resumed.\n"
    assert _body(ok("/cancel", "myjob")) == "Job canceled.\n"


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


@pytest.mark.parametrize("argv", [["/RESET", "/ALLUSERS"], ["/list", "/allusers"], ["list", "--all-users"],
                                  ["/monitor", "/ALLUSERS"]])  # fmt: skip
def test_allusers_is_refused_not_ignored(cli, ok, argv: list[str]) -> None:
    """Issue 16 item 9: the queue is per-user; silently showing only one's own jobs would mislead."""
    ok("/create", "a")
    result = cli(*argv)
    assert result.exit_code == ExitCode.NOT_SUPPORTED
    assert "per-user" in result.stderr
    assert ok("getstate", "a").stdout == "SUSPENDED\n"  # /RESET /ALLUSERS cancelled nothing


def test_version_and_help(ok) -> None:
    assert _body(ok("/UTIL", "/VERSION")).startswith("bitscli ")
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
        (["/list", "--json"], ["list", "--json"]),  # GNU options after a BitsAdmin command (issue 16 item 7)
        (["/info", "j", "--json", "--verbose"], ["info", "--json", "--verbose", "--", "j"]),
        (["/wait", "j", "--timeout", "5"], ["wait", "--timeout", "5", "--", "j"]),
        (["/SETACLFLAG", "j", "O"], ["setaclflags", "--", "j", "O"]),  # Microsoft's own spelling (item 6)
        (["/monitor", "/refresh", "2"], ["monitor", "--refresh", "2"]),
        (
            ["/TRANSFER", "t", "/DOWNLOAD", "/PRIORITY", "high", "http://h/f", "/tmp/f"],
            ["transfer", "--download", "--priority", "high", "--bitsadmin-output", "--", "t", "http://h/f", "/tmp/f"],
        ),
        (  # the name comes first, always, even one that looks like a switch (item 5)
            ["/transfer", "/Download", "/priority", "Foreground", "http://h/f", "/tmp/f"],
            ["transfer", "--priority", "Foreground", "--bitsadmin-output", "--", "/Download", "http://h/f", "/tmp/f"],
        ),
        (["/addfile", "j", "http://h/f", "/download"], ["addfile", "--", "j", "http://h/f", "/download"]),
        (["/HELP"], ["--help"]),
    ],
)
def test_translation(bitsadmin: list[str], ours: list[str]) -> None:
    assert translate(bitsadmin) == ours


def _for_f(text: str, skip: int, token: int) -> list[str]:
    """cmd's `for /f "skip=N tokens=T"`: the first N lines skipped, blank lines ignored, then token T (1-based)."""
    lines = [line for line in text.splitlines()[skip:] if line.strip()]
    return [line.split()[token - 1] for line in lines if len(line.split()) >= token]


def test_the_banner_lets_a_batch_script_find_the_guid(ok) -> None:
    """Issue 16 item 4: `for /f "skip=4 tokens=3" %%i in ('bitsadmin /create /download myjob')` finds the GUID."""
    stdout = ok("/create", "/download", "myjob").stdout
    assert stdout.startswith("\n")
    assert len(banner(__version__).splitlines()) == 5  # a blank line, three lines, a blank line
    guid = _for_f(stdout, skip=4, token=3)[0].rstrip(".")
    assert guid == ok("list", "--json").json["jobs"][0]["id"]
    assert "Microsoft" not in stdout


def test_rawreturn_and_the_native_syntax_print_no_banner(ok) -> None:
    assert re.fullmatch(r"\{[0-9A-F-]{36}\}", ok("/RAWRETURN", "/create", "r").stdout)
    assert ok("create", "n").stdout.startswith("Created job ")
    assert ok("/list", "--json").json["jobs"]  # JSON asked for stays pure JSON


def test_addfileset_reads_what_windows_editors_write(ok, tmp_path: Path) -> None:
    """Issue 16 item 8: UTF-8 with a BOM (Notepad, PowerShell 5), UTF-16 with a BOM, CRLF line ends."""
    ok("create", "set")
    lines = [f"http://127.0.0.1:9/{name} {tmp_path / name}" for name in ("a", "b")]
    text = "\r\n".join(lines) + "\r\n"
    encodings = {"bom8": b"\xef\xbb\xbf" + text.encode(), "utf16le": text.encode("utf-16"),
                 "utf16be": b"\xfe\xff" + text.encode("utf-16-be"), "lf": "\n".join(lines).encode()}  # fmt: skip
    for name, raw in encodings.items():
        listfile = tmp_path / f"{name}.txt"
        listfile.write_bytes(raw)
        ok("create", name)
        assert ok("addfileset", name, str(listfile)).stdout.startswith("Added 2 file(s)")
        files = ok("listfiles", name, "--json").json["files"]
        assert [f["remote_name"] for f in files] == ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]


def test_addfileset_says_which_encodings_it_reads(cli, ok, tmp_path: Path) -> None:
    ok("create", "bad")
    listfile = tmp_path / "latin1.txt"
    listfile.write_bytes("http://127.0.0.1:9/caf\xe9 /tmp/x\n".encode("latin-1"))
    result = cli("addfileset", "bad", str(listfile))
    assert result.exit_code == ExitCode.USAGE
    assert "UTF-8 or UTF-16" in result.stderr


def test_debug_anywhere_version_in_help_and_help_command(ok) -> None:
    """Issue 16 item 3."""
    assert ok("list", "--debug").stdout == ok("--debug", "list").stdout
    top = ok("--help").stdout
    assert "--version" in top
    assert "--debug" in top
    assert ok("help", "wait").stdout == ok("wait", "--help").stdout
    assert "Usage: bitscli" in ok("help").stdout
    ok("create", "d")
    ok("setdescription", "d", "--", "--debug")  # after "--" it is a value
    assert ok("getdescription", "d").stdout == "--debug\n"
