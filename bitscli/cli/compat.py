"""BitsAdmin argv ("/create /download myjob", "/RAWRETURN /GETSTATE job") -> bitscli argv."""

from __future__ import annotations

from bitscli.cli.table import COMMANDS
from bitscli.errors import InvalidValue, NotSupported

# Prefix switches (bits.md §1): /RAWRETURN is honoured by /CREATE and /GET*; wrapping is irrelevant here.
_PREFIXES = {"/RAWRETURN", "/WRAP", "/NOWRAP"}

_PEER_CACHING = "BITS peer caching was deprecated in Windows 7 in favour of BranchCache; bitscli does not implement it"
_CERTIFICATE_STORES = (
    "client certificates from Windows certificate stores are not available; PEM files are: "
    "setclientcertificate JOB CERT.pem [KEY.pem]"
)
_UNSUPPORTED = {
    "/CACHE": _PEER_CACHING,
    "/PEERS": _PEER_CACHING,
    "/PEERCACHING": _PEER_CACHING,
    "/GETPEERSTATS": _PEER_CACHING,
    "/SETPEERCACHINGFLAGS": _PEER_CACHING,
    "/GETPEERCACHINGFLAGS": _PEER_CACHING,
    "/TAKEOWNERSHIP": "the bitscli queue is per-user, so there is no other owner to take a job from",
    "/SETHELPERTOKEN": "helper tokens are a Windows security-token feature",
    "/SETHELPERTOKENFLAGS": "helper tokens are a Windows security-token feature",
    "/GETHELPERTOKENSID": "helper tokens are a Windows security-token feature",
    "/GETHELPERTOKENFLAGS": "helper tokens are a Windows security-token feature",
    "/SETCLIENTCERTIFICATEBYID": _CERTIFICATE_STORES,
    "/SETCLIENTCERTIFICATEBYNAME": _CERTIFICATE_STORES,
    "/REMOVECLIENTCERTIFICATE": _CERTIFICATE_STORES,
    "/GETCLIENTCERTIFICATE": _CERTIFICATE_STORES,
}
_UTIL_UNSUPPORTED = "/UTIL manages the Windows BITS service and Internet Explorer proxy settings"
_ALIASES = {"/SETACLFLAG": "/SETACLFLAGS"}  # the spelling of Microsoft's own syntax line for /SETACLFLAGS
# GNU options a BitsAdmin line may carry after its command (`/list --json`); any other word stays a value, so a
# description of "--fast" is still a description. Those in _VALUED take the next word as their value.
_VALUED = {"--timeout", "--max-bandwidth", "--refresh", "--count"}
_GNU = {"--json", "--verbose", "--raw", "--all", "--no-daemon-start", *_VALUED}

# Per command: BitsAdmin option switch -> (bitscli option, takes a value).
_OPTIONS: dict[str, dict[str, tuple[str, bool]]] = {
    "create": {"/DOWNLOAD": ("--download", False), "/UPLOAD": ("--upload", False),
               "/UPLOAD-REPLY": ("--upload-reply", False)},
    "info": {"/VERBOSE": ("--verbose", False)},
    "list": {"/VERBOSE": ("--verbose", False), "/ALLUSERS": ("--all-users", False)},
    "reset": {"/ALLUSERS": ("--all-users", False)},
    "monitor": {"/ALLUSERS": ("--all-users", False), "/REFRESH": ("--refresh", True)},
    "transfer": {"/DOWNLOAD": ("--download", False), "/UPLOAD": ("--upload", False),
                 "/UPLOAD-REPLY": ("--upload-reply", False), "/PRIORITY": ("--priority", True),
                 "/ACLFLAGS": ("--acl-flags", True), "/DYNAMIC": ("--dynamic", False)},
}  # fmt: skip
_OPTION_COMMANDS = set(_OPTIONS)  # commands whose option switches are translated; others pass words through


def banner(version: str) -> str:
    """The lines BitsAdmin prints before its output, in the same shape (a blank line, three lines, a blank line)
    and our own words: batch scripts skip them by count (`for /f "skip=4 tokens=3"`)."""
    return (
        f"\nBITSCLI version {version} (BitsAdmin syntax)\n"
        "A background transfer queue for Linux, macOS and Windows.\n"
        "Native syntax and help: bitscli --help\n\n"
    )


def wants_banner(args: list[str]) -> bool:
    """BitsAdmin prints its banner unless /RAWRETURN is given; JSON asked for (`/list --json`) stays pure JSON."""
    if "--json" in args:
        return False
    words = list(args)
    while words and words[0].upper() in _PREFIXES:
        if words.pop(0).upper() == "/RAWRETURN":
            return False
    return True


def translate(args: list[str]) -> list[str]:
    """Translate a BitsAdmin command line; raises NotSupported for switches bitscli leaves out."""
    words = list(args)
    raw = False
    while words and words[0].upper() in _PREFIXES:
        raw = raw or words.pop(0).upper() == "/RAWRETURN"
    if not words or words[0] in ("/?", "/HELP") or words[0].upper() == "/HELP":
        return ["--help"]
    switch, rest = words[0].upper(), words[1:]
    switch = _ALIASES.get(switch, switch)
    if switch in _UNSUPPORTED:
        raise NotSupported(f"{switch} is not supported: {_UNSUPPORTED[switch]}", hint="see 'bitscli --help'")
    if switch == "/UTIL":
        if rest and rest[0].upper() == "/VERSION":
            return ["--version"]
        raise NotSupported(f"/UTIL {' '.join(rest)}".strip() + f" is not supported: {_UTIL_UNSUPPORTED}")
    command = switch[1:].lower()
    if command not in COMMANDS and command not in _OPTION_COMMANDS:
        raise InvalidValue(f"Invalid command: {words[0]}", hint="see 'bitscli --help' and README's switch table")
    if rest and rest[-1] in ("/?", "/HELP"):
        return [command, "--help"]
    head: list[str] = []
    if command == "transfer" and rest:
        # /TRANSFER's first word is always the job's name, even one that looks like a switch: BitsAdmin
        # names the job "/Download" in `/transfer /Download /priority Foreground URL FILE`.
        head, rest = rest[:1], rest[1:]
        options, positionals = _split(command, rest)
        options.append("--bitsadmin-output")
    else:
        options, positionals = _split(command, rest)
    positionals = head + positionals
    if raw and (command == "create" or command.startswith("get")):
        options.append("--raw")
    # "--" keeps values that start with "-" (a description, a header) from being read as options.
    return [command, *options, "--", *positionals] if positionals else [command, *options]


def _split(command: str, rest: list[str]) -> tuple[list[str], list[str]]:
    known = _OPTIONS.get(command, {})
    options: list[str] = []
    positionals: list[str] = []
    words = iter(rest)
    for word in words:
        if word in _GNU or word.split("=", 1)[0] in _VALUED:  # a GNU option after the command: `/list --json`
            options.append(word)
            if word in _VALUED:
                value = next(words, None)
                if value is not None:
                    options.append(value)
            continue
        option = known.get(word.upper())
        if option is None:
            positionals.append(word)
            continue
        flag, takes_value = option
        options.append(flag)
        if takes_value:
            value = next(words, None)
            if value is None:
                raise InvalidValue(f"{word} needs a value")
            options.append(value)
    return options, positionals
