"""pixelgres.server.tabular: Parquet / CSV / JSON lines round trips, no database."""
from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pixelgres.server import tabular
from pixelgres.server.tabular import ParquetSink, arrow_schema, infer_format, read_rows

UTC = dt.timezone.utc

COLUMNS = [
    ("t", "text"), ("vc", "character varying(20)"), ("ch", "character(3)"), ("nm", "name"),
    ("img", "pxt.image"), ("vid", "pxt.video"), ("aud", "pxt.audio"), ("doc", "pxt.document"),
    ("i2", "smallint"), ("i4", "integer"), ("i8", "bigint"), ("f4", "real"), ("f8", "double precision"),
    ("num", "numeric(12,4)"), ("b", "boolean"), ("d", "date"),
    ("ts", "timestamp without time zone"), ("ts3", "timestamp(3) without time zone"),
    ("tz", "timestamp with time zone"), ("raw", "bytea"), ("js", "json"), ("jb", "jsonb"), ("id", "uuid"),
    ("vec", "vector(3)"), ("ints", "integer[]"), ("texts", "text[]"), ("pt", "point"),
    ('say "hi"', "text"), ("naïve café ✓", "integer"), ("with space, comma", "text"),
]

EXPECTED_TYPES = [
    pa.string(), pa.string(), pa.string(), pa.string(), pa.string(), pa.string(), pa.string(), pa.string(),
    pa.int16(), pa.int32(), pa.int64(), pa.float32(), pa.float64(), pa.string(), pa.bool_(), pa.date32(),
    pa.timestamp("us"), pa.timestamp("us"), pa.timestamp("us", tz="UTC"), pa.binary(), pa.string(),
    pa.string(), pa.string(), pa.list_(pa.float32(), 3), pa.list_(pa.int32()), pa.list_(pa.string()),
    pa.string(), pa.string(), pa.int32(), pa.string(),
]

# values as plpython hands them over
ROW = (
    "hello", "varying", "abc", "pg_name", "s3://bucket/a.png", "file:///v.mp4", "https://x/a.wav", "/d.pdf",
    -32768, 2147483647, 9223372036854775807, 1.5, 0.1, Decimal("12345678.1234"), True, dt.date(2024, 2, 29),
    dt.datetime(2024, 1, 2, 3, 4, 5, 123456), "2024-01-02 03:04:05.123",
    dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))), b"\x00\x01\xffbin",
    '{"a": [1, 2]}', '{"k": "v", "n": 1}', "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "[1,2,3]", [1, None, 3], ["x", "y"], "(1,2)", 'quote"d', 7, "comma, here",
)

EXPECTED = (
    "hello", "varying", "abc", "pg_name", "s3://bucket/a.png", "file:///v.mp4", "https://x/a.wav", "/d.pdf",
    -32768, 2147483647, 9223372036854775807, 1.5, 0.1, "12345678.1234", True, dt.date(2024, 2, 29),
    dt.datetime(2024, 1, 2, 3, 4, 5, 123456), dt.datetime(2024, 1, 2, 3, 4, 5, 123000),
    dt.datetime(2024, 6, 1, 10, 0, tzinfo=UTC), b"\x00\x01\xffbin",
    '{"a": [1, 2]}', '{"k": "v", "n": 1}', "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    [1.0, 2.0, 3.0], [1, None, 3], ["x", "y"], "(1,2)", 'quote"d', 7, "comma, here",
)
NAMES = [c[0] for c in COLUMNS]


def test_arrow_schema_maps_every_type():
    schema = arrow_schema(COLUMNS)
    assert schema.names == NAMES
    assert [f.type for f in schema] == EXPECTED_TYPES
    assert json.loads(schema.metadata[tabular.COLUMNS_KEY]) == [list(c) for c in COLUMNS]


