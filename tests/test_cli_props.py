"""Setters store validated values, getters read them back; secrets never come back out."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitscli.errors import ExitCode
from bitscli.service.context import open_context, resolve
from bitscli.service.jobs import get_job


@pytest.mark.parametrize(
    ("setter", "value", "getter", "expected"),
    [
        ("setdisplayname", "renamed", "getdisplayname", "renamed"),
        ("setdescription", "nightly images", "getdescription", "nightly images"),
        ("setpriority", "high", "getpriority", "HIGH"),
        ("setpriority", "FOREGROUND", "getpriority", "FOREGROUND"),
        ("setnotifyflags", "2", "getnotifyflags", "2"),
        ("setnotifyflags", "0x3", "getnotifyflags", "3"),
        ("setminretrydelay", "60", "getminretrydelay", "60"),
        ("setminretrydelay", "1", "getminretrydelay", "5"),  # BITS raises values under 5 s to 5
        ("setnoprogresstimeout", "0", "getnoprogresstimeout", "0"),
        ("setmaxdownloadtime", "3600", "getmaxdownloadtime", "3600"),
        ("setsecurityflags", "0x100", "getsecurityflags", "256"),
        ("sethttpmethod", "POST", "gethttpmethod", "POST"),
        ("setaclflags", "OGD", "getaclflags", "OGD"),
        ("setaclflags", "15", "getaclflags", "OGDS"),
        ("setdynamic", "TRUE", "getdynamic", "TRUE"),
    ],
)
def test_setter_then_getter(ok, job, setter: str, value: str, getter: str, expected: str) -> None:
    ok(setter, job, value)
    assert ok(getter, job).stdout == expected + "\n"
    assert ok(getter, job, "--raw").stdout == expected
    doc = ok(getter, job, "--json").json
    assert doc["id"] == job
    assert "value" in doc


def test_setter_confirmation_text(ok, job) -> None:
    assert ok("setpriority", job, "low").stdout == "Priority set to LOW.\n"


def test_defaults_through_getters(ok, job) -> None:
    expected = {
        "getpriority": "NORMAL", "getnotifyflags": "3", "getminretrydelay": "600",
        "getnoprogresstimeout": "1209600", "getmaxdownloadtime": "7776000", "getproxyusage": "PRECONFIG",
        "getproxylist": "NULL", "getproxybypasslist": "NULL", "gethttpmethod": "GET", "getsecurityflags": "0",
        "getnotifycmdline": "none", "getnotifyinterface": "UNREGISTERED", "getbytestotal": "0",
        "getbytestransferred": "0", "getfilestotal": "0", "getfilestransferred": "0", "geterrorcount": "0",
        "getcompletiontime": "UNKNOWN", "getdynamic": "FALSE", "getcustomheaders": "NULL",
    }  # fmt: skip
    for getter, value in expected.items():
        assert ok(getter, job).stdout == value + "\n", getter


def test_proxy_settings(ok, job) -> None:
    ok("setproxysettings", job, "OVERRIDE", "proxy.lan:3128,10.0.0.1:8080", "<local> intranet")
    assert ok("getproxyusage", job).stdout == "OVERRIDE\n"
    assert ok("getproxylist", job).stdout == "proxy.lan:3128,10.0.0.1:8080\n"
    assert ok("getproxybypasslist", job).stdout == "<local> intranet\n"
    ok("setproxysettings", job, "NO_PROXY")
    assert ok("getproxylist", job).stdout == "NULL\n"


def test_notify_command_line(ok, job) -> None:
    ok("setnotifycmdline", job, "/usr/bin/env", f"env bitscli complete {job}")
    assert ok("getnotifycmdline", job).stdout == f"'/usr/bin/env' env bitscli complete {job}\n"
    assert ok("getnotifycmdline", job, "--json").json["value"] == {
        "program": "/usr/bin/env",
        "parameters": f"env bitscli complete {job}",
    }
    ok("setnotifycmdline", job, "/usr/bin/touch", "touch", "/tmp/a b")  # several words are joined, quoted
    assert ok("getnotifycmdline", job).stdout == "'/usr/bin/touch' touch '/tmp/a b'\n"
    ok("setnotifycmdline", job, "NULL", "NULL")
    assert ok("getnotifycmdline", job).stdout == "none\n"


def test_notify_command_line_can_be_forbidden_by_policy(cli, job, home: Path) -> None:
    (home / "config.toml").write_text("[notify]\nallow_notify_command_line = false\n")
    result = cli("setnotifycmdline", job, "/usr/bin/env", "env true")
    assert result.exit_code == ExitCode.NOT_SUPPORTED
    assert "policy" in result.stderr
    assert "0x8020003e" in result.stderr


def test_credentials_are_stored_but_never_shown(ok, cli, job, tmp_path: Path) -> None:
    secret = "s3cr3t-Pa55"
    pw = tmp_path / "pw"
    pw.write_text(secret + "\n")
    ok("setcredentials", job, "SERVER", "BASIC", "alice", "--password-file", str(pw))
    ok("setcredentials", job, "PROXY", "DIGEST", "bob", "--password-file", "-", stdin="other-secret\n")
    outputs = [
        ok("info", job, "--verbose").stdout,
        ok("info", job, "--json").stdout,
        ok("list", "--verbose").stdout,
        ok("list", "--json").stdout,
    ]
    for out in outputs:
        assert secret not in out
        assert "other-secret" not in out
    assert "SERVER BASIC alice" in outputs[0]
    ctx = open_context()
    stored = {(c.username, c.password) for c in get_job(ctx, job).credentials}
    assert stored == {("alice", secret), ("bob", "other-secret")}  # the trailing newline is not part of it
    assert secret not in repr(get_job(ctx, job))  # not even in a traceback's repr
    assert ok("removecredentials", job, "server", "basic").stdout == "Credentials for SERVER BASIC removed.\n"
    assert "alice" not in ok("info", job, "--verbose").stdout


def test_password_on_the_command_line_works_but_warns(cli, job) -> None:
    result = cli("setcredentials", job, "SERVER", "BASIC", "alice", "hunter2")
    assert result.exit_code == 0
    assert "warning:" in result.stderr
    assert "ps" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_implicit_credentials_for_negotiate(ok, job) -> None:
    ok("setcredentials", job, "SERVER", "NEGOTIATE", "NULL", "NULL")
    assert "SERVER NEGOTIATE NULL" in ok("info", job, "--verbose").stdout


def test_custom_headers_redact_secrets_and_can_become_write_only(ok, cli, job, tmp_path: Path) -> None:
    headers = tmp_path / "h"
    headers.write_text("Authorization: Bearer tok-123\nX-Trace: abc\n")
    assert ok("setcustomheaders", job, "--from-file", str(headers)).stdout == "2 custom header(s) set.\n"
    out = ok("getcustomheaders", job).stdout
    assert out == "Authorization: ***\nX-Trace: abc\n"
    assert "tok-123" not in ok("info", job, "--verbose").stdout + ok("info", job, "--json").stdout
    ok("makecustomheaderswriteonly", job)
    result = cli("getcustomheaders", job)
    assert result.exit_code == ExitCode.INVALID_STATE
    assert "write-only" in result.stderr
    ok("setcustomheaders", job, "X-Other: 1")  # still settable
    ok("setcustomheaders", job, "NULL")
    assert ok("info", job, "--json").json["job"]["properties"]["custom_header_names"] == []


def test_secret_header_on_argv_warns(cli, job) -> None:
    result = cli("setcustomheaders", job, "Authorization: Bearer abc")
    assert result.exit_code == 0
    assert "warning:" in result.stderr
    assert "abc" not in result.stderr


def test_reply_file_name_for_upload_reply_jobs(ok, cli, tmp_path: Path) -> None:
    reply = ok("create", "--raw", "--upload-reply", "r").stdout
    assert ok("getreplyfilename", reply).stdout == "NULL\n"
    (tmp_path / "up.txt").write_text("question")
    ok("addfile", reply, "http://127.0.0.1:9/up.txt", str(tmp_path / "up.txt"))
    automatic = ok("getreplyfilename", reply).stdout
    assert automatic.startswith(f"{tmp_path / 'up.txt'}.")  # named beside the upload until one is set
    assert automatic.endswith(".reply\n")
    ok("setreplyfilename", reply, str(tmp_path / "reply.bin"))
    assert ok("getreplyfilename", reply).stdout == f"{tmp_path / 'reply.bin'}\n"
    download = ok("create", "--raw", "d").stdout
    assert cli("setreplyfilename", download, str(tmp_path / "x")).exit_code == ExitCode.USAGE
    assert cli("getreplyfilename", download).exit_code == ExitCode.USAGE


def test_geterror_without_an_error(cli, job) -> None:
    result = cli("geterror", job)
    assert result.exit_code == ExitCode.INVALID_STATE
    assert "no error" in result.stderr
    assert "0x8020000f" in result.stderr


def test_geterror_and_validation(ok, job, tmp_path: Path) -> None:
    import dataclasses

    from bitscli.model import JobState

    ok("addfile", job, "http://127.0.0.1:9/a", str(tmp_path / "a"))
    ctx = open_context()
    with ctx.queue.write() as tx:  # stand in for the daemon finishing the file
        current = resolve(tx, job)
        done = dataclasses.replace(current.files[0], bytes_total=3, bytes_transferred=3, completed=True)
        tx.update(dataclasses.replace(current, files=(done,), state=JobState.TRANSFERRED), current)
    assert ok("getvalidationstate", job, "0").stdout == "FALSE\n"
    ok("setvalidationstate", job, "0", "FALSE")
    assert ok("getstate", job).stdout == "ERROR\n"
    err = ok("geterror", job).stdout
    assert "ERROR CODE:    0x80200053" in err
    assert "ERROR CONTEXT: 0x00000005" in err
    assert f"-> {tmp_path / 'a'}" in err
    assert ok("geterror", job, "--json").json["value"]["code"] == "0x80200053"
    assert ok("geterrorcount", job).stdout == "1\n"
