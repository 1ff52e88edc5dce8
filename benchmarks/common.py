"""Shared plumbing: measured worker subprocesses, process statistics, machine facts, the result table.

Every measured operation runs in its own fresh Python process (a "worker"), so
- its peak memory is the process's own high-water mark (VmHWM, which the worker reports as it ends; its CPU time
  comes from os.wait4 for exactly that child),
- nothing is cached between the pipeline and its baseline (e.g. the per-process metricDefinitions cache),
- the parent only orchestrates and checks results; it never competes for the CPU while a worker runs.

A worker is `python -m <module> --spec SPEC.json --out OUT.json`; it times its own operation (so the
interpreter start-up and imports are not counted as the operation's wall time) and writes a JSON result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


class BenchmarkError(RuntimeError):
    """A worker failed or a correctness check did not hold."""


# ---- worker side ---------------------------------------------------------------------------------------------


def vm_hwm_mib() -> float:
    """This process's peak resident set so far (VmHWM), in MiB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker_main(run) -> None:
    """Entry point of a worker module: `run(spec: dict) -> dict`, result written as JSON to --out."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    spec = json.loads(Path(args.spec).read_text(encoding="utf-8"))
    result = run(spec)
    result.setdefault("vm_hwm_mib", vm_hwm_mib())
    Path(args.out).write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")


# ---- parent side ---------------------------------------------------------------------------------------------


@dataclass
class WorkerRun:
    result: dict
    process_wall_s: float
    peak_rss_mib: float
    cpu_user_s: float
    cpu_sys_s: float

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_sys_s


def run_worker(
    module: str, spec: dict, workdir: Path, name: str, env: dict | None = None, timeout: float = 3600.0
) -> WorkerRun:
    """Runs one worker to completion and returns its result with the child's own rusage."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path, out_path, log_path = workdir / f"{name}.spec.json", workdir / f"{name}.out.json", workdir / f"{name}.log"
    spec_path.write_text(json.dumps(spec, indent=1, default=str), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), child_env.get("PYTHONPATH")) if p)
    child_env.update(env or {})
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--spec", str(spec_path), "--out", str(out_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(PROJECT_ROOT),
            env=child_env,
        )
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.02)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0 or not out_path.exists():
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise BenchmarkError(
            f"worker {name} ({module}) exited with {process.returncode} after {wall:.1f} s; log {log_path}:\n{tail}"
        )
    result = json.loads(out_path.read_text(encoding="utf-8"))
    # The peak is the worker's own VmHWM, which it reports as it ends. Not ru_maxrss from wait4: Linux carries the
    # spawning process's high-water mark over exec into the child's maxrss (subprocess spawns with vfork, so the
    # child starts on the parent's memory), so a worker started after the parent held, say, 1.4 GiB of check data
    # would "peak" at 1.4 GiB whatever it did. ru_maxrss stays in the result as an upper bound.
    result["rusage_maxrss_mib"] = usage.ru_maxrss / 1024
    peak = float(result.get("vm_hwm_mib", usage.ru_maxrss / 1024))
    return WorkerRun(result, wall, peak, usage.ru_utime, usage.ru_stime)


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used, from /proc (used for the emulator)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def process_peak_rss_mib(pid: int) -> float:
    """Peak resident set (VmHWM) of a live process, in MiB, from /proc (used for the emulator)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class OtherLoad:
    """CPU time that processes other than this one and its children used while it ran (from /proc/stat).

    Other work on the machine (tests, builds) slows the measured processes; this says how much there was.
    """

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
            busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            busy = float("nan")
        own = os.times()
        return busy, own.user + own.system + own.children_user + own.children_system, time.perf_counter()

    def result(self) -> dict:
        busy, own, wall = self._sample()
        others = max(0.0, (busy - self.start[0]) - (own - self.start[1]))
        seconds = wall - self.start[2]
        cpus = len(os.sched_getaffinity(0))
        return {
            "other_cpu_s": round(others, 1),
            "wall_s": round(seconds, 1),
            "share_of_machine": round(others / (seconds * cpus), 3) if seconds > 0 else 0.0,
        }


def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    except OSError:
        pass
    import duckdb
    import polars

    return {
        "cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "duckdb": duckdb.__version__,
        "polars": polars.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def git_info() -> dict:
    def git(*args):
        try:
            return subprocess.run(
                ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"commit": git("rev-parse", "HEAD"), "dirty_files": len(git("status", "--porcelain").splitlines())}


# ---- results -------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the result table. `ok` is None when there is no target."""

    benchmark: str
    metric: str
    pipeline: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    ok: bool | None = None


@dataclass
class Section:
    name: str
    rows: list[Row] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (correctness check, passed, detail)
    notes: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)

    def row(self, metric: str, pipeline, baseline="", ratio="", target="", ok: bool | None = None) -> None:
        self.rows.append(Row(self.name, metric, str(pipeline), str(baseline), str(ratio), target, ok))

    def check(self, name: str, passed: bool, detail: str = "") -> None:
        self.checks.append((name, bool(passed), detail))

    @property
    def correct(self) -> bool:
        return all(passed for _, passed, _ in self.checks)


def fmt_s(seconds: float) -> str:
    return f"{seconds:,.1f} s" if seconds >= 10 else f"{seconds:,.2f} s"


def fmt_mib(mib: float) -> str:
    return f"{mib:,.0f} MiB"


def fmt_ratio(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.0f}x" if value >= 100 else f"{value:,.1f}x" if value >= 10 else f"{value:,.2f}x"


def render_table(sections: list[Section]) -> str:
    headers = ("benchmark", "metric", "pipeline", "baseline", "ratio", "target", "ok")
    rows = [
        (
            r.benchmark,
            r.metric,
            r.pipeline,
            r.baseline,
            r.ratio,
            r.target,
            "" if r.ok is None else ("yes" if r.ok else "NO"),
        )
        for s in sections
        for r in s.rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    right = {2, 3, 4}

    def line(cells):
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(headers), "  ".join("-" * w for w in widths)]
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            out.append("")
        out.append(line(row))
        previous = row[0]
    for section in sections:
        if section.checks:
            out.append("")
            out.append(f"{section.name} correctness:")
            for name, passed, detail in section.checks:
                out.append(f"  [{'ok' if passed else 'FAILED'}] {name}" + (f": {detail}" if detail else ""))
        for note in section.notes:
            out.append(f"  note: {note}")
    return "\n".join(out)