def test_arrow_schema_more_types():
    types = {t.type for t in arrow_schema([
        ("a", "halfvec(4)"), ("b", "vector"), ("c", "bigint[]"), ("d", "pxt.image[]"), ("e", "vector(2)[]"),
        ("f", "timestamp(6) with time zone"), ("g", "numeric"), ("h", "mood"), ("i", "sparsevec(5)"),
        ("j", "mood[]"), ("k", "double precision[]"),
    ])}
    assert types == {pa.list_(pa.float32(), 4), pa.list_(pa.float32()), pa.list_(pa.int64()),
                     pa.list_(pa.string()), pa.list_(pa.list_(pa.float32(), 2)), pa.timestamp("us", tz="UTC"),
                     pa.string(), pa.list_(pa.float64())}


@pytest.mark.parametrize("columns", [[("a", "text"), ("a", "integer")], [("", "text")], [(None, "text")]])
def test_arrow_schema_refuses_bad_names(columns):
    with pytest.raises(ValueError, match="column name"):
        arrow_schema(columns)


def test_round_trip_every_type(tmp_path):
    path = tmp_path / "all.parquet"
    as_dict = dict(zip(NAMES, ROW))
    with ParquetSink(str(path), COLUMNS) as sink:
        sink.write([ROW, tuple([None] * len(COLUMNS))])
        sink.write([as_dict, {}])  # dicts; missing keys are NULL
    assert sink.close() == {"rows": 4, "row_groups": 2, "bytes": path.stat().st_size}
    assert [f.type for f in pq.read_schema(path)] == EXPECTED_TYPES
    batches = list(read_rows(str(path)))
    assert len(batches) == 1
    nulls = dict.fromkeys(NAMES)
    assert batches[0] == [dict(zip(NAMES, EXPECTED)), nulls, dict(zip(NAMES, EXPECTED)), nulls]
    assert batches[0][0]["tz"].utcoffset() == dt.timedelta(0)
    assert json.loads(batches[0][0]["jb"]) == {"k": "v", "n": 1}
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"


def test_value_forms(tmp_path):
    """Other forms the same values can take: memoryview, text forms, dicts for jsonb, naive timestamptz."""
    cols = [("raw", "bytea"), ("hex", "bytea"), ("jb", "jsonb"), ("tz", "timestamp with time zone"),
            ("tzs", "timestamp(0) with time zone"), ("b", "boolean"), ("d", "date"), ("n", "numeric"), ("v", "vector(2)"),
            ("r", "real[]"), ("u", "uuid")]
    import uuid
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    path = tmp_path / "forms.pq"
    with ParquetSink(path, cols, compression="snappy") as sink:
        sink.write([(memoryview(b"mv"), bytearray(b"\n\xff"), {"é": [1, True]}, dt.datetime(2024, 1, 1, 8),
                     "2024-01-01 08:00:00+05:30", False, "2024-03-01", Decimal("NaN"), [0.5, -2], "[0.25,1]", u)])
    (row,) = next(read_rows(path))
    assert row == {"raw": b"mv", "hex": b"\n\xff", "jb": '{"é": [1, true]}', "tz": dt.datetime(2024, 1, 1, 8, tzinfo=UTC),
                   "tzs": dt.datetime(2024, 1, 1, 2, 30, tzinfo=UTC), "b": False, "d": dt.date(2024, 3, 1),
                   "n": "NaN", "v": [0.5, -2.0], "r": [0.25, 1.0], "u": str(u)}


@pytest.mark.parametrize("col, value, message", [
    (("i", "smallint"), 40000, "'i'"), (("i", "integer"), 1.5, "not an integer"),
    (("v", "vector(3)"), "[1,2]", "expected 3 dimensions"), (("v", "vector(2)"), "1,2", "not a vector"),
    (("b", "boolean"), "f", "expected a boolean"), (("r", "bytea"), 5, "expected bytes"),
])
def test_bad_values_name_the_column(tmp_path, col, value, message):
    with pytest.raises(ValueError, match=message):
        with ParquetSink(tmp_path / "bad.parquet", [col]) as sink:
            sink.write([(value,)])
    assert os.listdir(tmp_path) == []


