"""The summary of a benchmark run: one Markdown table of every server's numbers with
Vaultaire's ratio to each peer, and the performance targets marked met or missed.

Input: the JSON-lines records the harness writes (``bench/harness/run_peers.py``,
``--out-json``): ``peer`` records name the servers, ``run`` records hold one measurement
(``rep``, ``peer``, ``bench``, ``result``). Pure functions, no I/O: ``bench/run.py`` prints
the result and ``tests/test_bench_report.py`` checks it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

REF = "vaultaire"
# nginx answers the GET loads on plain URLs, and the disk's write+fsync loop stands in for the
# 1 GiB PUT: the same benchmark, a different name
PLAIN = {"plain-small-get": "small-get", "plain-large-get": "large-get", "disk-large-put": "large-put"}
# per-measurement memory keys: the whole process tree, and the largest single process
TREE_RSS_KEYS = ("rss_peak_mib", "s1_rss_peak_mib", "s4_rss_peak_mib")
PROC_RSS_KEY = "rss_peak_proc_mib"
ANY_BENCH = "*"


@dataclass(frozen=True)
class Metric:
    label: str
    bench: str  # ANY_BENCH: the largest value over every benchmark
    key: str
    higher_is_better: bool
    decimals: int = 0


METRICS = [
    Metric("4 KiB GET req/s", "small-get", "req_per_s", True),
    Metric("4 KiB GET p50 ms", "small-get", "p50_ms", False, 2),
    Metric("4 KiB GET p99 ms", "small-get", "p99_ms", False, 2),
    Metric("4 KiB GET server CPU µs/request", "small-get", "server_cpu_us_per_req", False),
    Metric("4 KiB PUT req/s", "small-put", "req_per_s", True),
    Metric("4 KiB PUT p50 ms", "small-put", "p50_ms", False, 2),
    Metric("4 KiB PUT p99 ms", "small-put", "p99_ms", False, 2),
    Metric("4 KiB PUT server CPU µs/request", "small-put", "server_cpu_us_per_req", False),
    Metric("1 GiB GET MB/s, 1 stream", "large-get", "s1_MB_per_s", True),
    Metric("1 GiB GET MB/s, 4 streams", "large-get", "s4_MB_per_s", True),
    Metric("1 GiB GET server CPU s/GB, 1 stream", "large-get", "s1_server_cpu_s_per_GB", False, 2),
    Metric("1 GiB GET server CPU s/GB, 4 streams", "large-get", "s4_server_cpu_s_per_GB", False, 2),
    Metric("1 GiB PUT MB/s, 1 stream", "large-put", "MB_per_s", True),
    Metric("1 GiB PUT server CPU s/GB", "large-put", "server_cpu_s_per_GB", False, 2),
    Metric("ListObjectsV2 10,000 keys in 10 pages: ms", "list", "full_ms", False),
    Metric("ListObjectsV2 10,000 keys in 10 pages: server CPU s", "list", "full_server_cpu_s", False, 2),
    Metric("peak RSS of one server process, MiB (max)", ANY_BENCH, PROC_RSS_KEY, False, 1),
    Metric("peak RSS of the whole server, MiB (max)", ANY_BENCH, "tree", False, 1),
]


@dataclass(frozen=True)
class Target:
    label: str
    metric: str  # a Metric label
    peer: str | None  # compare with this peer's value (ratio), or None: an absolute bound
    bound: float
    at_least: bool  # True: value (or ratio) >= bound; False: value <= bound (or < for RSS)
    strict: bool = False


# The targets of issue #18 ("Small objects at the speed of the machine"), in one run.
TARGETS = [
    Target("4 KiB GET req/s ≥ 1.5 × SeaweedFS", "4 KiB GET req/s", "seaweedfs", 1.5, True),
    Target("4 KiB GET server CPU ≤ 200 µs/request", "4 KiB GET server CPU µs/request", None, 200, False),
    Target("4 KiB PUT req/s ≥ 1.2 × SeaweedFS", "4 KiB PUT req/s", "seaweedfs", 1.2, True),
    Target("4 KiB GET p99 no worse than SeaweedFS", "4 KiB GET p99 ms", "seaweedfs", 1.0, False),
    Target("4 KiB PUT p99 no worse than SeaweedFS", "4 KiB PUT p99 ms", "seaweedfs", 1.0, False),
    Target(
        "ListObjectsV2 10,000 keys in 10 pages: server CPU ≤ 0.1 s",
        "ListObjectsV2 10,000 keys in 10 pages: server CPU s",
        None,
        0.1,
        False,
    ),
    Target("1 GiB PUT ≥ 90% of the disk's write+fsync loop", "1 GiB PUT MB/s, 1 stream", "disk", 0.9, True),
    Target("1 GiB GET 1 stream ≥ 90% of nginx MB/s", "1 GiB GET MB/s, 1 stream", "nginx", 0.9, True),
    Target("1 GiB GET 4 streams ≥ 90% of nginx MB/s", "1 GiB GET MB/s, 4 streams", "nginx", 0.9, True),
    Target(
        "peak RSS < 150 MiB per process under every benchmark",
        "peak RSS of one server process, MiB (max)",
        None,
        150,
        False,
        strict=True,
    ),
]


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


class Results:
    """Measurements by (peer, bench, repetition), failed ones set apart."""

    def __init__(self, records: Iterable[Mapping[str, Any]]) -> None:
        self.records = list(records)
        self.peers: list[str] = []
        self.ok: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
        self.failed: dict[tuple[str, str], int] = {}
        for r in self.records:
            if r["type"] == "peer" and r["peer"] not in self.peers:
                self.peers.append(r["peer"])
            elif r["type"] == "run":
                bench = PLAIN.get(r["bench"], r["bench"])
                if "failed" in r["result"]:
                    self.failed[(r["peer"], bench)] = self.failed.get((r["peer"], bench), 0) + 1
                else:
                    self.ok.setdefault((r["peer"], bench), {})[r["rep"]] = r["result"]
        self.reps = sorted({rep for runs in self.ok.values() for rep in runs})

    def values(self, peer: str, m: Metric) -> dict[int, float]:
        """The metric's value in each repetition where it was measured."""
        if m.bench != ANY_BENCH:
            out = {}
            for rep, result in self.ok.get((peer, m.bench), {}).items():
                if _number(result.get(m.key)):
                    out[rep] = float(result[m.key])
            return out
        keys = TREE_RSS_KEYS if m.key == "tree" else (m.key,)
        by_rep: dict[int, float] = {}
        for (p, _bench), runs in self.ok.items():
            if p != peer:
                continue
            for rep, result in runs.items():
                for k in keys:
                    if _number(result.get(k)):
                        by_rep[rep] = max(by_rep.get(rep, 0.0), float(result[k]))
        return by_rep

    def value(self, peer: str, m: Metric) -> float | None:
        """Median over repetitions; for memory (ANY_BENCH rows), the maximum."""
        vals = list(self.values(peer, m).values())
        if not vals:
            return None
        return max(vals) if m.bench == ANY_BENCH else statistics.median(vals)

    def ratio(self, peer: str, m: Metric, ref: str = REF) -> float | None:
        """ref / peer, taken within each repetition (the two ran minutes apart), then the median.

        Memory rows compare the maxima instead: a peak is a peak whichever repetition it was in.
        """
        if m.bench == ANY_BENCH:
            x, y = self.value(ref, m), self.value(peer, m)
            return x / y if x is not None and y else None
        mine, theirs = self.values(ref, m), self.values(peer, m)
        ratios = [mine[rep] / theirs[rep] for rep in mine if theirs.get(rep)]
        return statistics.median(ratios) if ratios else None

    def noise(self) -> dict[str, float]:
        """Per peer, the median CPU other tenants used during its measurements (``other_cpu_pct``)."""
        out = {}
        for peer in self.peers:
            vals = [
                float(result[k])
                for (p, _bench), runs in self.ok.items()
                if p == peer
                for result in runs.values()
                for k in ("other_cpu_pct", "s1_other_cpu_pct")
                if _number(result.get(k))
            ]
            if vals:
                out[peer] = statistics.median(vals)
        return out

    def cell(self, peer: str, m: Metric) -> str:
        v = self.value(peer, m)
        if v is not None:
            return f"{v:,.{m.decimals}f}"
        if m.bench != ANY_BENCH and self.failed.get((peer, m.bench)):
            return "failed"
        return "n/a"


