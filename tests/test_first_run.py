"""A first run with no surprises (issue 12 items 13-18, 20): where the daemon listens on
development keys, what it says at start, where its pid file goes, and its plugin cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from daemon import ACCESS_KEY, SECRET_KEY, TWISTD, Daemon, free_port

from vaultaire.announce import endpoint_url, serving_line
from vaultaire.bootstrap import DEVELOPMENT_LISTEN
from vaultaire.config import Settings

pytestmark = pytest.mark.timeout(120)

ENV_KEYS = {"VAULTAIRE_ACCESS_KEY": ACCESS_KEY, "VAULTAIRE_SECRET_KEY": SECRET_KEY}


# -- where S3 is served when no listen address is given (decided before any port is bound)


def chosen_listen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str, env: dict[str, str] | None = None
) -> Any:
    """The settings `twistd vaultaire ARGS` would serve with (the service is built, not started)."""
    from vaultaire import tap

    for name in ("VAULTAIRE_ACCESS_KEY", "VAULTAIRE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    options = tap.Options()
    options.parseOptions(
        ["--data", str(tmp_path / "data"), "--workers", "1", "--ops", "tcp:0:interface=127.0.0.1", *args]
    )
    return tap.makeService(options).settings


def test_development_keys_listen_on_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = chosen_listen(tmp_path, monkeypatch)
    assert settings.listen == DEVELOPMENT_LISTEN == "tcp:8080:interface=127.0.0.1"
    assert settings.development_loopback
    # Keys made at an earlier start are still development keys.
    (tmp_path / "data" / "dev-credentials.json").write_text('{"access_key": "VTX", "secret_key": "y"}')
    assert chosen_listen(tmp_path, monkeypatch).listen == DEVELOPMENT_LISTEN


def test_configured_keys_listen_where_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = chosen_listen(tmp_path, monkeypatch, env=ENV_KEYS)
    assert (settings.listen, settings.development_loopback) == ("tcp:8080", False)
    explicit = chosen_listen(tmp_path, monkeypatch, "--listen", "tcp:8081")
    assert (explicit.listen, explicit.development_loopback) == ("tcp:8081", False)
    config = tmp_path / "v.toml"
    config.write_text('[server]\nlisten = "tcp:8082"\n')
    from_file = chosen_listen(tmp_path, monkeypatch, "--config", str(config))
    assert (from_file.listen, from_file.development_loopback) == ("tcp:8082", False)


def test_keys_made_with_the_admin_tool_are_configured_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    subprocess.run(
        [str(Path(sys.executable).parent / "vaultaire-admin"), "--data", str(data), "tenant", "create", "acme"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [str(Path(sys.executable).parent / "vaultaire-admin"), "--data", str(data), "key", "create", "acme"],
        check=True,
        capture_output=True,
    )
    assert chosen_listen(tmp_path, monkeypatch).listen == "tcp:8080"


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("tcp:8080:interface=127.0.0.1", "http://127.0.0.1:8080"),
        ("tcp:8080", "http://127.0.0.1:8080 (all interfaces)"),
        ("tcp:port=9000:interface=10.1.2.3", "http://10.1.2.3:9000"),
        ("ssl:8443:privateKey=key.pem:certKey=cert.pem:interface=\\:\\:1", "https://[::1]:8443"),
        ("systemd:domain=INET:index=0", "systemd:domain=INET:index=0"),
    ],
)
def test_endpoints_are_shown_as_urls(endpoint: str, url: str) -> None:
    assert endpoint_url(endpoint) == url


def test_serving_line_says_why_loopback() -> None:
    line = serving_line(Settings(listen=DEVELOPMENT_LISTEN, development_loopback=True), "/d")
    assert "serving S3 on http://127.0.0.1:8080 (loopback only" in line and "development keys" in line
    assert "ops on http://127.0.0.1:9100" in line
    assert "loopback only" not in serving_line(Settings(), "/d")


# -- what a real daemon says, first start and restart


def test_start_line_and_development_keys_on_every_start(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "dev", access_key=None, secret_key=None, workers=1).start()
    try:
        creds = d.data_dir / "dev-credentials.json"
        # The line follows the first health probe, so /health may answer before it is written.
        line = f"serving S3 on http://127.0.0.1:{d.port},"
        deadline = time.monotonic() + 30
        while line not in d.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert line in d.log_text()
        d.restart()
        second = d.log_text().split("==== start 2")[1]
        assert "export AWS_ACCESS_KEY_ID" not in second
        assert f"development keys in use: {creds}" in second
    finally:
        d.stop()


def test_configured_keys_no_development_reminder(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "conf", workers=1).start()
    try:
        d.restart()
        assert "development keys" not in d.log_text()
    finally:
        d.stop()


# -- the pid file


class PidDaemon(Daemon):
    """A daemon started with twistd's own pid file default (no --pidfile= on the command line)."""

    def command(self) -> list[str]:
        return [part for part in super().command() if part != "--pidfile="]