def test_bad_rows(tmp_path):
    with ParquetSink(tmp_path / "x.parquet", [("a", "text"), ("b", "text")]) as sink:
        with pytest.raises(ValueError, match="1 values for 2 columns"):
            sink.write([("only",)])
        with pytest.raises(ValueError, match="unknown column"):
            sink.write([{"a": 1, "zz": 2}])
        sink.write([])  # no empty row group
    assert sink.close()["row_groups"] == 0
    with pytest.raises(ValueError, match="closed"):
        sink.write([("a", "b")])


def test_streaming_row_groups_and_batches(tmp_path):
    path = tmp_path / "many.parquet"
    rows = [(i, f"row {i}", [i, i + 1, i + 2] if i % 7 else None) for i in range(2500)]
    cols = [("n", "bigint"), ("s", "text"), ("v", "vector(3)")]
    with ParquetSink(str(path), cols) as sink:
        for start in range(0, len(rows), 1000):
            sink.write(rows[start:start + 1000])
    stats = sink.close()
    assert stats["rows"] == 2500 and stats["row_groups"] == 3
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    batches = list(read_rows(str(path), "parquet", batch_rows=300))
    assert [len(b) for b in batches] == [300] * 8 + [100]
    flat = [r for b in batches for r in b]
    assert flat == [{"n": n, "s": s, "v": None if v is None else [float(x) for x in v]} for n, s, v in rows]


def test_embed_sibling_column(tmp_path):
    path = tmp_path / "media.parquet"
    cols = [("id", "integer"), ("a.b img", "pxt.image"), ("note", "text")]
    fetched = []

    def fetch(uri):
        fetched.append(uri)
        return ("bytes of " + uri).encode()
    with ParquetSink(path, cols, embed={"a.b img": fetch}) as sink:
        sink.write([(1, "s3://b/1.png", "x"), (2, None, "y")])
    assert fetched == ["s3://b/1.png"]
    table = pq.read_table(path)
    assert table.column_names == ["id", "a.b img", "a.b img__bytes", "note"]
    assert table.column("a.b img__bytes").to_pylist() == [b"bytes of s3://b/1.png", None]
    assert table.schema.field("a.b img__bytes").metadata == {tabular.EMBED_KEY: b"a.b img"}
    assert list(read_rows(path)) == [[{"id": 1, "a.b img": "s3://b/1.png", "note": "x"},
                                      {"id": 2, "a.b img": None, "note": "y"}]]


@pytest.mark.parametrize("columns, embed, message", [
    ([("a", "text")], {"b": bytes}, "not one of the columns"),
    ([("a", "text"), ("a__bytes", "bytea")], {"a": bytes}, "already a column"),
    ([("a", "text")], {"a": "nope"}, "not callable"),
])
def test_embed_validation(tmp_path, columns, embed, message):
    with pytest.raises(ValueError, match=message):
        ParquetSink(tmp_path / "e.parquet", columns, embed=embed)
    assert os.listdir(tmp_path) == []


def test_embed_must_return_bytes(tmp_path):
    with pytest.raises(ValueError, match="returned str, not bytes"):
        with ParquetSink(tmp_path / "e.parquet", [("a", "text")], embed={"a": str.upper}) as sink:
            sink.write([("x",)])
    assert os.listdir(tmp_path) == []


def test_exception_in_with_leaves_nothing(tmp_path):
    path = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError, match="boom"):
        with ParquetSink(str(path), [("a", "integer")]) as sink:
            sink.write([(1,), (2,)])
            assert any(n.startswith("out.parquet.tmp-") for n in os.listdir(tmp_path))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="aborted"):
        sink.close()


def test_abort_and_idempotent_close(tmp_path):
    path = tmp_path / "o.parquet"
    sink = ParquetSink(path, [("a", "text")])
    sink.write([("x",)])
    assert not path.exists()
    first = sink.close()
    assert sink.close() == first == {"rows": 1, "row_groups": 1, "bytes": path.stat().st_size}
    assert os.listdir(tmp_path) == ["o.parquet"]
    other = ParquetSink(tmp_path / "p.parquet", [("a", "text")])
    other.abort()
    assert os.listdir(tmp_path) == ["o.parquet"]


