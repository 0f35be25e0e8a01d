"""The shipped completion scripts, driven in the real shells (issue 16 item 17): job GUIDs and names, values,
BitsAdmin /switches, no files where a command takes none, and fish descriptions kept whole."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "completions"
PRIORITIES = ["FOREGROUND", "HIGH", "NORMAL", "LOW"]  # in the order of BG_JOB_PRIORITY


@pytest.fixture
def jobs(ok, tmp_path: Path) -> dict[str, str]:
    """Two jobs to complete, and a directory with one file in it."""
    alpha = ok("create", "--raw", "alpha-job").stdout.strip()
    beta = ok("create", "--raw", "beta job").stdout.strip()  # a name with a space
    (tmp_path / "pick-me.txt").write_text("x")
    return {"alpha": alpha, "beta": beta, "dir": str(tmp_path)}


def _shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    return path


def bash(*words: str) -> list[str]:
    line = " ".join(f"'{w}'" for w in words)
    program = (
        f"source {SCRIPTS / 'bitscli.bash'}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _bitscli; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run([_shell("bash"), "-c", program], capture_output=True, text=True, check=True)
    return [w for w in done.stdout.split("\n") if w]


def zsh(*words: str) -> list[str]:
    """The zsh function run by zsh itself, with the completion system's output builtins recording what they
    are given (compadd, _describe and _files only work inside a live completion widget)."""
    program = (
        'compadd() { [[ $1 == -a ]] && print -l -- ${(P)2} || print -l -- "$@"; }; '
        "_describe() { print -l -- ${(P)2%%:*}; }; _files() { print -- __FILES__; }; "
        f"source {SCRIPTS / '_bitscli'} >/dev/null 2>&1; "  # the file ends by calling _bitscli once
        f"words=(bitscli {' '.join(repr(w) for w in words)}); CURRENT={len(words) + 1}; _bitscli"
    )
    done = subprocess.run([_shell("zsh"), "-f", "-c", program], capture_output=True, text=True, check=True)
    return [w for w in done.stdout.split("\n") if w]


def fish(line: str) -> list[str]:
    program = f"source {SCRIPTS / 'bitscli.fish'}; complete -C {line!r}"
    done = subprocess.run([_shell("fish"), "--no-config", "-c", program], capture_output=True, text=True, check=True)
    return [w for w in done.stdout.split("\n") if w]


def test_bash(jobs: dict[str, str]) -> None:
    assert bash("bitscli", "getstat") == ["getstate"]
    assert sorted(bash("bitscli", "resume", "")) == sorted([jobs["alpha"], jobs["beta"], "alpha-job", "beta job"])
    assert sorted(bash("bitscli", "resume", "{")) == sorted([jobs["alpha"], jobs["beta"]])  # GUIDs as well
    assert bash("bitscli", "cancel", "alpha-job", "be") == ["beta job"]  # every argument of a JOB... command
    assert bash("bitscli", "setpriority", "alpha-job", "") == PRIORITIES
    assert bash("bitscli", "create", "--priority", "H") == ["HIGH"]
    assert bash("bitscli", "list", "--state", "TRANSI") == ["TRANSIENT_ERROR"]
    assert bash("bitscli", "setproxysettings", "alpha-job", "NO") == ["NO_PROXY"]
    assert bash("bitscli", "/addf") == ["/ADDFILE", "/ADDFILESET", "/ADDFILEWITHRANGES"]
    assert bash("bitscli", "/setpriority", "alpha-job", "LO") == ["LOW"]
    assert bash("bitscli", "daemon", "st") == ["start", "status", "stop"]
    assert bash("bitscli", "daemon", "start", "") == []  # no files after a command that takes none
    assert bash("bitscli", "addfile", "alpha-job", "http://h/f", f"{jobs['dir']}/pick") == [
        f"{jobs['dir']}/pick-me.txt"
    ]
    assert bash("bitscli", "create", "--upload") == ["--upload", "--upload-reply"]


def test_zsh(jobs: dict[str, str]) -> None:
    assert "getstate" in zsh("getst")
    assert set(zsh("resume", "")) == {jobs["alpha"], jobs["beta"], "alpha-job", "beta job"}
    assert zsh("setpriority", "alpha-job", "") == PRIORITIES
    assert "/ADDFILE" in zsh("/ADD")
    assert zsh("daemon", "") == ["log", "run", "start", "status", "stop", "unit"]
    assert zsh("daemon", "start", "") == []
    assert zsh("addfile", "alpha-job", "http://h/f", "") == ["__FILES__"]


def test_fish(jobs: dict[str, str]) -> None:
    assert set(fish("bitscli resume ")) == {jobs["alpha"], jobs["beta"], "alpha-job", "beta job"}
    assert sorted(fish("bitscli setpriority alpha-job ")) == sorted(PRIORITIES)  # fish sorts them
    assert fish("bitscli setnotifyflags alpha-job 3") == ["3", "32"]
    assert fish("bitscli /addf") == ["/ADDFILE", "/ADDFILESET", "/ADDFILEWITHRANGES"]
    assert fish("bitscli daemon start ") == []  # no files after `daemon`
    assert fish(f"bitscli addfile alpha-job http://h/f {jobs['dir']}/pick") == [f"{jobs['dir']}/pick-me.txt"]
    described = dict(line.split("\t", 1) for line in fish("bitscli getst"))
    assert described["getstate"] == "The job's state (QUEUED, ..., CANCELLED)."  # quotes, dots, parentheses kept
    assert described["getstartjitter"].endswith("(DEFAULT: the config's bandwidth.start_jitter).")
