"""The benchmark tooling in bench/: the summary's arithmetic, run.py's dry run, its RSS monitor.

No benchmark runs here and nothing is timed: the summary's records are made up, in the
harness's JSON-lines format; the dry run starts no server.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPORT = Path(__file__).resolve().parent.parent / "bench" / "report.py"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", REPORT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


def run(rep: int, peer: str, bench: str, **result: Any) -> dict[str, Any]:
    return {"type": "run", "rep": rep, "peer": peer, "bench": bench, "result": result}


def peers(*names: str) -> list[dict[str, Any]]:
    return [{"type": "peer", "peer": n, "cmd": f"{n} --serve"} for n in names]


def verdicts(report: ModuleType, records: list[dict[str, Any]]) -> dict[str, tuple[str, str, str]]:
    res = report.Results(records)
    return {t.label: report.judge(res, t) for t in report.TARGETS}


def test_ratio_is_taken_within_each_repetition_then_the_median(report: ModuleType) -> None:
    records = peers("vaultaire", "seaweedfs") + [
        run(0, "vaultaire", "small-get", req_per_s=3000.0, server_cpu_us_per_req=120.0),
        run(0, "seaweedfs", "small-get", req_per_s=1000.0),
        run(1, "vaultaire", "small-get", req_per_s=1000.0, server_cpu_us_per_req=180.0),
        run(1, "seaweedfs", "small-get", req_per_s=2000.0),
        run(2, "vaultaire", "small-get", req_per_s=2000.0, server_cpu_us_per_req=140.0),
        run(2, "seaweedfs", "small-get", req_per_s=2500.0),
    ]
    res = report.Results(records)
    get = report.metric("4 KiB GET req/s")
    # per repetition 3.0, 0.5 and 0.8: median 0.8 (the ratio of the medians would be 1.0)
    assert res.ratio("seaweedfs", get) == pytest.approx(0.8)
    assert res.value("vaultaire", get) == res.value("seaweedfs", get) == 2000.0
    v = verdicts(report, records)
    assert v["4 KiB GET req/s ≥ 1.5 × SeaweedFS"] == ("0.80 ×", "MISSED", "-47%")
    assert v["4 KiB GET server CPU ≤ 200 µs/request"] == ("140", "met", "+30%")


def test_peak_rss_is_the_largest_process_over_every_benchmark(report: ModuleType) -> None:
    records = peers("vaultaire") + [
        run(0, "vaultaire", "small-get", rss_peak_mib=200.0, rss_peak_proc_mib=90.0),
        run(0, "vaultaire", "large-get", s1_rss_peak_mib=260.0, rss_peak_proc_mib=149.9),
        run(1, "vaultaire", "large-put", rss_peak_mib=210.0, rss_peak_proc_mib=120.0),
    ]
    res = report.Results(records)
    assert res.value("vaultaire", report.metric("peak RSS of the whole server, MiB (max)")) == 260.0
    label = "peak RSS < 150 MiB per process under every benchmark"
    assert verdicts(report, records)[label][:2] == ("149.9", "met")
    records.append(run(1, "vaultaire", "list", rss_peak_proc_mib=150.0, full_server_cpu_s=0.12))
    v = verdicts(report, records)
    assert v[label][:2] == ("150.0", "MISSED")  # below 150 MiB means strictly below
    assert v["ListObjectsV2 10,000 keys in 10 pages: server CPU ≤ 0.1 s"] == ("0.12", "MISSED", "-20%")


def test_missing_peers_and_failed_runs_are_said_so(report: ModuleType) -> None:
    records = peers("vaultaire", "seaweedfs", "nginx") + [
        run(0, "vaultaire", "large-get", s1_MB_per_s=1800.0),
        run(0, "nginx", "plain-large-get", s1_MB_per_s=2000.0),
        run(0, "vaultaire", "small-put", failed="wrk failed rc=1"),
        run(0, "seaweedfs", "small-put", req_per_s=3000.0),
        run(0, "vaultaire", "large-put", MB_per_s=420.0),
    ]
    v = verdicts(report, records)
    assert v["1 GiB GET 1 stream ≥ 90% of nginx MB/s"] == ("0.90 ×", "met", "+0%")
    assert v["4 KiB PUT req/s ≥ 1.2 × SeaweedFS"][1] == "not measured"
    assert v["1 GiB PUT ≥ 90% of the disk's write+fsync loop"][1:] == ("not measured", "peer disk did not run")
    text = report.summarize(records)
    put_row = next(line for line in text.splitlines() if line.startswith("| 4 KiB PUT req/s"))
    assert put_row.split(" | ")[1:4] == ["failed", "3,000", "n/a"]
    assert "vaultaire small-put rep 1: run failed: wrk failed rc=1" in text
    without_nginx = [r for r in records if r.get("peer") != "nginx"]
    assert verdicts(report, without_nginx)["1 GiB GET 1 stream ≥ 90% of nginx MB/s"][1] == "not measured"


def test_the_1_gib_put_is_judged_against_the_disks_own_loop_in_the_same_repetition(report: ModuleType) -> None:
    records = peers("vaultaire", "seaweedfs", "nginx", "disk") + [
        run(0, "vaultaire", "large-put", MB_per_s=270.0),
        run(0, "disk", "disk-large-put", MB_per_s=300.0),
        run(1, "vaultaire", "large-put", MB_per_s=150.0),
        run(1, "disk", "disk-large-put", MB_per_s=200.0),
        run(0, "vaultaire", "large-get", s1_MB_per_s=1800.0, s4_MB_per_s=1700.0),
        run(0, "nginx", "plain-large-get", s1_MB_per_s=2000.0, s4_MB_per_s=2000.0),
        run(0, "vaultaire", "small-get", p99_ms=12.0),
        run(0, "seaweedfs", "small-get", p99_ms=10.0),
        run(0, "vaultaire", "small-put", p99_ms=20.0),
        run(0, "seaweedfs", "small-put", p99_ms=25.0),
    ]
    v = verdicts(report, records)
    # 0.90 and 0.75 in the two repetitions: the median of the ratios, 0.825
    assert v["1 GiB PUT ≥ 90% of the disk's write+fsync loop"] == ("0.82 ×", "MISSED", "-8%")
    assert v["1 GiB GET 1 stream ≥ 90% of nginx MB/s"][1] == "met"
    assert v["1 GiB GET 4 streams ≥ 90% of nginx MB/s"] == ("0.85 ×", "MISSED", "-6%")
    assert v["4 KiB GET p99 no worse than SeaweedFS"][:2] == ("1.20 ×", "MISSED")
    assert v["4 KiB PUT p99 no worse than SeaweedFS"][:2] == ("0.80 ×", "met")
    put_row = next(line for line in report.summarize(records).splitlines() if line.startswith("| 1 GiB PUT MB/s"))
    assert put_row.split(" | ")[1:5] == ["210", "n/a", "n/a", "250"]  # the disk's column holds its loop


BENCH = REPORT.parent
TWISTD = Path(sys.executable).parent / "twistd"


def test_dry_run_names_the_servers_and_passes_workers_on_only_when_supported(tmp_path: Path) -> None:
    empty_venv = tmp_path / "venv"  # no weed, rclone or moto_server: those peers are skipped
    (empty_venv / "bin").mkdir(parents=True)
    p = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--dry-run", "--venv", str(empty_venv), "--twistd", str(TWISTD)]
        + ["--peers", "vaultaire,seaweedfs,rclone,moto", "--workers", "2", "--daemon-arg=--region=eu-west-1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = p.stdout.splitlines()
    assert "servers: vaultaire" in out, p.stdout + p.stderr
    for peer in ("seaweedfs", "rclone", "moto"):
        assert any(line.startswith(f"not run: {peer}: no ") for line in out), p.stdout
    vaultaire = next(line for line in out if line.startswith("vaultaire: "))
    assert vaultaire.endswith("--region=eu-west-1")
    help_text = subprocess.run([str(TWISTD), "vaultaire", "--help"], capture_output=True, text=True).stdout
    if "--workers" in help_text:
        assert "--workers=2 --region=eu-west-1" in vaultaire
    else:
        assert "--workers" not in vaultaire
        assert "has no --workers flag" in p.stderr
    problems = [line for line in out if line.startswith("problem: ")]
    assert p.returncode == (1 if problems else 0)


def test_the_monitor_records_the_largest_single_process(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH / "harness"))
    sys.path.insert(0, str(BENCH))
    try:
        import run as bench_run
        import s3bench
    finally:
        sys.path[:2] = []
    original_monitor, original_run_once = s3bench.ProcMonitor, s3bench.run_once
    # a child holding 256 MiB (more than this test process), then waiting to be killed
    code = "import time; b = bytearray(256 << 20); b[::4096] = b'x' * (64 << 10); print(1, flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline()

        def measure(name: str, ctx: Any, o: Any, prep: Any) -> dict[str, Any]:
            mon = s3bench.ProcMonitor([os.getpid()]).start()  # this process and the child
            time.sleep(0.1)
            return mon.stop()

        s3bench.run_once = measure  # what the harness's run_once does, briefly
        bench_run.patch_monitor(s3bench)
        result = s3bench.run_once("small-get", None, None, None)
    finally:
        s3bench.ProcMonitor, s3bench.run_once = original_monitor, original_run_once
        child.kill()
        child.wait()
    assert result["nprocs"] >= 2
    assert 256 < result["rss_peak_proc_mib"] < result["rss_peak_mib"]


def test_the_disk_reference_writes_fsyncs_and_removes_its_file(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH / "harness"))
    try:
        import s3bench
    finally:
        sys.path[:1] = []
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 * s3bench.MIB))
    args = s3bench.build_parser().parse_args(
        ["disk-large-put", "--size-mib", "3", "--src-file", str(src), "--dir", str(tmp_path / "disk")]
    )
    o = s3bench.Opts(args, "disk-large-put")
    ctx = s3bench.Ctx(argparse.Namespace(workdir=str(tmp_path), quiet=True))
    prep = s3bench.prepare("disk-large-put", ctx, o)
    result = s3bench.run_once("disk-large-put", ctx, o, prep)
    assert result["errors"] == 0 and result["MB_per_s"] > 0 and result["server_cpu_s_per_GB"] >= 0
    assert result["wall_s"] <= result["process_wall_s"]
    assert os.listdir(tmp_path / "disk") == []  # each repetition writes a new file


def test_the_baseline_runs_the_source_of_its_git_ref(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH / "harness"))
    sys.path.insert(0, str(BENCH))
    try:
        import run as bench_run
    finally:
        sys.path[:2] = []
    wrapper = bench_run.baseline_twistd("HEAD", str(TWISTD), str(tmp_path))
    src = tmp_path / "baseline-src"
    assert (src / "vaultaire" / "__init__.py").exists() and (src / "twisted" / "plugins").is_dir()
    text = Path(wrapper).read_text()
    assert f"PYTHONPATH={src}" in text and "twistd import run" in text
    p = subprocess.run([wrapper, "vaultaire", "--help"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "--data" in p.stdout, p.stderr[-2000:]
