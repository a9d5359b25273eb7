"""Who holds a TCP port on this machine, and which port nearby is free.

When the daemon cannot listen because its port is taken, "address already in use" is no help
to a user; the program that holds it, and a port that is free, are. On Linux the kernel says
both: ``/proc/net/tcp`` and ``/proc/net/tcp6`` list every socket of this network namespace
with its state, its owner's uid and its inode (proc(5)), and ``/proc/PID/fd/*`` link to
``socket:[INODE]`` for the sockets a process holds. Another user's descriptors are readable
only by root: then the holder is known only by its uid ("a process of user www-data").
Elsewhere (macOS, Windows) nothing is named: the holder is "another program".
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
from dataclasses import dataclass
from pathlib import Path

#: /proc/net/tcp's state column: 0A is TCP_LISTEN (include/net/tcp_states.h).
_LISTEN = "0A"
PROC = Path("/proc")


@dataclass(frozen=True)
class Holder:
    """A process listening on a port; ``pid`` and ``command`` are None when it is not ours to
    see (another user's, without root)."""

    uid: int | None
    pid: int | None = None
    command: str | None = None

    @property
    def user(self) -> str | None:
        if self.uid is None:
            return None
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return f"uid {self.uid}"

    def describe(self) -> str:
        """'nginx (pid 123, user www-data)', 'a process of user www-data', 'another program'."""
        if self.pid is not None:
            who = f"{self.command or 'a process'} (pid {self.pid}"
            if self.uid is not None and self.uid != os.getuid():
                who += f", user {self.user}"
            return who + ")"
        if self.uid is not None and self.uid != os.getuid():
            return f"a process of user {self.user}"
        return "another program"


def _listening_inodes(port: int, proc: Path) -> list[tuple[int, int]]:
    """(inode, uid) of every socket listening on ``port``, IPv4 and IPv6."""
    found = []
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            try:
                local_port = int(fields[1].rpartition(":")[2], 16)
                if local_port == port:
                    found.append((int(fields[9]), int(fields[7])))
            except ValueError:
                continue
    return found


def _pid_of(inode: int, proc: Path) -> int | None:
    target = f"socket:[{inode}]"
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == target:
                        return int(entry.name)
        except OSError:  # another user's process (EACCES), or it just ended
            continue
    return None


def holder(port: int, proc: Path = PROC) -> Holder | None:
    """The process listening on ``port``, as far as this user can see it; None when no
    listener is visible (nothing listens, or this system has no /proc)."""
    for inode, uid in _listening_inodes(port, proc):
        pid = _pid_of(inode, proc) if inode else None
        command = None
        if pid is not None:
            with contextlib.suppress(OSError):
                command = (proc / str(pid) / "comm").read_text(encoding="utf-8",
                                                               errors="replace").strip()
        return Holder(uid, pid, command)
    return None


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether the daemon could listen on ``port`` now: a bind as its server makes it (with
    SO_REUSEADDR, so that a port left in TIME_WAIT counts as free, as it is for the daemon)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port_near(port: int, tries: int = 50) -> int:
    """The first free port after ``port`` (checked by a bind), or 0 ("any free port") when
    none of the next ``tries`` is free."""
    for candidate in range(port + 1, min(port + 1 + tries, 65536)):
        if candidate >= 1024 and is_free(candidate):
            return candidate
    return 0


def who_holds(port: int) -> str:
    """A phrase naming the holder of ``port``, for a message: 'python3 (pid 42)'."""
    found = holder(port)
    return found.describe() if found else "another program"