def test_bad_compression(tmp_path):
    with pytest.raises(ValueError, match="cannot write Parquet"):
        ParquetSink(tmp_path / "c.parquet", [("a", "text")], compression="nope")
    assert os.listdir(tmp_path) == []


def test_csv(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('id,"na,me",note,empty\n'
                    '1,"Smith, J.","line one\nline two",\n'
                    '007,"say ""hi""",,""\n'
                    '3,ü,plain,x\n', encoding="utf-8")
    assert list(read_rows(str(path))) == [[
        {"id": "1", "na,me": "Smith, J.", "note": "line one\nline two", "empty": None},
        {"id": "007", "na,me": 'say "hi"', "note": None, "empty": ""},
        {"id": "3", "na,me": "ü", "note": "plain", "empty": "x"},
    ]]


def test_csv_batches(tmp_path):
    path = tmp_path / "big.data"
    path.write_text("n,s\n" + "".join(f"{i},v{i}\n" for i in range(25)))
    batches = list(read_rows(path, "CSV", batch_rows=10))
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [r for b in batches for r in b] == [{"n": str(i), "s": f"v{i}"} for i in range(25)]


@pytest.mark.parametrize("text, message", [
    ("a,b\n1,2\n3\n", "malformed CSV file"), ("a,a\n1,2\n", "duplicate column name 'a'"), ("", "malformed CSV"),
])
def test_csv_malformed(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        list(read_rows(path))
    assert str(path) in str(err.value) and "Arrow" not in str(err.value)


def test_jsonl(tmp_path):
    path = tmp_path / "in.ndjson"
    path.write_text('\ufeff{"a": 1, "b": {"c": [1, 2]}}\n\n   \n{"a": null, "ü": "x"}\n{"a": 3}', encoding="utf-8")
    assert list(read_rows(path, batch_rows=2)) == [[{"a": 1, "b": {"c": [1, 2]}}, {"a": None, "ü": "x"}],
                                                   [{"a": 3}]]
    assert list(read_rows(path, "ndjson")) == list(read_rows(path, "jsonl", batch_rows=5))


@pytest.mark.parametrize("text, message", [
    ('{"a": 1}\n\n[1, 2]\n', "line 3: expected a JSON object, got an array"),
    ('{"a": 1}\n"s"\n', "line 2: expected a JSON object, got a string"),
    ('{"a": 1}\n{"a": \n', "line 2: not valid JSON"),
    (b'{"a": 1}\n{"a": "\xff"}\n', "line 2: not UTF-8"),
])
def test_jsonl_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=message) as err:
        list(read_rows(path))
    assert str(err.value).startswith(str(path))


def test_malformed_parquet_names_the_file(tmp_path):
    path = tmp_path / "junk.parquet"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ValueError, match="malformed Parquet file") as err:
        list(read_rows(str(path)))
    assert str(path) in str(err.value) and "ArrowInvalid" not in str(err.value)


def test_formats():
    assert [infer_format(n) for n in ("a.parquet", "B.PQ", "c.csv", "d.jsonl", "e.ndjson", "f.json",
                                      "s3://bucket/x.parquet?versionId=3", "https://h/p/data.CSV#frag")] == \
        ["parquet", "parquet", "csv", "jsonl", "jsonl", "jsonl", "parquet", "csv"]
    with pytest.raises(ValueError, match="parquet, csv or jsonl"):
        infer_format("data.xlsx")
    with pytest.raises(ValueError, match="expected one of parquet, csv, jsonl"):
        read_rows("x.parquet", "xlsx")  # checked at the call, before any file is opened
    with pytest.raises(ValueError, match="parquet, csv or jsonl"):
        read_rows("x.txt")
    with pytest.raises(ValueError, match="batch_rows"):
        read_rows("x.csv", batch_rows=0)
