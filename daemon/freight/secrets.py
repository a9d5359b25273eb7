"""The API token and the key that seals secret headers, kept in the OS keyring.

Choosing a keyring backend is done here, not by ``keyring``'s auto-selection, because that
selection is unsafe for a daemon: with no D-Bus it picks the ``fail`` backend, with
``keyrings.alt`` installed it silently picks a plaintext file, and some backends prompt for a
master password on stdin (see docs/SECURITY.md). The rule:

1. ``PYTHON_KEYRING_BACKEND`` set → that backend, if a probe write/read/delete works;
2. else the first trusted OS backend (Secret Service, libsecret, KWallet, macOS, Windows) whose
   probe works;
3. else files in ``paths.secrets_dir`` (folder 0700, files 0600), with a logged warning;
   ``backend_info()`` reports it so that ``freight status`` and ``doctor`` can say so.

Keyring calls block (~20 ms each, ~100 ms to choose): values are cached per secrets folder,
and the daemon calls these functions off its event loop.

Two processes (the daemon and the native host) may ask for the token at the same moment; a
lock file (``flock``) makes sure that only one of them creates it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import logging
import os
import secrets as _random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freight.config import Paths
from freight.errors import StoreError

log = logging.getLogger(__name__)

SERVICE = "freight"
TOKEN_USER = "api-token"
KEY_USER = "sealing-key"

#: Backends trusted to keep a secret out of plain files, in the order they are tried.
TRUSTED_BACKENDS = (
    "keyring.backends.SecretService.Keyring",
    "keyring.backends.libsecret.Keyring",
    "keyring.backends.kwallet.DBusKeyring",
    "keyring.backends.macOS.Keyring",
    "keyring.backends.Windows.WinVaultKeyring",
)
FILE_BACKEND = "file"

#: Sealed blobs start with this version byte, then a 96-bit nonce (NIST SP 800-38D §8.2),
#: then the ciphertext with its 128-bit tag.
_SEAL_VERSION = b"\x01"
_NONCE_SIZE = 12


class Sealer:
    """AES-256-GCM over bytes; a fresh random nonce for every seal."""

    def __init__(self, key: bytes) -> None:
        # cryptography is imported here, not with the module: a CLI command reads the token
        # and never seals (its import is ~15-50 ms of every command's start).
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise ValueError("a sealing key is 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plain: bytes) -> bytes:
        nonce = os.urandom(_NONCE_SIZE)
        return _SEAL_VERSION + nonce + self._aead.encrypt(nonce, plain, _SEAL_VERSION)

    def open(self, sealed: bytes) -> bytes:
        if len(sealed) < 1 + _NONCE_SIZE + 16 or sealed[:1] != _SEAL_VERSION:
            raise StoreError("sealed headers are damaged or of an unknown version")
        from cryptography.exceptions import InvalidTag

        nonce = sealed[1 : 1 + _NONCE_SIZE]
        try:
            return self._aead.decrypt(nonce, sealed[1 + _NONCE_SIZE :], _SEAL_VERSION)
        except InvalidTag:
            raise StoreError(
                "cannot decrypt stored headers: the key changed or the data is damaged"
            ) from None


# -- backends --------------------------------------------------------------------------------


@dataclass
class _Choice:
    name: str
    fallback: bool
    backend: Any = None  # a keyring backend instance, None for files


def _load(qualified: str) -> Any:
    import importlib

    module, _, cls = qualified.rpartition(".")
    return getattr(importlib.import_module(module), cls)()


def _probe(backend: Any) -> bool:
    """Write, read back and delete a random value: the only proof that a backend works."""
    user = "probe-" + _random.token_hex(8)
    value = _random.token_hex(16)
    try:
        backend.set_password(SERVICE, user, value)
        ok = backend.get_password(SERVICE, user) == value
        backend.delete_password(SERVICE, user)
        return bool(ok)
    except Exception as exc:  # every backend raises its own types (and EOFError on prompts)
        log.debug("keyring backend %s failed its probe: %s", type(backend).__name__, exc)
        return False


def _choose(paths: Paths) -> _Choice:
    forced = os.environ.get("PYTHON_KEYRING_BACKEND")
    candidates = [forced] if forced else list(TRUSTED_BACKENDS)
    for qualified in candidates:
        try:
            backend = _load(qualified)
            # `priority` raises when the backend cannot work here (no D-Bus, wrong OS).
            if not forced:
                _ = backend.priority
        except Exception as exc:
            log.debug("keyring backend %s unavailable: %s", qualified, exc)
            continue
        if _probe(backend):
            return _Choice(qualified, False, backend)
    log.warning(
        "no working OS keyring%s; keeping Freight's secrets in files under %s (mode 0600)",
        f" ({forced} failed)" if forced else "",
        paths.secrets_dir,
    )
    return _Choice(FILE_BACKEND, True, None)


# -- storage ---------------------------------------------------------------------------------

_lock = threading.Lock()
_choices: dict[Path, _Choice] = {}
_cache: dict[tuple[Path, str], str] = {}


def _choice(paths: Paths) -> _Choice:
    with _lock:
        choice = _choices.get(paths.secrets_dir)
        if choice is None:
            choice = _choices[paths.secrets_dir] = _choose(paths)
        return choice


def _secrets_dir(paths: Paths) -> Path:
    folder = paths.secrets_dir
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder


@contextlib.contextmanager
def _creation_lock(paths: Paths) -> Iterator[None]:
    fd = os.open(_secrets_dir(paths) / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _file_read(paths: Paths, user: str) -> str | None:
    try:
        return (paths.secrets_dir / user).read_text().strip() or None
    except FileNotFoundError:
        return None


def _file_write(paths: Paths, user: str, value: str) -> None:
    target = _secrets_dir(paths) / user
    tmp = target.with_name(f".{user}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, value.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def _read(paths: Paths, user: str) -> str | None:
    choice = _choice(paths)
    if choice.backend is not None:
        value = choice.backend.get_password(SERVICE, user)
        if value:
            return str(value)
    # A file written while no keyring worked stays valid after a keyring appears.
    return _file_read(paths, user)


def _write(paths: Paths, user: str, value: str) -> None:
    choice = _choice(paths)
    if choice.backend is not None:
        choice.backend.set_password(SERVICE, user, value)
        with contextlib.suppress(FileNotFoundError):
            (paths.secrets_dir / user).unlink()
    else:
        _file_write(paths, user, value)


def _get_or_create(paths: Paths, user: str, make: Any) -> str:
    key = (paths.secrets_dir, user)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    value = _read(paths, user)
    if value is None:
        with _creation_lock(paths):
            value = _read(paths, user)  # another process may have won the race
            if value is None:
                value = make()
                _write(paths, user, value)
    _cache[key] = value
    return value


def _new_token() -> str:
    return _random.token_urlsafe(32)


def _new_key() -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


# -- the public surface ----------------------------------------------------------------------


def get_token(paths: Paths, *, daemon_backend: str | None = None) -> str:
    """The API token; created (and stored) on first use. ``daemon_backend``: where the
    running daemon keeps it (its daemon.json says): when that is the files, the token is
    read from its file without choosing a keyring backend (loading and probing them costs a
    client ~0.1 s, and the daemon's choice is the one that counts)."""
    if daemon_backend == FILE_BACKEND:
        key = (paths.secrets_dir, TOKEN_USER)
        value = _cache.get(key) or _file_read(paths, TOKEN_USER)
        if value is not None:
            _cache[key] = value
            return value
    return _get_or_create(paths, TOKEN_USER, _new_token)


def reload_token(paths: Paths) -> str:
    """Read the token again from its store (another process may have rotated it)."""
    _cache.pop((paths.secrets_dir, TOKEN_USER), None)
    return get_token(paths)


def rotate_token(paths: Paths) -> str:
    """Replace the token; clients holding the old one are refused from now on."""
    with _creation_lock(paths):
        value = _new_token()
        _write(paths, TOKEN_USER, value)
    _cache[(paths.secrets_dir, TOKEN_USER)] = value
    return value


def sealer(paths: Paths) -> Sealer:
    """The Sealer for secret headers, with its key from the keyring (created on first use)."""
    key = base64.b64decode(_get_or_create(paths, KEY_USER, _new_key))
    return Sealer(key)


def backend_info(paths: Paths) -> dict[str, Any]:
    """``{"backend": name, "fallback": bool}``: where the secrets are kept."""
    choice = _choice(paths)
    info: dict[str, Any] = {"backend": choice.name, "fallback": choice.fallback}
    if choice.fallback:
        info["path"] = str(paths.secrets_dir)
    return info


def forget_cache() -> None:
    """Drop every cached choice and value (tests that change the environment)."""
    with _lock:
        _choices.clear()
        _cache.clear()
