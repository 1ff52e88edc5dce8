"""python -m benchmarks.run [--quick] [--only sync|sync10k|daily|rollup] [--workdir DIR] [--keep]

Runs the benchmarks (targets in benchmarks/README.md) as ratios against baselines run side by side on this
machine, prints a table and writes benchmarks/results/<timestamp>[-quick].json. Everything talks to 127.0.0.1 only.

Exit status: 0 when every correctness check held, 1 when one failed (the targets are reported in the
table's "ok" column; with --strict a missed target also exits 1), 2 when a benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import daily_bench, rollup_bench, sync10k_bench, sync_bench
from benchmarks.common import PROJECT_ROOT, OtherLoad, Section, git_info, machine_info, render_table

# In this order: sync10k compares itself with sync's 1,000-account run, and daily starts from its backfill
# (each measures that run itself when sync is not selected).
BENCHMARKS = {
    "sync": sync_bench.run,
    "sync10k": sync10k_bench.run,
    "daily": daily_bench.run,
    "rollup": rollup_bench.run,
}
RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test that runs in under a minute")
    parser.add_argument(
        "--only", choices=sorted(BENCHMARKS), action="append", help="run only this benchmark (repeatable)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where emulator state, landing files and warehouses go "
        "(default: a temporary directory, removed afterwards)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--strict", action="store_true", help="also exit 1 when a target is missed")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    names = [name for name in BENCHMARKS if name in (args.only or BENCHMARKS)]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="doow-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    started = time.perf_counter()
    load_at_start = [round(x, 2) for x in os.getloadavg()]

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    sections: list[Section] = []
    failures: list[str] = []
    try:
        for name in names:
            try:
                load = OtherLoad()
                section = BENCHMARKS[name](args.quick, workdir / name, log=log)
                other = section.data["other_load"] = load.result()
                if other["share_of_machine"] > 0.05:
                    section.notes.append(
                        f"the machine was busy: other processes used {other['other_cpu_s']:.0f} CPU-s during these "
                        f"{other['wall_s']:.0f} s ({other['share_of_machine']:.0%} of its CPUs); absolute times are "
                        "inflated, ratios of runs made side by side less so"
                    )
                sections.append(section)
            except Exception:  # noqa: BLE001 - last resort: one broken bench must not hide the others; reported, then fail
                failures.append(f"{name}: {traceback.format_exc()}")
                log(f"{name}: FAILED to run:\n{traceback.format_exc()}")
    finally:
        if args.keep or args.workdir:
            log(f"working directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    total = time.perf_counter() - started
    table = render_table(sections)
    document = {
        "timestamp": stamp,
        "quick": args.quick,
        "benchmarks": names,
        "duration_s": round(total, 1),
        "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {**machine_info(), "load_average_at_start": load_at_start},
        "git": git_info(),
        "sections": {
            s.name: {
                "rows": [r.__dict__ for r in s.rows],
                "checks": [{"check": n, "passed": p, "detail": d} for n, p, d in s.checks],
                "notes": s.notes,
                "data": s.data,
            }
            for s in sections
        },
        "table": table,
        "errors": failures,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{stamp}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(document, indent=1, default=str), encoding="utf-8")

    machine = document["machine"]
    print()
    print(
        f"doow-pipeline benchmarks{' (quick)' if args.quick else ''} - {machine['affinity_cpus']} CPU(s) "
        f"{machine['cpu_model']}, {machine['memory']}, Python {machine['python']}, commit "
        f"{document['git']['commit'][:10]}{' (dirty tree)' if document['git']['dirty_files'] else ''}"
    )
    busy = [s for s in sections if s.data.get("other_load", {}).get("share_of_machine", 0) > 0.05]
    if busy:
        print(
            "WARNING: the machine was busy with other work ({}): absolute times are inflated, ratios of runs "
            "made side by side less so. Rerun on an idle machine for publishable figures.".format(
                "; ".join(
                    f"{s.name}: other processes used {s.data['other_load']['share_of_machine']:.0%} of the CPUs"
                    for s in busy
                )
            )
        )
    print()
    print(table)
    print()
    print(
        f"results: {out.relative_to(PROJECT_ROOT) if out.is_relative_to(PROJECT_ROOT) else out} ({total:.0f} s in all)"
    )
    if failures:
        print(f"ERROR: {len(failures)} benchmark(s) could not run: {', '.join(f.split(':')[0] for f in failures)}")
        return 2
    incorrect = [f"{s.name}: {n}" for s in sections for n, passed, _ in s.checks if not passed]
    if incorrect:
        print("FAILED correctness checks:\n  " + "\n  ".join(incorrect))
        return 1
    missed = [f"{r.benchmark}: {r.metric}" for s in sections for r in s.rows if r.ok is False]
    if missed:
        print("missed targets: " + "; ".join(missed))
        if args.strict:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
