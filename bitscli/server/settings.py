"""The server's settings, mirroring the BITS IIS extension (bits.md §4), from flags or a TOML file."""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path

from bitscli.errors import ConfigError

MIB = 1 << 20


@dataclass(frozen=True)
class ServerSettings:
    root: Path
    upload_dirs: tuple[str, ...] = ()  # URL paths under which uploads are enabled; IIS: off by default
    allow_overwrite: bool = False  # BITSAllowOverwrites 0: an existing target gets 409
    max_upload_size: int | None = None  # BITSMaximumUploadSize: empty means unlimited
    max_fragment_size: int = 100 * MIB  # reference servers cap fragments at 100 MiB
    session_timeout: int = 1_209_600  # BITSSessionTimeout: seconds without progress before cleanup
    cleanup_interval: int = 12 * 3600  # the IIS cleanup task runs every 12 h
    sessions_per_user: int = 50  # BITSNumberOfSessionsLimit
    max_sessions: int = 10_000  # open sessions of all users together: each holds a record and a data file
    empty_session_timeout: int = 600  # a session that never received a byte is swept after this
    header_timeout: int = 10  # seconds for a complete request header section (and between requests)
    body_timeout: int = 30  # the window over which a request body must keep up min_body_rate
    min_body_rate: int = 500  # bytes a second, as Apache's mod_reqtimeout
    max_connections: int = 1000  # open connections; lowered to fit the descriptor limit
    upload_buffer: int = 64 * MIB  # fragment bytes held in memory, all requests together
    host_id: str | None = None  # BITSHostId: later packets of a session go to this host
    host_id_fallback: int = 86_400  # BITSHostIdFallbackTimeout
    notification_type: int = 0  # BITSServerNotificationType: 0 store, 1 by reference, 2 by value
    notification_url: str | None = None  # BITSServerNotificationURL (HTTP only)
    notification_command: tuple[str, ...] = ()  # bitscli's local alternative to the URL
    notification_timeout: int = 300  # the application must answer within 5 minutes
    password_file: Path | None = None  # user:scrypt hash lines; uploads then need Basic authentication
    certfile: Path | None = None
    keyfile: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080

    def uploads_enabled(self, url_path: str) -> bool:
        """True when an enabled upload directory contains ``url_path`` ("/" enables the whole root)."""
        for directory in self.upload_dirs:
            prefix = "/" + directory.strip("/")
            if prefix == "/" or url_path == prefix or url_path.startswith(prefix + "/"):
                return True
        return False


_KEYS = {f.name for f in dataclasses.fields(ServerSettings)} - {"root"}
_PATH_KEYS = {"password_file", "certfile", "keyfile"}


def load_toml(path: Path) -> dict[str, object]:
    """The settings a TOML file gives, as keyword arguments; unknown keys are errors, not silently ignored."""
    import tomllib

    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"server settings file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read server settings {path}: {exc}", hint="fix the file's TOML syntax") from None
    values: dict[str, object] = {}
    for key, value in doc.items():
        name = key.replace("-", "_")
        if name == "root":
            values["root"] = Path(str(value))
        elif name not in _KEYS:
            raise ConfigError(f"{path}: unknown setting {key!r}", hint=f"known: {', '.join(sorted(_KEYS))}")
        elif name in _PATH_KEYS:
            values[name] = (path.parent / str(value)).resolve()
        elif name == "upload_dirs":
            values[name] = tuple(value) if isinstance(value, list) else (str(value),)
        elif name == "notification_command":
            values[name] = tuple(value) if isinstance(value, list) else tuple(shlex.split(str(value)))
        else:
            values[name] = value
    return values


def build(values: dict[str, object]) -> ServerSettings:
    """Settings from merged file and flag values, checked against the limits BITS documents."""
    root = values.get("root")
    if root is None:
        raise ConfigError("bitscli serve needs a root directory", hint="bitscli serve --root DIR")
    root = Path(str(root)).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"the root {root} is not a directory", hint="create it first, or pick another --root")
    try:
        settings = ServerSettings(root=root, **{k: v for k, v in values.items() if k != "root"})  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(f"bad server settings: {exc}") from None
    _check(settings)
    return settings


def _check(s: ServerSettings) -> None:
    def positive(name: str, value: object, upper: int = 1 << 62) -> None:
        if type(value) is not int or not 0 < value <= upper:
            raise ConfigError(f"{name.replace('_', '-')} must be a whole number from 1 to {upper}, not {value!r}")

    for name in ("max_fragment_size", "session_timeout", "cleanup_interval", "sessions_per_user", "max_sessions",
                 "empty_session_timeout", "header_timeout", "body_timeout", "min_body_rate", "max_connections",
                 "upload_buffer", "host_id_fallback", "notification_timeout"):  # fmt: skip
        positive(name, getattr(s, name))
    if s.max_upload_size is not None:
        positive("max_upload_size", s.max_upload_size, 1_844_674_407_370_955)  # the IIS maximum
    if s.notification_type not in (0, 1, 2):
        raise ConfigError(
            f"notification-type must be 0 (store), 1 (by reference) or 2 (by value), not {s.notification_type!r}"
        )
    if s.notification_type and not (s.notification_url or s.notification_command):
        raise ConfigError("a notification type needs --notification-url or --notification-command")
    if s.notification_url and s.notification_command:
        raise ConfigError("give either a notification URL or a notification command, not both")
    url = s.notification_url
    if url and (len(url) > 2200 or not url.lower().startswith(("http:", "/"))):
        raise ConfigError("the notification URL must be http:// (or relative), at most 2,200 characters (as in BITS)")
    if s.host_id is not None and not 0 < len(s.host_id) <= 300:
        raise ConfigError("the host id must be 1 to 300 characters (BITSHostId)")
    if (s.certfile is None) != (s.keyfile is None):
        raise ConfigError("TLS needs both --certfile and --keyfile")
    for path in (s.password_file, s.certfile, s.keyfile):
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{path} does not exist or is not a file")
    if type(s.port) is not int or not 0 <= s.port <= 65535:
        raise ConfigError(f"the port must be from 0 to 65535, not {s.port!r}")
