"""``otel-monitor archive ls|export`` (issue 17) over an archive written by the archive
writer: the manifest listed; a time range exported as Parquet, CSV and OTLP JSON."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")

from exporters.archive.writer import ArchiveWriter
from otel_monitor.cli import main
from moto_s3 import BUCKET, moto  # noqa: F401 (moto: the fixture)
from otel_monitor.cli import archive as archive_cli

HOUR_NS = 3600 * 10**9
BASE_NS = 1_700_000_000 * 10**9 - (1_700_000_000 * 10**9) % HOUR_NS  # 2023-11-14T22:00Z


def _row(rid, sid, start, seq, data, dtype, value, status="OK"):
    return (rid, f"{sid:016x}", f"{sid:032x}", None, start, 2.0, "app.price", "tests", "svc",
            status, "ok", "ValueError" if status == "ERR" else None,
            "ValueError: x" if status == "ERR" else None, 1, 1.0, None, seq, data, dtype, value)


@pytest.fixture
def archive_dir(tmp_path):
    rows = [_row(1, 1, BASE_NS + 10, 0, "key", "INPUT", "'a'"),
            _row(1, 1, BASE_NS + 10, 1, "return", "OUTPUT", "1"),
            _row(2, 2, BASE_NS + HOUR_NS + 5, 0, "key", "INPUT", "'b'", status="ERR")]
    ArchiveWriter(tmp_path / "arch", "w").write(rows)
    return str(tmp_path / "arch")


def test_ls_lists_the_files_of_the_manifest(archive_dir, capsys):
    assert main(["archive", "ls", "--dir", archive_dir]) == 0
    text = capsys.readouterr().out
    assert "2023-11-14 22:00" in text and "2023-11-14 23:00" in text
    assert text.rstrip().endswith("bytes") and "2 files, 2 calls" in text
    assert main(["archive", "ls", "--dir", archive_dir, "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["calls"] for e in entries] == [1, 1] and all(len(e["sha256"]) == 64 for e in entries)


def test_export_csv_and_parquet_of_a_range(archive_dir, tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert main(["archive", "export", "--dir", archive_dir, "--from", "2023-11-14T22:00:00",
                 "--to", "2023-11-14T23:00:00", "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["data"], r["data_value"]) for r in rows] == [("key", "'a'"), ("return", "1")]
    assert "1 calls (2 rows)" in capsys.readouterr().out
    import pyarrow.parquet as pq
    pq_out = tmp_path / "x.parquet"
    assert main(["archive", "export", "--dir", archive_dir, "--from", "2023-11-14T22:00:00",
                 "--to", "2023-11-15T00:00:00", "--out", str(pq_out)]) == 0
    assert pq.read_table(pq_out).num_rows == 3


def test_export_otlp_json_is_one_span_per_call(archive_dir, tmp_path):
    out = tmp_path / "x.json"
    assert main(["archive", "export", "--dir", archive_dir, "--from", "2023-11-14T22:00:00Z",
                 "--to", "2023-11-15T00:00:00Z", "--format", "otlp-json",
                 "--out", str(out)]) == 0
    body = json.loads(out.read_text())
    (resource,) = body["resourceSpans"]
    assert resource["resource"]["attributes"][0]["value"]["stringValue"] == "svc"
    spans = resource["scopeSpans"][0]["spans"]
    assert [s["spanId"] for s in spans] == [f"{1:016x}", f"{2:016x}"]
    assert [a["key"] for a in spans[0]["attributes"]] == ["monitor.input.key",
                                                          "monitor.output.return"]
    assert spans[0]["status"]["code"] == 1 and spans[1]["status"]["code"] == 2
    assert spans[0]["endTimeUnixNano"] == str(BASE_NS + 10 + 2_000_000)


def test_export_refuses_a_reversed_range(archive_dir, tmp_path, capsys):
    assert main(["archive", "export", "--dir", archive_dir, "--from", "2023-11-15T00:00:00",
                 "--to", "2023-11-14T00:00:00", "--out", str(tmp_path / "x")]) == 2
    assert "--from" in capsys.readouterr().err
    assert archive_cli.FORMATS == ("parquet", "csv", "otlp-json")


def test_with_an_s3_archive_ls_says_where_each_file_is_and_export_reads_the_bucket(
        archive_dir, tmp_path, moto, monkeypatch, capsys):  # noqa: F811
    """Uploaded files leave the local directory (it is then only the spool): ``export``
    must read the bucket too, and ``ls`` say which files are there."""
    from exporters.archive.remote import S3Target, upload_pending

    url = f"s3://{BUCKET}/otel/archive"
    uploaded = upload_pending(archive_dir, S3Target.from_url(url, endpoint=moto.endpoint))
    assert uploaded == 2 and not list(Path(archive_dir).rglob("*.parquet"))
    monkeypatch.setenv("OTEL_MONITOR_ARCHIVE_URL", url)
    monkeypatch.setenv("OTEL_MONITOR_ARCHIVE_S3_ENDPOINT", moto.endpoint)
    out = tmp_path / "x.csv"
    assert main(["archive", "export", "--dir", archive_dir, "--from", "2023-11-14T22:00:00",
                 "--to", "2023-11-15T00:00:00", "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["span_id"], r["data"]) for r in rows] == [
        (f"{1:016x}", "key"), (f"{1:016x}", "return"), (f"{2:016x}", "key")]
    assert "2 calls (3 rows)" in capsys.readouterr().out
    assert main(["archive", "ls", "--dir", archive_dir, "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["location"] for e in entries] == [f"{url}/{e['path']}" for e in entries]
    assert main(["archive", "ls", "--dir", archive_dir]) == 0
    assert capsys.readouterr().out.count(f"({url}/date=") == 2
