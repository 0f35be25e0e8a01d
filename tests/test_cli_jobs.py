"""Job lifecycle through the CLI: output formats scripts parse, transitions, files, complete and cancel."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from bitscli import partfiles
from bitscli.errors import ExitCode
from bitscli.model import JobState
from bitscli.service.context import open_context, resolve

GUID = r"\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}"


def test_create_prints_the_bitsadmin_line(ok) -> None:
    out = ok("create", "nightly").stdout
    assert re.fullmatch(rf"Created job ({GUID})\.\n", out)
    guid = out.split()[2].rstrip(".")  # how BitsAdmin scripts take token 3 and strip the dot
    assert ok("getstate", guid).stdout == "SUSPENDED\n"


def test_raw_create_prints_only_the_guid(ok) -> None:
    out = ok("create", "--raw", "nightly").stdout
    assert re.fullmatch(GUID, out)


def test_create_types_and_priority(ok) -> None:
    up = ok("create", "--raw", "--upload", "u").stdout
    reply = ok("create", "--raw", "--upload-reply", "--priority", "foreground", "r").stdout
    assert ok("gettype", up).stdout == "UPLOAD\n"
    assert ok("gettype", reply).stdout == "UPLOAD-REPLY\n"
    assert ok("getpriority", reply).stdout == "FOREGROUND\n"


def test_list_and_info_lines(ok, job, tmp_path: Path) -> None:
    ok("addfile", job, "http://127.0.0.1:9/a", str(tmp_path / "a"))
    line = f"{job} 'job1' SUSPENDED 0 / 1 0 / UNKNOWN"
    assert ok("info", job).stdout == line + "\n"
    assert ok("list").stdout == f"{line}\n\nListed 1 job(s).\n"


def test_list_of_nothing(ok) -> None:
    assert ok("list").stdout == "\nListed 0 job(s).\n"


def test_info_verbose_has_the_documented_keys(ok, job, tmp_path: Path) -> None:
    ok("addfile", job, "http://127.0.0.1:9/a", str(tmp_path / "a"))
    out = ok("info", job, "--verbose").stdout
    for key in (
        f"GUID: {job} DISPLAY: job1",
        "TYPE: DOWNLOAD STATE: SUSPENDED OWNER: ",
        "PRIORITY: NORMAL FILES: 0 / 1 BYTES: 0 / UNKNOWN",
        "CREATION TIME: ",
        "COMPLETION TIME: UNKNOWN",
        "NOTIFY INTERFACE: UNREGISTERED NOTIFICATION FLAGS: 3",
        "RETRY DELAY: 600 NO PROGRESS TIMEOUT: 1209600 ERROR COUNT: 0",
        "PROXY USAGE: PRECONFIG PROXY LIST: NULL PROXY BYPASS LIST: NULL",
        "JOB FILES:",
        f"0 / UNKNOWN WORKING http://127.0.0.1:9/a -> {tmp_path / 'a'}",
        "NOTIFICATION COMMAND LINE: none",
    ):
        assert key in out


def test_json_schema_of_a_job(ok, job, tmp_path: Path) -> None:
    ok("addfile", job, "http://127.0.0.1:9/a", str(tmp_path / "a"))
    doc = ok("info", job, "--json").json
    assert doc["schema"] == 1
    j = doc["job"]
    assert j["id"] == job
    assert j["name"] == "job1"
    assert j["state"] == "SUSPENDED"
    assert j["type"] == "DOWNLOAD"
    assert j["bytes_total"] is None
    assert j["files_total"] == 1
    assert j["files"][0] == {
        "index": 0, "remote_name": "http://127.0.0.1:9/a", "local_name": str(tmp_path / "a"), "bytes_total": None,
        "bytes_transferred": 0, "completed": False, "ranges": [], "validation_state": False,
        "expected_hash": None, "verified_hash": None, "hash_mismatches": 0, "if_changed": False, "unchanged": False,
    }  # fmt: skip
    assert j["properties"]["min_retry_delay"] == 600
    listed = ok("list", "--json").json
    assert [x["id"] for x in listed["jobs"]] == [job]


def test_resume_suspend_round_trip(ok, job, tmp_path: Path) -> None:
    ok("addfile", job, "http://127.0.0.1:9/a", str(tmp_path / "a"))
    assert ok("resume", job).stdout == "Job resumed.\n"
    assert ok("getstate", job).stdout == "QUEUED\n"
    assert ok("suspend", job).stdout == "Job suspended.\n"
    assert ok("getstate", job).stdout == "SUSPENDED\n"


def test_names_resolve_to_the_live_job_and_finished_jobs_by_guid(ok, cli, tmp_path: Path) -> None:
    first = ok("create", "--raw", "same").stdout
    ok("cancel", "same")
    second = ok("create", "--raw", "same").stdout
    assert ok("getstate", "same").stdout == "SUSPENDED\n"  # the new one, not the cancelled one
    assert ok("getstate", first).stdout == "CANCELLED\n"
    ok("cancel", second)
    assert ok("getstate", "same").stdout == "CANCELLED\n"  # only finished jobs left: the newest
    assert "same" not in ok("list").stdout
    assert first in ok("list", "--all").stdout


def test_guid_forms(ok, job) -> None:
    bare = job.strip("{}")
    for ref in (job, bare, bare.lower(), "{" + bare.lower() + "}"):
        assert ok("getstate", ref).stdout == "SUSPENDED\n"


def test_addfileset_adds_all_lines(ok, job, tmp_path: Path) -> None:
    listing = tmp_path / "files.txt"
    listing.write_text(
        "# images\n"
        f"http://127.0.0.1:9/a {tmp_path / 'a'}\n"
        "\n"
        f"'http://127.0.0.1:9/b' '{tmp_path / 'b c'}'   # quoted names may contain spaces\n"
    )
    assert ok("addfileset", job, str(listing)).stdout == f"Added 2 file(s) to job {job}.\n"
    names = [f["local_name"] for f in ok("listfiles", job, "--json").json["files"]]
    assert names == [str(tmp_path / "a"), str(tmp_path / "b c")]


def test_addfileset_from_stdin(ok, job, tmp_path: Path) -> None:
    ok("addfileset", job, "-", stdin=f"http://127.0.0.1:9/a {tmp_path / 'a'}\n")
    assert ok("getfilestotal", job).stdout == "1\n"


def test_addfilewithranges_keeps_the_given_order(ok, job, tmp_path: Path) -> None:
    ok("addfilewithranges", job, "http://127.0.0.1:9/a", str(tmp_path / "a"), "100:eof,0:10,20:5")
    assert ok("listfiles", job, "--json").json["files"][0]["ranges"] == ["100:eof", "0:10", "20:5"]


def test_file_url_and_bare_path_remotes(ok, job, tmp_path: Path) -> None:
    ok("addfile", job, "file:///etc/hostname", str(tmp_path / "a"))
    ok("addfile", job, "/etc/hostname", str(tmp_path / "b"))
    assert ok("getfilestotal", job).stdout == "2\n"


def test_replaceremoteprefix(ok, job, tmp_path: Path) -> None:
    ok("addfile", job, "http://127.0.0.1:9/a", str(tmp_path / "a"))
    ok("addfile", job, "http://127.0.0.2:9/b", str(tmp_path / "b"))
    assert ok("replaceremoteprefix", job, "http://127.0.0.1:9/", "https://[::1]:8443/").stdout.startswith("1 remote")
    remotes = [f["remote_name"] for f in ok("listfiles", job, "--json").json["files"]]
    assert remotes == ["https://[::1]:8443/a", "http://127.0.0.2:9/b"]


def test_listfiles_text(ok, job, tmp_path: Path) -> None:
    ok("addfile", job, "http://127.0.0.1:9/a", str(tmp_path / "a"))
    assert (
        ok("listfiles", job).stdout
        == f"0 / UNKNOWN WORKING http://127.0.0.1:9/a -> {tmp_path / 'a'}\n\nListed 1 file(s).\n"
    )


def _finish_file(job: str, index: int, content: bytes) -> str:
    """Stand in for the daemon: write the part file and record the file as transferred."""
    ctx = open_context()
    with ctx.queue.write() as tx:
        current = resolve(tx, job)
        import dataclasses

        f = current.files[index]
        part = partfiles.part_path(f.local_name, current.id, index)
        Path(part).write_bytes(content)
        done = dataclasses.replace(f, bytes_total=len(content), bytes_transferred=len(content), completed=True)
        new_files = (*current.files[:index], done, *current.files[index + 1 :])
        state = JobState.TRANSFERRED if all(x.completed for x in new_files) else current.state
        tx.update(dataclasses.replace(current, files=new_files, state=state), current)
    ctx.queue.close()
    return part


def test_complete_publishes_finished_files_atomically(ok, job, tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    ok("addfile", job, "http://127.0.0.1:9/a", str(target))
    part = _finish_file(job, 0, b"payload" * 1000)
    assert not target.exists()  # nothing under the final name before complete
    assert ok("getstate", job).stdout == "TRANSFERRED\n"
    assert ok("gettemporaryname", job, "0").stdout == part + "\n"
    assert Path(part).name.startswith(".")
    assert ok("complete", job).stdout == "Job completed.\n"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(b"payload" * 1000).hexdigest()
    assert not Path(part).exists()
    assert ok("getstate", job).stdout == "ACKNOWLEDGED\n"
    assert ok("getcompletiontime", job).stdout != "UNKNOWN\n"


def test_partial_complete_keeps_finished_files_and_drops_the_rest(ok, job, tmp_path: Path) -> None:
    ok("addfile", job, "http://127.0.0.1:9/a", str(tmp_path / "a"))
    ok("addfile", job, "http://127.0.0.1:9/b", str(tmp_path / "b"))
    _finish_file(job, 0, b"A")
    unfinished = Path(partfiles.part_path(str(tmp_path / "b"), job, 1))
    unfinished.write_bytes(b"half")
    assert ok("complete", job).stdout == "Job partially completed: 1 of 2 file(s) kept.\n"
    assert (tmp_path / "a").read_bytes() == b"A"
    assert not (tmp_path / "b").exists()
    assert not unfinished.exists()


def test_two_jobs_for_one_target_never_share_a_part_file(ok, tmp_path: Path) -> None:
    one = ok("create", "--raw", "one").stdout
    two = ok("create", "--raw", "two").stdout
    target = str(tmp_path / "same")
    ok("addfile", one, "http://127.0.0.1:9/a", target)
    ok("addfile", two, "http://127.0.0.1:9/b", target)
    assert partfiles.part_path(target, one, 0) != partfiles.part_path(target, two, 0)


def test_cancel_deletes_part_files(ok, job, tmp_path: Path) -> None:
    ok("addfile", job, "http://127.0.0.1:9/a", str(tmp_path / "a"))
    part = _finish_file(job, 0, b"secret data")
    assert ok("cancel", job).stdout == "Job canceled.\n"
    assert not Path(part).exists()
    assert not (tmp_path / "a").exists()


def test_reset_cancels_every_live_job(ok, cli) -> None:
    guids = [ok("create", "--raw", f"j{i}").stdout for i in range(3)]
    ok("cancel", guids[0])
    out = ok("reset").stdout
    assert out == f"{guids[1]} canceled.\n{guids[2]} canceled.\n2 out of 2 jobs canceled.\n"
    assert ok("list").stdout == "\nListed 0 job(s).\n"


def test_complete_on_a_finished_job_is_refused(cli, ok, job) -> None:
    ok("cancel", job)
    result = cli("complete", job)
    assert result.exit_code == ExitCode.INVALID_STATE
    assert "0x80200002" in result.stderr
    assert "CANCELLED" in result.stderr


def test_list_on_a_terminal_is_a_table(ok, job, monkeypatch) -> None:
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    out = ok("list").stdout
    assert "GUID" in out
    assert "STATE" in out  # the table's header row
    assert job in out  # whole, so it can be pasted
    assert "SUSPENDED" in out  # never truncated, even on an 80-column terminal
    assert "job1" in out
    assert out.endswith("Listed 1 job(s).\n")


def test_monitor_plain_output_for_scripts(ok, job, tmp_path: Path) -> None:
    ok("addfile", job, "http://127.0.0.1:9/a", str(tmp_path / "a"))
    out = ok("monitor", "--refresh", "0.1", "--count", "2").stdout
    assert out.startswith("MONITORING BACKGROUND COPY MANAGER(0.1 second refresh)\n")
    assert out.count(f"{job} 'job1' SUSPENDED 0 / 1 0 / UNKNOWN") == 2


def test_monitor_on_a_terminal_draws_a_table(ok, job, monkeypatch) -> None:
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    out = ok("monitor", "--refresh", "0.1", "--count", "1").stdout
    assert job in out
    assert "SUSPENDED" in out
    assert "BYTES" in out  # PROGRESS joins on terminals of 160 columns or more


def test_bare_local_paths_may_contain_spaces(ok, job, tmp_path: Path) -> None:
    source = tmp_path / "with space.txt"
    source.write_text("x")
    ok("addfile", job, str(source), str(tmp_path / "copy of it"))
    assert ok("listfiles", job, "--json").json["files"][0]["remote_name"] == str(source)


def test_several_jobs_per_command(cli, ok, tmp_path: Path) -> None:
    """Issue 16 item 11: cancel A B, suspend, resume, complete; one failure does not stop the others."""
    a = ok("create", "--raw", "a").stdout
    b = ok("create", "--raw", "b").stdout
    for name in ("a", "b"):
        ok("addfile", name, "http://127.0.0.1:9/f", str(tmp_path / name))
    assert ok("suspend", "a").stdout == "Job suspended.\n"  # one job: the BitsAdmin line, as before
    resumed = cli("resume", "--no-daemon-start", "a", "nosuch", "b")
    assert resumed.exit_code == 3  # the first failure's: a job that does not exist
    assert resumed.stdout == f"Job {a} resumed.\nJob {b} resumed.\n"
    assert "no job is named 'nosuch'" in resumed.stderr
    assert ok("suspend", "a", "b").stdout == f"Job {a} suspended.\nJob {b} suspended.\n"
    assert ok("cancel", a, b).stdout == f"Job {a} canceled.\nJob {b} canceled.\n"
    assert ok("list", "--all", "--state", "CANCELLED", "--json").json["jobs"][0]["id"] == a


def test_list_by_state(cli, ok) -> None:
    ok("create", "s1")
    ok("create", "s2")
    ok("cancel", "s2")
    names = lambda *argv: [j["name"] for j in ok("list", "--json", *argv).json["jobs"]]  # noqa: E731
    assert names("--state", "SUSPENDED") == ["s1"]
    assert names("--state", "Canceled") == ["s2"]  # BITS spells it both ways; a final state needs no --all
    assert names("--state", "suspended,cancelled") == ["s1", "s2"]
    assert names("--state", "ERROR") == []
    bad = cli("list", "--state", "DONE")
    assert bad.exit_code == 2
    assert "unknown state 'DONE'" in bad.stderr
