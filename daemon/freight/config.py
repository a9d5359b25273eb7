"""All settings and paths, built once at the edge.

``FREIGHT_HOME=/some/dir`` puts the database, logs, secrets and the daemon's state file under
that folder (tests and portable installs); otherwise the platform's usual places are used
(platformdirs). Settings that a user may change at run time live in the database's
``settings`` table; their defaults, types and bounds are declared here in ``SETTINGS``.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from freight import capture, timetable
from freight.errors import InputError
from freight.units import parse_rate as parse_rate
from freight.units import parse_size as parse_size

APP = "freight"
#: Chosen clear of aria2's 6800 and of the common development ports.
DEFAULT_PORT = 6817


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    state_dir: Path
    log_dir: Path
    portable: bool  # True when FREIGHT_HOME is set

    @property
    def database(self) -> Path:
        return self.data_dir / "freight.db"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "freight.log"

    @property
    def host_log_file(self) -> Path:
        return self.log_dir / "freight-host.log"

    @property
    def daemon_file(self) -> Path:
        """Where a running daemon records its pid, port and URL for clients to find."""
        return self.state_dir / "daemon.json"

    @property
    def start_error_file(self) -> Path:
        """Why the last daemon could not start (:mod:`freight.starterror`)."""
        return self.state_dir / "start-error.json"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "daemon.lock"

    @property
    def secrets_dir(self) -> Path:
        """File fallback for secrets when no OS keyring works (mode 0700, files 0600)."""
        return self.config_dir / "secrets"

    @property
    def daemon_stderr_file(self) -> Path:
        """Where `freight start` sends the output of the daemon it starts."""
        return self.log_dir / "daemon-stderr.log"

    def ensure(self) -> Paths:
        """Create the folders, private to the user whatever the umask: the download list
        holds signed URLs, which carry credentials in their query, and the logs name them too.

        Every program runs this first (the daemon, the CLI, `freight-host`), so whichever
        comes first the result is the same. Freight's own folders that an older version left
        looser are tightened, and so are the files in its state and log folders; a folder the
        user chose (FREIGHT_HOME itself, an XDG base folder) keeps its mode. The daemon's
        stderr log is created here, private, because `freight start` opens it for appending.
        """
        folders = (self.config_dir, self.data_dir, self.state_dir, self.log_dir)
        for folder in folders:
            private_folder(folder)
        own = (self.state_dir, self.log_dir) if self.portable else folders
        for folder in own:
            tighten(folder)
        for folder in (self.state_dir, self.log_dir):
            if folder.is_dir():
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.is_file(follow_symlinks=False):
                            tighten(Path(entry.path))
        for name in ("freight.db", "freight.db-wal", "freight.db-shm"):
            if os.path.lexists(self.data_dir / name):
                tighten(self.data_dir / name)
        try:
            os.close(private_file(self.daemon_stderr_file, os.O_WRONLY | os.O_APPEND))
        except OSError:
            pass  # `freight start` says so when it opens it; nothing else needs it
        return self


def private_folder(folder: Path) -> list[Path]:
    """Make folder and each missing parent 0700, whatever the umask; return those made
    (parents first). Folders that exist are left as they are."""
    missing = []
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    made = []
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # another of Freight's programs made it a moment ago
            continue
        os.chmod(path, 0o700)  # a umask can take bits off mkdir's mode, never add them
        made.append(path)
    return made


def private_file(path: Path, flags: int) -> int:
    """Open path (creating it 0600 whatever the umask) and return the descriptor; an
    existing file is tightened, never loosened. Never through a symlink."""
    fd = os.open(path, flags | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        current = stat.S_IMODE(os.fstat(fd).st_mode)
        wanted = (current & 0o700) | 0o600
        if current != wanted and hasattr(os, "fchmod"):  # Windows has no modes to speak of
            os.fchmod(fd, wanted)
    except OSError:
        os.close(fd)
        raise
    return fd


def write_private_json(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON atomically (a reader never sees half of it),
    0600 like every file Freight makes (:func:`private_file`)."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    fd = private_file(tmp, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out)
    os.replace(tmp, path)


def tighten(path: Path) -> None:
    """Take the group and other bits off one of Freight's own paths; a symlink is left alone
    (its target is not Freight's to change)."""
    # Another of Freight's processes may remove a file meanwhile (SQLite drops its -wal and
    # -shm files when the last connection closes): a path that is gone needs no tightening.
    try:
        st = os.lstat(path)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
            os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)
    except FileNotFoundError:
        pass


