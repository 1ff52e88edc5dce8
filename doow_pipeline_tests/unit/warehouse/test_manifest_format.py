"""Manifests are written with orjson (the standard encoder with an indent cost most of a day's landing when a
manifest holds hundreds of accounts); every manifest written before (the standard encoder's format) still reads,
and what orjson refuses (a lone surrogate in a tag) is written and read by the standard codec."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from doow_pipeline.warehouse.landing import CorruptLandingFile, DayManifest, _manifest_bytes, parse_manifest


def manifest(tag: str = "team-a") -> DayManifest:
    accounts = [
        {
            "tenant_id": "t",
            "subscription_id": "s1",
            "resource_name": f"a{i}",
            "readable": i % 2 == 0,
            "metrics_api": None,
            "tags": {"owner": tag, "cost-centre": "42", "ünïcode": "名前"},
        }
        for i in range(3)
    ]
    return DayManifest(
        connection="prod",
        day="2026-11-17",
        synced_at="2026-11-18T03:00:00+00:00",
        is_final=True,
        accounts=accounts,
        rows=12,
        sync_id="20261118030000-abcdef012345",
        points_file="points.20261118030000-abcdef012345.parquet",
        activity_files={"requests": "requests.20261118030000-abcdef012345.parquet"},
    )


def test_a_written_manifest_reads_back_equal_with_its_keys_sorted():
    written = _manifest_bytes(manifest())
    assert parse_manifest(written, "m.json") == manifest()
    assert list(json.loads(written)) == sorted(asdict(manifest()))
    assert list(json.loads(written)["accounts"][0]["tags"]) == sorted(manifest().accounts[0]["tags"])


@pytest.mark.parametrize("indent", [1, None])
def test_manifests_written_before_by_the_standard_encoder_still_read(indent):
    old = json.dumps(asdict(manifest()), sort_keys=True, indent=indent).encode("utf-8")
    assert parse_manifest(old, "m.json") == manifest()
    legacy = {"connection": "prod", "day": "2026-11-17", "synced_at": "2026-11-18T03:00:00+00:00", "is_final": False}
    assert parse_manifest(json.dumps(legacy).encode(), "m.json") == DayManifest(**legacy)


def test_a_lone_surrogate_that_orjson_refuses_is_written_and_read_by_the_standard_codec():
    odd = manifest(tag="bad\udc80")
    written = _manifest_bytes(odd)
    assert b"\\udc80" in written
    assert parse_manifest(written, "m.json") == odd


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b'{"connection": "prod"}', b"\xff\xfe"])
def test_a_manifest_that_is_not_one_is_corrupt(data):
    with pytest.raises(CorruptLandingFile, match="not a valid manifest"):
        parse_manifest(data, "m.json")
