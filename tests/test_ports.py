"""freight.ports: who holds a port, read from the kernel's own tables."""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path

from freight import ports


def test_a_listener_of_ours_is_named_by_command_and_pid() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        found = ports.holder(port)
        assert found is not None and found.pid == os.getpid()
        assert found.command == Path(f"/proc/{os.getpid()}/comm").read_text().strip()
        assert found.describe() == f"{found.command} (pid {os.getpid()})"
        assert not ports.is_free(port)
        free = ports.free_port_near(port)
        assert free > port and ports.is_free(free)
    assert ports.holder(port) is None  # closed: nobody listens


def test_another_users_listener_is_named_by_its_user_only(tmp_path: Path) -> None:
    # What a user sees of another user's process: the socket in /proc/net/tcp6 (with its uid
    # and inode), but no /proc/PID/fd to read. A /proc tree written here stands in for it.
    nobody = pwd.getpwnam("nobody").pw_uid
    (tmp_path / "net").mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt" \
             "   uid  timeout inode\n"
    (tmp_path / "net" / "tcp").write_text(header)
    (tmp_path / "net" / "tcp6").write_text(
        header + "   0: 00000000000000000000000000000000:1AA1 00000000000000000000000000000000"
        f":0000 0A 00000000:00000000 00:00000000 00000000 {nobody:5d}        0 987654 1\n")
    (tmp_path / "4242").mkdir()  # a process whose fds this user may not list
    found = ports.holder(0x1AA1, proc=tmp_path)
    assert found is not None and found.pid is None and found.uid == nobody
    assert found.describe() == "a process of user nobody"
    assert ports.holder(0x1AA2, proc=tmp_path) is None