def paths_from_env(environ: dict[str, str] | None = None) -> Paths:
    env = os.environ if environ is None else environ
    home = env.get("FREIGHT_HOME")
    if home:
        root = Path(home).expanduser().resolve()
        return Paths(root, root, root / "state", root / "logs", portable=True)
    import platformdirs  # not needed (nor imported) under FREIGHT_HOME

    return Paths(
        Path(platformdirs.user_config_dir(APP)),
        Path(platformdirs.user_data_dir(APP)),
        Path(platformdirs.user_state_dir(APP)),
        Path(platformdirs.user_log_dir(APP)),
        portable=False,
    )


def default_download_dir(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if env.get("FREIGHT_DOWNLOAD_DIR"):
        return str(Path(env["FREIGHT_DOWNLOAD_DIR"]).expanduser())
    if env.get("FREIGHT_HOME"):
        return str(Path(env["FREIGHT_HOME"]).expanduser().resolve() / "downloads")
    import platformdirs

    return platformdirs.user_downloads_dir()


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    help: str = ""


_MIB = 1024 * 1024

#: Every user-changeable setting, its type, default and bounds. The API's get_settings and
#: set_settings speak exactly these names (docs/PROTOCOL.md).
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting("download_dir", str, "", help="default folder; empty: the user's Downloads"),
        Setting("port", int, DEFAULT_PORT, 0, 65535, help="API port on 127.0.0.1; 0: any"),
        Setting("max_active", int, 3, 1, 64, help="downloads running at once"),
        # A file known or found to be at most small_size runs beside the max_active ones, up
        # to max_small at once (daemon/slots.py, engine/quick.py); 0: no such lane. 32, the
        # per-host cap: each holds one connection for a few round trips, and a host that
        # pushes back lowers its own cap (limits.HostCaps); S4 in bench/RESULTS.md.
        Setting("max_small", int, 32, 0, 256, help="small downloads running beside those"),
        Setting("small_size", int, 1 * _MIB, 0, None, help="largest size of a small download"),
        Setting("connections", int, 16, 1, 64, help="connections a download starts with"),
        Setting("max_connections", int, 32, 1, 64, help="adaptive growth stops here"),
        Setting("max_host_connections", int, 32, 1, 256, help="connections to one host"),
        Setting("global_limit", int, None, 1, None, nullable=True, help="bytes/s, null: none"),
        Setting("min_split_size", int, 1 * _MIB, 64 * 1024, None, help="smallest range split"),
        Setting("read_size", int, 256 * 1024, 4096, 16 * _MIB, help="bytes per socket read"),
        Setting("checkpoint_interval", float, 1.0, 0.05, 60.0, help="seconds between saves"),
        Setting("stall_timeout", float, 20.0, 0.2, 600.0, help="seconds without a byte"),
        Setting("connect_timeout", float, 15.0, 0.2, 600.0),
        Setting("max_tries", int, 8, 1, 1000, help="failures in a row before giving up"),
        Setting("retry_base", float, 0.5, 0.0, 60.0, help="first backoff in seconds"),
        Setting("retry_max", float, 60.0, 0.0, 3600.0, help="longest backoff in seconds"),
        Setting("max_redirects", int, 10, 0, 50),
        Setting("max_size", int, None, 0, None, nullable=True,
                help="refuse larger files (decoded bytes); null: no limit"),
        Setting("max_expansion", int, 100, 0, None,
                help="a compressed body past 64 MiB may expand this many times; 0: no bound"),
        Setting("lean_reader", bool, True, help="read range bodies without httpx (faster)"),
        Setting("allowed_origins", list, [], help="extra extension origins for the API"),
        # The capture rules every browser's extension obeys, live (freight/capture.py).
        Setting("capture", bool, True, help="the extension captures browser downloads"),
        Setting("capture_min_size", int, capture.DEFAULT_MIN_SIZE, 0, capture.MAX_MIN_SIZE,
                help="bytes; a smaller download of known size stays in the browser; 0: none"),
        Setting("capture_always_types", list, [],
                help="extensions or MIME globs captured whatever their size: iso video/*"),
        Setting("capture_never_types", list, [], help="extensions or MIME globs never captured"),
        Setting("capture_never_sites", list, [],
                help="hosts (and their subdomains) or URL globs never captured"),
        Setting("notify", bool, True, help="notify when a download completes or fails"),
        Setting("schedule_limits", list, [], help="speed by time of day: 09:00-18:00=1M"),
        Setting("schedule_queue", list, [], help="when the queue runs: 01:00-07:00; []: always"),
        Setting("on_complete", list, [], help="argv run when a download completes; []: none"),
        Setting("on_complete_timeout", float, 300.0, 1.0, 86400.0, help="seconds, then killed"),
        Setting("webhook", str, "", help="http(s) URL POSTed JSON for each completion; \"\": none"),
    ]
}


