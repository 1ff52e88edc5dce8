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
    # api-versions accepted on the per-resource metrics/metricDefinitions APIs and on getBatch. 2018-01-01 is
    # what the Azure CLI's `az monitor metrics list`/`list-definitions` send (its recorded tests show 200s).
    arm_metrics_api_versions: tuple[str, ...] = ("2018-01-01", "2023-10-01", "2024-02-01")
    batch_api_versions: tuple[str, ...] = ("2023-10-01", "2024-02-01")
    # Lifetime of issued access tokens (Entra: 3599 s).
    token_lifetime_s: int = 3599
    # Trimming of long windows. A recorded real answer (Azure CLI test recording, PT1M over years) came back
    # 200 with a `timespan` shortened to the last 31 days (end kept). Which grains and limits Azure applies is
    # unknown, so both limits are off by default: `trim_max_buckets` keeps at most N buckets, `trim_max_span`
    # (ISO 8601 duration, e.g. "P31D" as recorded for PT1M) at most that span; the start moves forward, the
    # end stays, and `timespan`/`starttime` (and `cost`) describe the trimmed window. Applies to the
    # per-resource API and to getBatch (`trim_batch: false` exempts getBatch).
    trim_max_buckets: int | None = None
    trim_max_span: str | None = None
    trim_batch: bool = True
    # getBatch `namespace` in each item: "lower" = lower-cased (the 2023-10-01 and 2024-02-01 spec examples
    # and the Learn migration sample); "by_version" = as requested on 2023-10-01, lower-cased on 2024-02-01
    # (reported in issue 8, no public source found); "as_requested".
    batch_namespace_echo: str = "lower"
    # Dimensions a metric defines (metricDefinitions lists them) but that return no series when split or
    # filtered on, as reported for some resource types (OTel collector-contrib #36611, #44940):
    # {"AzureOpenAIRequests": ["ModelName"]} or {"*": ["StatusCode"]}. Empty by default.
    empty_split_dimensions: dict | None = None

    @classmethod
    def from_raw(cls, raw: dict | None) -> Quirks:
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"quirks: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        for key in ("arm_metrics_api_versions", "batch_api_versions"):
            if key in raw:
                raw[key] = tuple(str(v) for v in raw[key])
        if raw.get("batch_namespace_echo", "lower") not in ("lower", "by_version", "as_requested"):
            raise ValueError("quirks.batch_namespace_echo: one of lower, by_version, as_requested")
        if raw.get("trim_max_span") is not None:
            from .timeutil import parse_duration

            if parse_duration(str(raw["trim_max_span"])) is None:
                raise ValueError(f"quirks.trim_max_span: {raw['trim_max_span']!r} is not an ISO 8601 duration")
        return cls(**raw)

    def empty_split(self, metric: str) -> frozenset[str]:
        """Lower-cased dimension names that return nothing when split or filtered on for this metric."""
        if not self.empty_split_dimensions:
            return frozenset()
        names = []
        for key, dims in self.empty_split_dimensions.items():
            if key == "*" or key.lower() == metric.lower():
                names.extend(str(d).lower() for d in dims)
        return frozenset(names)
