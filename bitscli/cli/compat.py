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


def translate(args: list[str]) -> list[str]:
    """Translate a BitsAdmin command line; raises NotSupported for switches bitscli leaves out."""
    words = list(args)
    raw = False
    while words and words[0].upper() in _PREFIXES:
        raw = raw or words.pop(0).upper() == "/RAWRETURN"
    if not words or words[0] in ("/?", "/HELP") or words[0].upper() == "/HELP":
        return ["--help"]
    switch, rest = words[0].upper(), words[1:]
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
    options, positionals = _split(command, rest)
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
