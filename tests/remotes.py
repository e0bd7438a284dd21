"""Real remotes for the rclone driver's tests: Azurite (Azure Blob) and OpenSSH's sshd (SFTP).

Each is installed when missing (Azurite from npm into the tests' cache, sshd
from Debian's ``openssh-server`` with apt-get, as CI does as root) and started
on a free 127.0.0.1 port with its data in a directory of the test's; ``stop``
and ``start`` again keep the port, the data and, for sshd, the host key, so
rclone reconnects to the same server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from daemon import free_port
from npm import npm_modules

from tests.commands import apt_program

TESTS = Path(__file__).parent
# Azurite's well-known development account (documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{what} did not listen within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


class Server:
    """A child process on one loopback port, stoppable and restartable on that port."""

    name = "server"

    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.base / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            # A group of its own: stopping it stops what it forked too (sshd's per-connection children).
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        wait_listening(self.port, self.proc, self.log_path, self.name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


class Azurite(Server):
    """Azurite's blob service (``azurite-blob``), the Azure Storage emulator, from npm."""

    name = "azurite"

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        modules = npm_modules(TESTS / "azurite_js", "azurite", "azurite")
        self.binary = str(modules / ".bin" / "azurite-blob")

    def command(self) -> list[str]:
        return [
            self.binary,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--location",
            str(self.base / "data"),
            "--skipApiVersionCheck",  # rclone's Azure SDK may be newer than the emulator
            "--loose",
            "--silent",
        ]

    def stop(self) -> None:
        # Azurite waits for its clients' idle connections to time out on a SIGTERM; it holds
        # nothing a test needs afterwards.
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def rclone_section(self, name: str) -> str:
        return (
            f"[{name}]\ntype = azureblob\naccount = {AZURITE_ACCOUNT}\nkey = {AZURITE_KEY}\n"
            f"endpoint = http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}\n"
        )


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc), children first found first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


class Sshd(Server):
    """``sshd -D`` on a loopback port: a generated host key, and one user key authorised for us."""

    name = "sshd"

    def __init__(self, base: Path) -> None:
        self.sshd = apt_program("sshd", "openssh-server")
        super().__init__(base)
        self.user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
        self.host_key = self.base / "host_ed25519"
        self.user_key = self.base / "user_ed25519"
        for key in (self.host_key, self.user_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (self.base / "authorized_keys").write_text(Path(f"{self.user_key}.pub").read_text())
        os.chmod(self.base / "authorized_keys", 0o600)
        self.config = self.base / "sshd_config"
        self.config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.base / 'authorized_keys'}\nPidFile {self.base / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
        )
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # its privilege separation directory
        kind, key = Path(f"{self.host_key}.pub").read_text().split()[:2]
        (self.base / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {kind} {key}\n")

    def command(self) -> list[str]:
        return [self.sshd, "-D", "-e", "-f", str(self.config)]

    def stop(self) -> None:
        """The listener and every session it forked (each in a session of its own, so not its group)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        sessions = descendants(self.proc.pid)
        super().stop()
        for pid in sessions:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def rclone_section(self, name: str) -> str:
        return (
            f"[{name}]\ntype = sftp\nhost = 127.0.0.1\nport = {self.port}\nuser = {self.user}\n"
            f"key_file = {self.user_key}\nknown_hosts_file = {self.base / 'known_hosts'}\n"
        )