def test_foreground_daemon_writes_no_pid_file(tmp_path: Path) -> None:
    d = PidDaemon(tmp_path / "fg", workers=1).start()
    try:
        assert not (d.base / "twistd.pid").exists()
        assert not (d.data_dir / "twistd.pid").exists()
    finally:
        d.stop()


def test_background_daemon_keeps_its_pid_file_in_the_data_directory(tmp_path: Path) -> None:
    data, ops = tmp_path / "data", free_port()
    env = {**os.environ, **ENV_KEYS}
    args = ["--listen", f"tcp:{free_port()}:interface=127.0.0.1", "--ops", f"tcp:{ops}:interface=127.0.0.1"]
    args += ["--console", "tcp:0:interface=127.0.0.1"]  # not the default 9001, which another daemon may hold
    command = [TWISTD, "--logfile", str(tmp_path / "log"), "vaultaire", "--data", str(data), "--workers", "1", *args]
    # twistd forks: the process started here exits once the daemon is on its way.
    subprocess.run(command, cwd=str(tmp_path), env=env, check=True, timeout=60)
    pid_file, stray = data / "twistd.pid", tmp_path / "twistd.pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() or stray.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    found = pid_file if pid_file.exists() else stray
    pid = int(found.read_text())  # ours to stop, wherever twistd put it
    try:
        assert found == pid_file and not stray.exists()
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ops}/health", timeout=2) as r:
                    if json.loads(r.read()).get("status") != "starting":
                        break
            except OSError:
                time.sleep(0.05)
        # A second daemon on the same data directory is refused by the pid file.
        again = subprocess.run(command, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode != 0 and "twistd" in again.stderr + again.stdout
    finally:
        os.kill(pid, signal.SIGTERM)
        while found.exists() and time.monotonic() < deadline + 30:
            time.sleep(0.05)
    assert not pid_file.exists()  # removed at a clean stop


def test_pid_file_is_ignored_by_git() -> None:
    root = Path(__file__).parent.parent
    assert "twistd.pid" in (root / ".gitignore").read_text().split()


# -- the plugin cache: written at install time, so a user who cannot write it is never told


PROBE = """
import sys
from twisted.python import filepath, log
def refuse(self, content, ext=b".new"):
    raise PermissionError(13, "Permission denied")  # as for the systemd unit's user
filepath.FilePath.setContent = refuse
said = []
def watch(event):
    if "plugin cache" in (event.get("format") or ""):
        said.append(event["format"] % event)
log.addObserver(watch)
import twisted.plugins
from twisted.plugin import IPlugin, getPlugins
names = [getattr(p, "tapname", "") for p in getPlugins(IPlugin, twisted.plugins)]
print("\\n".join(said))
sys.exit(0 if "probe" in names else 3)
"""


def test_plugin_cache_is_written_once_and_then_never_again(tmp_path: Path) -> None:
    plugins = tmp_path / "site" / "twisted" / "plugins"  # a plugin directory of its own, fresh
    plugins.mkdir(parents=True)
    (plugins / "probe_plugin.py").write_text(
        "from twisted.application.service import ServiceMaker\n"
        "probe = ServiceMaker('Probe', 'os', 'A probe.', 'probe')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}

    def probe() -> str:
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "Unable to write to plugin cache" in probe()  # what every start said before
    made = subprocess.run(
        [sys.executable, "-m", "vaultaire.plugin_cache"], env=env, capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    assert (plugins / "dropin.cache").exists()
    assert "Unable to write to plugin cache" not in probe()


def test_systemd_unit_writes_the_plugin_cache_as_root_before_start() -> None:
    unit = (Path(__file__).parent.parent / "etc" / "vaultaire.service").read_text()
    assert "ExecStartPre=+/opt/vaultaire/venv/bin/python -m vaultaire.plugin_cache" in unit


# -- the README's first lines and CI


ROOT = Path(__file__).parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.rst").read_text()
    block = text.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in block.splitlines()]


def test_readme_starts_with_two_commands_and_ci_runs_the_second() -> None:
    serve, test = readme_commands()
    assert serve.startswith("python3 -m venv .venv && .venv/bin/pip install . && ") and "twistd -n vaultaire" in serve
    # The editable install needs no --config-settings: pyproject.toml and package_dir make twistd find the plugin.
    assert test == "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == test and all(line.startswith(("set ", "cd ")) for line in ci[:-1])
    assert "build-backend" in (ROOT / "pyproject.toml").read_text()


def test_readme_says_how_to_get_the_aws_cli_and_names_the_dev_script() -> None:
    text = (ROOT / "README.rst").read_text()
    quickstart = text.split("Quickstart with the aws cli", 1)[1].split("Quickstart with boto3", 1)[0]
    assert "pip install awscli" in quickstart
    assert "bin/vaultaire-dev" in text.split(".. contents::", 1)[0]
    assert (ROOT / "bin" / "vaultaire-dev").stat().st_mode & 0o111


def test_editable_install_finds_the_plugin() -> None:
    """The test venv is the README's editable install: twistd must list the plugin."""
    done = subprocess.run([TWISTD, "--help"], capture_output=True, text=True, timeout=60, cwd="/")
    assert "vaultaire" in done.stdout, done.stdout + done.stderr
