"""Bad input a user would type: a clear error and hint, a documented exit code, and an unchanged queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitscli.errors import ExitCode

from .conftest import snapshot


@pytest.fixture
def jobs(ok, tmp_path: Path) -> dict[str, str]:
    """A queue with one job in each situation the cases need."""
    upload_source = tmp_path / "upload.bin"
    upload_source.write_bytes(b"x" * 10)
    refs = {
        "job": ok("create", "--raw", "main").stdout,
        "empty": ok("create", "--raw", "empty").stdout,
        "up": ok("create", "--raw", "--upload", "up").stdout,
        "up0": ok("create", "--raw", "--upload", "up0").stdout,
        "cancelled": ok("create", "--raw", "gone").stdout,
        "acked": ok("create", "--raw", "done").stdout,
        "tmp": str(tmp_path),
    }
    ok("create", "dup")
    ok("create", "dup")
    ok("addfile", refs["job"], "http://127.0.0.1:9/a", str(tmp_path / "a"))
    ok("addfile", refs["up"], "http://127.0.0.1:9/upload", str(upload_source))
    ok("cancel", refs["cancelled"])
    ok("complete", refs["acked"])
    (tmp_path / "adir").mkdir()
    (tmp_path / "three-fields.txt").write_text(
        f"http://127.0.0.1:9/x {tmp_path}/x\nhttp://127.0.0.1:9/y {tmp_path}/y extra\n"
    )
    (tmp_path / "four-fields.txt").write_text(
        f"http://127.0.0.1:9/x {tmp_path}/x\nhttp://127.0.0.1:9/y {tmp_path}/y a b\n"
    )
    (tmp_path / "relative.txt").write_text(f"http://127.0.0.1:9/x {tmp_path}/x\nhttp://127.0.0.1:9/y y\n")
    return refs


J = "@job"
T = "@tmp"
CASES = [
    # (id, argv, exit code, text in stderr)
    ("unknown name", ["getstate", "nosuch"], ExitCode.NOT_FOUND, "no job is named 'nosuch'"),
    (
        "unknown guid",
        ["resume", "{00000000-0000-0000-0000-000000000000}"],
        ExitCode.NOT_FOUND,
        "no job has the GUID",
    ),
    ("ambiguous name", ["resume", "dup"], ExitCode.AMBIGUOUS, "2 jobs are named 'dup'"),
    ("malformed guid", ["getstate", "{1234-zz}"], ExitCode.USAGE, "malformed GUID"),
    (
        "relative local path",
        ["addfile", J, "http://127.0.0.1:9/b", "rel/b"],
        ExitCode.USAGE,
        "not an absolute path",
    ),
    (
        "missing directory",
        ["addfile", J, "http://127.0.0.1:9/b", T + "/nodir/b"],
        ExitCode.USAGE,
        "does not exist",
    ),
    (
        "local is a directory",
        ["addfile", J, "http://127.0.0.1:9/b", T + "/adir"],
        ExitCode.USAGE,
        "existing directory",
    ),
    (
        "unsupported scheme",
        ["addfile", J, "ftp://127.0.0.1/b", T + "/b"],
        ExitCode.USAGE,
        "unsupported URL scheme",
    ),
    (
        "smb scheme",
        ["addfile", J, "smb://server/share/b", T + "/b"],
        ExitCode.USAGE,
        "unsupported URL scheme",
    ),
    ("no host", ["addfile", J, "http:///b", T + "/b"], ExitCode.USAGE, "malformed URL"),
    ("bad port", ["addfile", J, "http://127.0.0.1:99999/b", T + "/b"], ExitCode.USAGE, "malformed URL"),
    ("not a url", ["addfile", J, "example.org/b", T + "/b"], ExitCode.USAGE, "is not a URL"),
    ("url with spaces", ["addfile", J, "http://127.0.0.1/a b", T + "/b"], ExitCode.USAGE, "contains spaces"),
    ("remote file host", ["addfile", J, "file://server/b", T + "/b"], ExitCode.USAGE, "not a local file URL"),
    (
        "second upload file",
        ["addfile", "@up", "http://127.0.0.1:9/u2", T + "/upload.bin"],
        ExitCode.LIMIT,
        "0x8020001c",
    ),
    ("resume cancelled", ["resume", "@cancelled"], ExitCode.INVALID_STATE, "0x80200002"),
    (
        "addfile to cancelled",
        ["addfile", "@cancelled", "http://127.0.0.1:9/b", T + "/b"],
        ExitCode.INVALID_STATE,
        "CANCELLED",
    ),
    ("set on acknowledged", ["setpriority", "@acked", "HIGH"], ExitCode.INVALID_STATE, "ACKNOWLEDGED"),
    ("suspend acknowledged", ["suspend", "@acked"], ExitCode.INVALID_STATE, "finished jobs never change"),
    ("cancel twice", ["cancel", "@cancelled"], ExitCode.INVALID_STATE, "0x80200002"),
    ("resume empty", ["resume", "@empty"], ExitCode.INVALID_STATE, "0x80200003"),
    (
        "negative seconds",
        ["setminretrydelay", J, "-1"],
        ExitCode.USAGE,
        "negative numbers are not accepted: -1",
    ),
    ("negative seconds after --", ["setminretrydelay", J, "--", "-1"], ExitCode.USAGE, "between 0 and"),
    ("word for seconds", ["setnoprogresstimeout", J, "soon"], ExitCode.USAGE, "whole number"),
    ("huge seconds", ["setmaxdownloadtime", J, "99999999999"], ExitCode.USAGE, "between 0 and 4294967295"),
    ("unknown notify bits", ["setnotifyflags", J, "64"], ExitCode.USAGE, "unknown bits"),
    ("two redirect policies", ["setsecurityflags", J, "0x300"], ExitCode.USAGE, "not both"),
    ("unknown security bits", ["setsecurityflags", J, "0x4000"], ExitCode.USAGE, "unknown bits"),
    ("unknown priority", ["setpriority", J, "urgent"], ExitCode.USAGE, "use one of: FOREGROUND"),
    ("create unknown priority", ["create", "--priority", "urgent", "x"], ExitCode.USAGE, "unknown priority"),
    ("two job types", ["create", "--upload", "--download", "x"], ExitCode.USAGE, "choose one of"),
    ("unknown proxy usage", ["setproxysettings", J, "MAGIC"], ExitCode.USAGE, "0x8020003f"),
    ("override without lists", ["setproxysettings", J, "OVERRIDE"], ExitCode.USAGE, "needs a proxy list"),
    ("bad proxy", ["setproxysettings", J, "OVERRIDE", "http://:80", "NULL"], ExitCode.USAGE, "bad proxy"),
    (
        "lists without override",
        ["setproxysettings", J, "NO_PROXY", "p:1"],
        ExitCode.USAGE,
        "only to OVERRIDE",
    ),
    (
        "bad auth target",
        ["setcredentials", J, "CLIENT", "BASIC", "u", "--password-file", "/dev/null"],
        ExitCode.USAGE,
        "0x80200027",
    ),
    (
        "bad auth scheme",
        ["setcredentials", J, "SERVER", "KERB", "u", "--password-file", "/dev/null"],
        ExitCode.USAGE,
        "0x80200028",
    ),
    (
        "passport",
        ["setcredentials", J, "SERVER", "PASSPORT", "u", "--password-file", "/dev/null"],
        ExitCode.NOT_SUPPORTED,
        "retired",
    ),
    (
        "basic without password",
        ["setcredentials", J, "SERVER", "BASIC", "u"],
        ExitCode.USAGE,
        "needs a password",
    ),
    (
        "long user name",
        ["setcredentials", J, "SERVER", "NTLM", "u" * 301, "--password-file", "/dev/null"],
        ExitCode.USAGE,
        "0x80200025",
    ),
    ("long display name", ["setdisplayname", J, "n" * 257], ExitCode.USAGE, "0x80200021"),
    ("long description", ["setdescription", J, "d" * 1025], ExitCode.USAGE, "limit is 1024"),
    ("empty display name", ["create", "  "], ExitCode.USAGE, "cannot be empty"),
    ("guid-like name", ["create", "{not-a-guid}"], ExitCode.USAGE, "taken for a GUID"),
    ("control characters", ["setdisplayname", J, "bad\nname"], ExitCode.USAGE, "control characters"),
    (
        "overlapping ranges",
        ["addfilewithranges", J, "http://127.0.0.1:9/r", T + "/r", "0:100,50:10"],
        ExitCode.USAGE,
        "0x8020002c",
    ),
    (
        "range after eof range",
        ["addfilewithranges", J, "http://127.0.0.1:9/r", T + "/r", "0:eof,100:5"],
        ExitCode.USAGE,
        "overlap",
    ),
    (
        "duplicate ranges",
        ["addfilewithranges", J, "http://127.0.0.1:9/r", T + "/r", "0:5,0:5"],
        ExitCode.USAGE,
        "0x8020002c",
    ),
    (
        "malformed range",
        ["addfilewithranges", J, "http://127.0.0.1:9/r", T + "/r", "a:b"],
        ExitCode.USAGE,
        "0x8020002b",
    ),
    (
        "empty range",
        ["addfilewithranges", J, "http://127.0.0.1:9/r", T + "/r", "0:0"],
        ExitCode.USAGE,
        "empty",
    ),
    (
        "ranges on upload",
        ["addfilewithranges", "@up0", "http://127.0.0.1:9/r", T + "/upload.bin", "0:5"],
        ExitCode.USAGE,
        "download jobs only",
    ),
    (
        "fileset bad field count",
        ["addfileset", J, T + "/four-fields.txt"],
        ExitCode.USAGE,
        "line 2: expected 'REMOTE LOCAL",
    ),
    (
        "fileset third field not a hash",
        ["addfileset", J, T + "/three-fields.txt"],
        ExitCode.USAGE,
        "line 2: 'extra' is not a sha256 hash",
    ),
    (
        "fileset relative path",
        ["addfileset", J, T + "/relative.txt"],
        ExitCode.USAGE,
        "line 2: local name 'y'",
    ),
    ("fileset missing", ["addfileset", J, T + "/nope.txt"], ExitCode.USAGE, "cannot read"),
    ("header injection", ["setcustomheaders", J, "X-A: 1\r\nX-B: 2"], ExitCode.USAGE, "control characters"),
    ("header without colon", ["setcustomheaders", J, "NoColon"], ExitCode.USAGE, "is not 'Name: value'"),
    (
        "reserved header",
        ["setcustomheaders", J, "Range: bytes=0-1"],
        ExitCode.USAGE,
        "sets the Range header itself",
    ),
    (
        "relative notify program",
        ["setnotifycmdline", J, "handler", "handler x"],
        ExitCode.USAGE,
        "must be a full path",
    ),
    (
        "notify params without program",
        ["setnotifycmdline", J, "NULL", "x"],
        ExitCode.USAGE,
        "needs a program",
    ),
    ("bad acl letters", ["setaclflags", J, "OX"], ExitCode.USAGE, "unknown ACL flag"),
    ("bad http method", ["sethttpmethod", J, "GE T"], ExitCode.USAGE, "not a valid HTTP method"),
    ("bad bool", ["setdynamic", J, "maybe"], ExitCode.USAGE, "TRUE or FALSE"),
    ("dynamic on upload", ["setdynamic", "@up", "TRUE"], ExitCode.USAGE, "download jobs only"),
    ("validation index", ["setvalidationstate", J, "7", "TRUE"], ExitCode.USAGE, "has no file 7"),
    ("negative index", ["gettemporaryname", J, "-1"], ExitCode.USAGE, None),
    ("unknown command", ["frobnicate"], ExitCode.USAGE, "No such command"),
    ("missing argument", ["addfile", J], ExitCode.USAGE, "Missing argument"),
    ("unknown option", ["list", "--colour"], ExitCode.USAGE, "No such option"),
    ("unknown completion shell", ["completion", "tcsh"], ExitCode.USAGE, "use one of: bash"),
]


@pytest.mark.parametrize(("argv", "code", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly_and_changes_nothing(cli, jobs, argv, code, text) -> None:
    for name, value in sorted(jobs.items(), key=lambda item: -len(item[0])):
        argv = [a.replace(f"@{name}", value) for a in argv]
    before = snapshot(cli)
    result = cli(*argv)
    assert result.exit_code == code, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    if text:
        assert text in result.stderr
    assert result.stdout == ""
    assert snapshot(cli) == before


def test_every_error_has_a_hint_where_a_next_step_exists(cli, jobs) -> None:
    for argv in (
        ["getstate", "nosuch"],
        ["resume", "dup"],
        ["resume", jobs["empty"]],
        ["addfile", jobs["job"], "x", "y"],
    ):
        assert "\nhint: " in cli(*argv).stderr


def test_upload_of_a_missing_file(cli, ok, tmp_path: Path) -> None:
    up = ok("create", "--raw", "--upload", "u2").stdout
    before = snapshot(cli)
    result = cli("addfile", up, "http://127.0.0.1:9/x", str(tmp_path / "missing"))
    assert result.exit_code == ExitCode.USAGE
    assert "does not exist" in result.stderr
    assert snapshot(cli) == before


def test_too_many_jobs(cli, ok, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[limits]\nmax_jobs_per_user = 2\n")
    ok("create", "a")
    ok("create", "b")
    before = snapshot(cli)
    result = cli("create", "c")
    assert result.exit_code == ExitCode.LIMIT
    assert "0x80200049" in result.stderr
    assert snapshot(cli) == before
    ok("cancel", "a")  # finished jobs do not count against the limit
    ok("create", "c")


def test_too_many_files_and_ranges(cli, ok, home: Path, tmp_path: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[limits]\nmax_files_per_job = 1\nmax_ranges_per_file = 2\n")
    job = ok("create", "--raw", "j").stdout
    result = cli("addfilewithranges", job, "http://127.0.0.1:9/a", str(tmp_path / "a"), "0:1,5:1,9:1")
    assert result.exit_code == ExitCode.LIMIT
    assert "0x80200052" in result.stderr
    ok("addfile", job, "http://127.0.0.1:9/a", str(tmp_path / "a"))
    result = cli("addfile", job, "http://127.0.0.1:9/b", str(tmp_path / "b"))
    assert result.exit_code == ExitCode.LIMIT
    assert "0x80200051" in result.stderr


def test_addfileset_is_all_or_nothing(cli, ok, tmp_path: Path) -> None:
    job = ok("create", "--raw", "j").stdout
    listing = tmp_path / "list.txt"
    listing.write_text(
        f"http://127.0.0.1:9/a {tmp_path}/a\nhttp://127.0.0.1:9/b {tmp_path}/b\nftp://x/c {tmp_path}/c\n"
    )
    result = cli("addfileset", job, str(listing))
    assert result.exit_code == ExitCode.USAGE
    assert "line 3: unsupported URL scheme" in result.stderr
    assert ok("getfilestotal", job).stdout == "0\n"


@pytest.mark.parametrize(
    ("last", "text"),
    [("adir", "line 3: local name"), ("nodir/c", "line 3: the directory")],
    ids=["an existing directory", "a missing directory"],
)
def test_each_file_of_a_set_is_checked_after_its_directory_was(cli, ok, tmp_path: Path, last: str, text: str) -> None:
    # The directory of a set's first files is checked once; each file, and each other directory, still is.
    (tmp_path / "adir").mkdir()
    job = ok("create", "--raw", "j").stdout
    listing = tmp_path / "list.txt"
    names = ("a", "b", last)
    listing.write_text("".join(f"http://127.0.0.1:9/{i} {tmp_path}/{name}\n" for i, name in enumerate(names)))
    result = cli("addfileset", job, str(listing))
    assert result.exit_code == ExitCode.USAGE
    assert text in result.stderr
    assert ok("getfilestotal", job).stdout == "0\n"


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("[limits\n", "not valid TOML"),
        ("[limits]\nmax_jobs_per_user = 'many'\n", "positive whole number"),
        ("[limits]\nmax_jobs = 3\n", "unknown setting limits.max_jobs"),
        ("[daemon]\nx = 1\n", "unknown setting daemon.x"),
        ("[engine]\nx = 1\n", "unknown section [engine]"),
    ],
)
def test_malformed_config_is_reported(cli, home: Path, content: str, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(content)
    result = cli("create", "x")
    assert result.exit_code == ExitCode.CONFIG
    assert text in result.stderr
    assert str(home / "config.toml") in result.stderr


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        (["--priority", "urgent"], "unknown priority"),
        (["--acl-flags", "XYZ"], "unknown ACL flag"),
        (["--upload", "--download"], "choose one of"),
    ],
)
def test_transfer_with_a_bad_value_creates_no_job(cli, tmp_path: Path, extra: list[str], text: str) -> None:
    before = snapshot(cli)
    result = cli("transfer", *extra, "t", "http://127.0.0.1:9/a", str(tmp_path / "a"))
    assert result.exit_code == ExitCode.USAGE
    assert text in result.stderr
    assert snapshot(cli) == before


def test_transfer_with_a_bad_file_creates_no_job(cli, tmp_path: Path) -> None:
    before = snapshot(cli)
    result = cli("transfer", "t", "http://127.0.0.1:9/a", str(tmp_path / "a"), "ftp://x/b", str(tmp_path / "b"))
    assert result.exit_code == ExitCode.USAGE
    assert snapshot(cli) == before
    odd = cli("transfer", "t", "http://127.0.0.1:9/a")
    assert odd.exit_code == ExitCode.USAGE
    assert "pairs" in odd.stderr