def is_unicode(text: str) -> bool:
    """False if ``text`` holds a lone surrogate (U+D800-U+DFFF): JSON's ``\\ud800`` can carry
    one, but no UTF-8 file name, database row or HTTP header can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


DOWNLOAD_DIR_RULE = (
    "an absolute path of valid Unicode without NUL, naming a folder that exists or can be "
    "made: nothing on the way to it may be a file"
)


def _check_download_dir(value: str) -> str:
    """Empty (the user's Downloads) or a folder that an ``add`` can use or create: checked here,
    before it is saved, rather than failing every later ``add``. Write permission is not
    checked (a disk may be mounted later; ``freight doctor`` reports it)."""
    if value == "":
        return value
    path = Path(value)
    ok = (len(value) <= 4096 and is_unicode(value) and "\x00" not in value
          and path.is_absolute())
    if ok:
        probe = path
        while not os.path.lexists(probe) and probe != probe.parent:
            probe = probe.parent
        ok = probe.is_dir()
    if not ok:
        raise InputError(f"setting 'download_dir' must be {DOWNLOAD_DIR_RULE}",
                         setting="download_dir")
    return value


def validate_setting(name: str, value: Any) -> Any:
    """Return the value checked and normalised, or raise InputError naming what is wrong."""
    spec = SETTINGS.get(name)
    if spec is None:
        raise InputError(f"unknown setting {name!r}", setting=name)
    if value is None:
        if spec.nullable:
            return None
        raise InputError(f"setting {name!r} cannot be null", setting=name)
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if spec.type is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f"setting {name!r} must be a list of strings", setting=name)
        if not all(is_unicode(v) for v in value):
            raise InputError(f"setting {name!r} must be a list of valid Unicode strings",
                             setting=name)
        check = capture.CHECKS.get(name) or timetable.CHECKS.get(name)
        return check(name, list(value)) if check else list(value)
    if not isinstance(value, spec.type) or (spec.type is not bool and isinstance(value, bool)):
        raise InputError(
            f"setting {name!r} must be {spec.type.__name__}, not {type(value).__name__}",
            setting=name,
        )
    if name == "download_dir":
        return _check_download_dir(cast(str, value))
    if isinstance(value, str) and not is_unicode(value):
        raise InputError(f"setting {name!r} must be valid Unicode", setting=name)
    number = cast(float, value)  # an int or a float here: only numeric settings have bounds
    if spec.minimum is not None and number < spec.minimum:
        raise InputError(f"setting {name!r} must be >= {spec.minimum}", setting=name)
    if spec.maximum is not None and number > spec.maximum:
        raise InputError(f"setting {name!r} must be <= {spec.maximum}", setting=name)
    return value


_WORDS = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}


def setting_from_text(name: str, text: str) -> Any:
    """A value as a user types it after `freight settings NAME`: JSON (null, 5, true,
    [..]); for a switch also on/off and yes/no; for a list also words split on commas and
    spaces; for a text setting the text as it is. validate_setting checks the result."""
    spec = SETTINGS.get(name)
    if spec is None:
        raise InputError(f"unknown setting {name!r}", setting=name)
    if spec.type is str:
        return text
    if spec.type is bool and text.strip().lower() in _WORDS:
        return _WORDS[text.strip().lower()]
    try:
        return json.loads(text)
    except ValueError:
        pass
    if spec.type is list and name != "on_complete":  # an argv is JSON, never split words
        return capture.split_list(text)
    if spec.type is bool:
        raise InputError(f"setting {name!r} must be bool: on or off, not {text[:40]!r}",
                         setting=name)
    return text  # validate_setting names the type it wants


def defaults() -> dict[str, Any]:
    return {name: spec.default for name, spec in SETTINGS.items()}


@dataclass(frozen=True)
class EngineSettings:
    """The settings one transfer reads, fixed when it starts."""

    connections: int = 16
    max_connections: int = 32
    adaptive: bool = True
    min_split_size: int = 1 * _MIB
    read_size: int = 256 * 1024
    checkpoint_interval: float = 1.0
    stall_timeout: float = 20.0
    connect_timeout: float = 15.0
    max_tries: int = 8
    retry_base: float = 0.5
    retry_max: float = 60.0
    max_redirects: int = 10
    max_size: int | None = None
    max_expansion: int = 100  # decoding.DEFAULT_MAX_EXPANSION
    lean_reader: bool = True  # range bodies through engine/http/lean.py, not httpx (ARCHITECTURE)

    @classmethod
    def from_settings(
        cls, values: dict[str, Any], connections: int | None = None
    ) -> EngineSettings:
        fields = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        if connections is not None:
            fields["connections"] = connections
            fields["adaptive"] = False
        return cls(**fields)
