"""Azure behaviour the documentation does not pin down, as switches (scenario key `quirks:`).

Every default is the best-supported reading of Microsoft's documentation and observed answers; a test or a benchmark
can flip one to check that the pipeline does not depend on the guess.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Quirks:
    # Requesting an aggregation the metric does not support (our metrics support only Total):
    # "error" = per-metric errorCode InvalidSamplingType with empty timeseries inside a 200 (the only
    # documented behaviour, GetMetricError.json); "omit" = silently return only the supported keys.
    unsupported_aggregation: str = "error"
    # `timespan` on getBatch: the 2024-02-01 spec example's 400 says "Please use only starttime and
    # endtime"; the Learn migration sample (2023-10-01) uses timespan. "by_version" = reject on
    # 2024-02-01, accept on 2023-10-01; "accept"; "reject".
    batch_timespan: str = "by_version"
    # No $filter and no data in the window: "empty" = "timeseries": [] (documented: no data gives an
    # empty list); "series" = one series with empty metadatavalues and empty buckets.
    unfiltered_without_data: str = "empty"
    # Series order when no orderby is given (Azure: undefined). "total desc" or "total asc".
    default_orderby: str = "total desc"
    # Shape of the metrics RP's 400s on the per-resource ARM API: "flat" {code,message} (documented)
    # or "wrapped" {"error":{...}} (also observed, with additionalInfo).
    arm_rp_errors: str = "flat"
    # Unknown (or inaccessible-type) resource ids inside a getBatch body: "empty" = item with empty
    # timeseries; "error" = 400 for the whole call.
    batch_unknown_resource: str = "empty"
    # Maximum buckets x series a single query may return (None: unlimited; Azure's limit is unknown).
    max_datapoints: int | None = None
    # api-versions accepted on the per-resource metrics/metricDefinitions APIs and on getBatch.
    arm_metrics_api_versions: tuple[str, ...] = ("2023-10-01", "2024-02-01")
    batch_api_versions: tuple[str, ...] = ("2023-10-01", "2024-02-01")
    # Lifetime of issued access tokens (Entra: 3599 s).
    token_lifetime_s: int = 3599

    @classmethod
    def from_raw(cls, raw: dict | None) -> "Quirks":
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"quirks: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        for key in ("arm_metrics_api_versions", "batch_api_versions"):
            if key in raw:
                raw[key] = tuple(str(v) for v in raw[key])
        return cls(**raw)
