"""The landing zone's staging: each answer of a sync run as one piece (a record batch per day), merged per day at
landing; a run's staging goes
when it ends, a dead run's (kill -9) is removed by the next run of the connection, a live run's never."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from doow_pipeline.core.metrics import POINT_SCHEMA
from doow_pipeline.warehouse.landing import Landing, StagedKind

RID = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a1"


def points(*rows: tuple[str, int, float]) -> pl.DataFrame:
    """(metric, day of November 2026, total) rows of one account and deployment."""
    return pl.DataFrame(
        [
            {
                "resource_id": RID,
                "family": "models",
                "metric": metric,
                "deployment": "d1",
                "model_name": "gpt-4o",
                "model_version": "2024-08-06",
                "metric_region": "eastus",
                "timestamp": datetime(2026, 11, day, tzinfo=UTC),
                "total": total,
            }
            for metric, day, total in rows
        ],
        schema=POINT_SCHEMA,
    )


def files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def batches_per_piece(root) -> list[int]:
    """How many record batches each staged piece holds, in piece order."""
    counts = []
    for piece in sorted((root / "staging").rglob("*.arrow")):
        with pa.memory_map(str(piece)) as source:
            counts.append(ipc.open_file(source).num_record_batches)
    return counts


def test_each_answer_is_staged_as_one_piece_with_a_batch_per_day_and_read_back_per_day(tmp_path):
    landing = Landing(tmp_path)
    with landing.staging("prod") as run:
        landing.stage(run, StagedKind.POINTS, points(("TotalTokens", 17, 1.0), ("TotalTokens", 18, 2.0)))
        landing.stage(run, StagedKind.POINTS, points(("InputTokens", 18, 3.0)))
        landing.stage(run, StagedKind.POINTS, points())  # an answer without points stages nothing
        pieces = [f for f in files(tmp_path) if "/points/" in f]
        assert len(pieces) == 2 and all(f"/run={run.run_id}/points/" in f and f.endswith(".arrow") for f in pieces)
        assert batches_per_piece(tmp_path) == [2, 1], "one record batch per UTC day of the answer"
        assert landing.staged_days(run, StagedKind.POINTS) == [date(2026, 11, 17), date(2026, 11, 18)]
        day = landing.staged(run, StagedKind.POINTS, date(2026, 11, 18), POINT_SCHEMA)
        assert sorted(zip(day["metric"], day["total"], strict=True)) == [("InputTokens", 3.0), ("TotalTokens", 2.0)]
        assert day.schema == pl.Schema(POINT_SCHEMA)
        empty = landing.staged(run, StagedKind.POINTS, date(2026, 11, 19), POINT_SCHEMA)
        assert empty.is_empty() and empty.schema == pl.Schema(POINT_SCHEMA)
        assert landing.staged_days(run, StagedKind.REQUESTS) == []
    assert files(tmp_path) == [], "the run's staging is removed when it ends"


def test_a_day_is_merged_from_its_own_batches_whatever_order_the_answers_held_it(tmp_path):
    landing = Landing(tmp_path)
    with landing.staging("prod") as run:
        # Days interleaved inside one answer: each day's rows still land in that day's batch alone.
        landing.stage(
            run,
            StagedKind.POINTS,
            points(
                ("TotalTokens", 19, 1.0), ("TotalTokens", 17, 2.0), ("InputTokens", 19, 3.0), ("TotalTokens", 18, 4.0)
            ),
        )
        landing.stage(run, StagedKind.REQUESTS, points(("AzureOpenAIRequests", 17, 9.0)).drop("family"))
        assert batches_per_piece(tmp_path) == [3, 1]
        by_day = {
            d: landing.staged(run, StagedKind.POINTS, d, POINT_SCHEMA)["total"].to_list() for d in run.days("points")
        }
        assert by_day == {date(2026, 11, 17): [2.0], date(2026, 11, 18): [4.0], date(2026, 11, 19): [1.0, 3.0]}
        assert landing.staged_days(run, StagedKind.REQUESTS) == [date(2026, 11, 17)]


def test_discarding_a_kind_drops_its_pieces_and_index_and_keeps_the_others(tmp_path):
    landing = Landing(tmp_path)
    with landing.staging("prod") as run:
        landing.stage(run, StagedKind.POINTS, points(("TotalTokens", 17, 1.0)))
        landing.stage(run, StagedKind.REQUESTS, points(("AzureOpenAIRequests", 17, 9.0)).drop("family"))
        landing.discard_staged(run, StagedKind.POINTS)
        assert landing.staged_days(run, StagedKind.POINTS) == []
        assert landing.staged(run, StagedKind.POINTS, date(2026, 11, 17), POINT_SCHEMA).is_empty()
        assert not [f for f in files(tmp_path) if "/points/" in f]
        assert landing.staged_days(run, StagedKind.REQUESTS) == [date(2026, 11, 17)]
        # Staged again after the discard (an extraction asked again): only the new answer is read back.
        landing.stage(run, StagedKind.POINTS, points(("TotalTokens", 17, 5.0)))
        assert landing.staged(run, StagedKind.POINTS, date(2026, 11, 17), POINT_SCHEMA)["total"].to_list() == [5.0]


def test_a_failing_run_leaves_no_staging(tmp_path):
    landing = Landing(tmp_path)
    with pytest.raises(RuntimeError), landing.staging("prod") as run:
        landing.stage(run, StagedKind.POINTS, points(("TotalTokens", 17, 1.0)))
        raise RuntimeError("extraction failed")
    assert files(tmp_path) == []


def test_a_live_runs_staging_is_never_swept_and_two_runs_stage_apart(tmp_path):
    landing = Landing(tmp_path)
    with landing.staging("prod") as first, landing.staging("prod") as second:
        landing.stage(first, StagedKind.POINTS, points(("TotalTokens", 17, 1.0)))
        landing.stage(second, StagedKind.POINTS, points(("TotalTokens", 17, 5.0)))
        assert landing.sweep_staging("prod") == []
        assert landing.staged(first, StagedKind.POINTS, date(2026, 11, 17), POINT_SCHEMA)["total"].to_list() == [1.0]
        assert landing.staged(second, StagedKind.POINTS, date(2026, 11, 17), POINT_SCHEMA)["total"].to_list() == [5.0]


KILLED_RUN = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    import polars as pl
    from doow_pipeline.core.metrics import POINT_SCHEMA
    from doow_pipeline.warehouse.landing import Landing
    landing = Landing(sys.argv[1])
    row = dict(resource_id="r", family="models", metric="TotalTokens", deployment="d", model_name=None,
               model_version=None, metric_region=None, timestamp=datetime(2026, 11, 17, tzinfo=UTC), total=1.0)
    with landing.staging("prod") as run:
        landing.stage(run, "points", pl.DataFrame([row], schema=POINT_SCHEMA))
        print(run.run_id, flush=True)
        sys.stdin.read()  # holds the run open until killed
    """
)