def metric(label: str) -> Metric:
    return next(m for m in METRICS if m.label == label)


def table(res: Results, ref: str = REF) -> list[str]:
    others = [p for p in res.peers if p != ref]
    head = ["metric", *res.peers, *(f"{ref} / {p}" for p in others)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for m in METRICS:
        cells = [res.cell(p, m) for p in res.peers]
        if ref in res.peers:
            for p in others:
                r = res.ratio(p, m, ref)
                cells.append("-" if r is None else f"{r:.2f}")
        arrow = "↑" if m.higher_is_better else "↓"
        lines.append(f"| {m.label} {arrow} | " + " | ".join(cells) + " |")
    return lines


def judge(res: Results, t: Target, ref: str = REF) -> tuple[str, str, str]:
    """(measured, verdict, margin) for one target."""
    m = metric(t.metric)
    if t.peer is not None:
        if t.peer not in res.peers:
            return "-", "not measured", f"peer {t.peer} did not run"
        v = res.ratio(t.peer, m, ref)
        shown = "-" if v is None else f"{v:.2f} ×"
    else:
        v = res.value(ref, m)
        shown = "-" if v is None else f"{v:,.{m.decimals}f}"
    if v is None:
        return shown, "not measured", "no successful measurement"
    if t.at_least:
        met = v >= t.bound
    else:
        met = v < t.bound if t.strict else v <= t.bound
    # how far from the bound, relative to it: positive = room to spare, negative = missed by
    spare = (v - t.bound) / t.bound if t.at_least else (t.bound - v) / t.bound
    return shown, "met" if met else "MISSED", f"{spare * 100:+.0f}%"


def targets_table(res: Results, ref: str = REF) -> list[str]:
    lines = ["| target | measured | verdict | margin |", "|---|---:|---|---:|"]
    for t in TARGETS:
        shown, verdict, margin = judge(res, t, ref)
        lines.append(f"| {t.label} | {shown} | {verdict} | {margin} |")
    return lines


def notes(res: Results) -> list[str]:
    out = []
    for r in res.records:
        if r["type"] == "prep_failed":
            out.append(f"- {r['peer']} {r['bench']}: preparation failed: {r['error'][:300]}")
        elif r["type"] == "prep":
            out += [f"- {r['peer']} {r['bench']}: {n}" for n in r.get("notes", [])]
        elif r["type"] == "run":
            result = r["result"]
            where = f"{r['peer']} {r['bench']} rep {r['rep'] + 1}"
            if "failed" in result:
                out.append(f"- {where}: run failed: {result['failed'][:300]}")
            elif result.get("errors") or result.get("postcheck_bad") or result.get("s1_errors"):
                out.append(
                    f"- {where}: {result.get('errors', result.get('s1_errors', 0))} errors, "
                    f"{result.get('postcheck_bad', 0)} bad post-checks {result.get('diag', '')}"
                )
    return out


def summarize(records: Iterable[Mapping[str, Any]], ref: str = REF) -> str:
    res = Results(records)
    lines = [
        f"Medians of {len(res.reps)} repetition(s), every server measured back to back in each. "
        "MB/s = 10^6 B/s. 4 KiB loads: wrk, presigned SigV4 URLs; 1 GiB loads: curl, one request, "
        "no multipart. Server CPU and RSS from /proc of the server and its children. "
        f"↑ higher is better, ↓ lower is better; {ref} / peer is taken within each repetition.\n",
        *table(res, ref),
        "",
    ]
    noise = res.noise()
    if noise:
        lines += [
            "Noise: CPU used by everything else on the machine while each server was measured "
            "(median, % of one core; 2 cores = 200%): " + ", ".join(f"{p} {v:.0f}%" for p, v in noise.items()),
            "",
        ]
    if ref in res.peers:
        lines += ["Targets (issue #18, this run):\n", *targets_table(res, ref), ""]
    extra = notes(res)
    if extra:
        lines += ["Notes:\n", *extra, ""]
    versions = next((r for r in res.records if r["type"] == "versions"), None)
    if versions:
        lines.append("Versions: " + "; ".join(f"{k}: {v}" for k, v in versions.items() if k != "type"))
    settings = next((r for r in res.records if r["type"] == "settings"), None)
    if settings:
        lines.append(settings["text"])
    commands = [f"- {r['peer']}: `{r['cmd']}`" for r in res.records if r["type"] == "peer"]
    if commands:
        lines += ["", "Servers:\n", *commands]
    return "\n".join(lines)