def test_the_staging_of_a_killed_run_is_removed_by_the_next_run_of_the_connection(tmp_path):
    landing = Landing(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        dead = process.stdout.readline().strip()
        assert dead, "the run started and staged a piece"
        # While it lives, nobody removes its staging.
        assert landing.sweep_staging("prod") == []
        assert any(f"run={dead}/points/" in f and f.endswith(".arrow") for f in files(tmp_path))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert any(f"run={dead}" in f for f in files(tmp_path)), "kill -9 left its staging behind"
    with landing.staging("prod") as run:
        assert not any(f"run={dead}" in f for f in files(tmp_path)), "the next run removed the dead run's staging"
        assert landing.staged_days(run, StagedKind.POINTS) == []
    with landing.staging("other"):
        pass
    assert files(tmp_path) == []


def test_purging_a_connection_removes_its_staging(tmp_path):
    landing = Landing(tmp_path)
    with landing.staging("prod") as run:
        landing.stage(run, StagedKind.POINTS, points(("TotalTokens", 17, 1.0)))
        landing.purge("prod")
        assert not landing.staging_dir("prod").exists()


BOUNDED_MERGE = textwrap.dedent(
    """
    import gc, sys
    from datetime import UTC, datetime, timedelta
    import polars as pl
    from doow_pipeline.core.metrics import POINT_SCHEMA
    from doow_pipeline.warehouse.landing import Landing

    def kib(field):
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))

    answers, days, rows_per_day = int(sys.argv[2]), 30, 1500
    landing = Landing(sys.argv[1])
    start = datetime(2026, 10, 1, tzinfo=UTC)
    with landing.staging("prod") as run:
        for answer in range(answers):
            n = days * rows_per_day
            frame = pl.DataFrame(
                {
                    "resource_id": [f"/subscriptions/s/rg/accounts/a{answer}-{i % 50}" for i in range(n)],
                    "family": ["models"] * n, "metric": ["TotalTokens"] * n,
                    "deployment": [f"d{i % 7}" for i in range(n)],
                    "model_name": ["gpt-4o"] * n, "model_version": ["2024-08-06"] * n, "metric_region": ["eastus"] * n,
                    "timestamp": [start + timedelta(days=i % days, minutes=i % 1440) for i in range(n)],
                    "total": [float(i) for i in range(n)],
                },
                schema=POINT_SCHEMA,
            )
            landing.stage(run, "points", frame)
            del frame
        gc.collect()
        staged_kib = sum(p.stat().st_size for p in run.directory.rglob("*.arrow")) // 1024
        open("/proc/self/clear_refs", "w").write("5")  # resets VmHWM, the peak RSS, to the current RSS
        before = kib("VmRSS")
        rows = 0
        for day in landing.staged_days(run, "points"):
            rows += landing.staged(run, "points", day, POINT_SCHEMA).height
        print(staged_kib, kib("VmHWM") - before, rows)
    """
)


def test_merging_a_day_reads_that_days_rows_not_the_whole_runs(tmp_path):
    """Peak RSS while merging the days one at a time grows by about a day's share of what is staged, not by
    all of it: a merge that read whole pieces, or every piece at once, would hold far more."""
    result = subprocess.run(
        [sys.executable, "-c", BOUNDED_MERGE, str(tmp_path), "24"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    staged_kib, merge_peak_kib, rows = (int(v) for v in result.stdout.split())
    assert rows == 24 * 30 * 1500
    assert staged_kib > 60 * 1024, "enough staged that reading it all would show"
    assert merge_peak_kib < staged_kib / 4, f"the merge's peak grew by {merge_peak_kib} KiB of {staged_kib} staged"
