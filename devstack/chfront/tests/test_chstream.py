"""Streamed results (chstream.py) against a real chDB: chfront started on a free port."""

import gzip
import http.client
import json
import os
import socket
import struct
import sys
import time
import urllib.parse
import uuid
import zlib

import lz4.block
import lz4.frame
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import chfront  # noqa: E402
import chstream  # noqa: E402
from test_chfront import Front, running_query_ids  # noqa: E402


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    f = Front(str(tmp_path_factory.mktemp("chstream")))
    f.start()
    yield f
    assert f.stop() == 0


@pytest.fixture(scope="module")
def front1(tmp_path_factory):
    """One pooled connection: a request that kept it would block every later one."""
    f = Front(str(tmp_path_factory.mktemp("chstream1")), ["--max-concurrent-queries", "1"])
    f.start()
    yield f
    assert f.stop() == 0


def address(front):
    host, port = urllib.parse.urlsplit(front.url).netloc.rsplit(":", 1)
    return host, int(port)


def is_streamed(headers):
    return headers.get("Transfer-Encoding") == "chunked" and headers.get("Content-Length") is None


def whole(front, sql, **params):
    """The result as chfront computes it without streaming (wait_end_of_query=1)."""
    status, headers, body = front.q(sql, wait_end_of_query="1", **params)
    assert status == 200, body
    assert not is_streamed(headers)
    return body


def rowbinary_rows(first, last):
    """RowBinary of SELECT number, repeat('x', 100) for numbers first..last-1."""
    return b"".join(struct.pack("<Q", n) + b"\x64" + b"x" * 100 for n in range(first, last))


def raw_exchange(front, sql, params=None, headers=None):
    """POSTs sql and reads the response to EOF: (status, headers, chunk payloads, whether the
    last chunk came). The chunked body is decoded here, so a transfer cut short is seen."""
    query = urllib.parse.urlencode(params or {})
    head = "POST /?%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % (query, len(sql))
    for k, v in (headers or {}).items():
        head += "%s: %s\r\n" % (k, v)
    with socket.create_connection(address(front), timeout=60) as conn:
        conn.sendall(head.encode() + b"\r\n" + sql.encode())
        data = bytearray()
        while True:
            got = conn.recv(1 << 16)
            if not got:
                break
            data += got
    data = bytes(data)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = dict(line.split(": ", 1) for line in lines[1:])
    assert hdrs.get("Transfer-Encoding") == "chunked", hdrs
    chunks, pos, ended = [], 0, False
    while pos < len(body):
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol], 16)
        if size == 0:
            ended = True
            break
        chunks.append(body[eol + 2:eol + 2 + size])
        assert body[eol + 2 + size:eol + 4 + size] == b"\r\n"
        pos = eol + 4 + size
    return status, hdrs, chunks, ended


def extract_exception_new(chunk, tag):
    """The clickhouse crate 0.15's reading of an exception block at the end of a chunk
    (src/response.rs: extract_exception / extract_exception_new), step by step."""
    assert chunk.endswith(b"__exception__\r\n")
    rem = chunk
    for suffix in (b"\r\n__exception__\r\n", tag, b" "):
        assert rem.endswith(suffix), rem[-60:]
        rem = rem[:len(rem) - len(suffix)]
    msg_len_start = rem.rfind(b"\n") + 1
    msg_len = int(rem[msg_len_start:].decode())
    assert 0 < msg_len <= msg_len_start
    return rem[msg_len_start - msg_len:msg_len_start].decode().strip()


def native_blocks(data):
    """The payloads of a native compressed stream (compress=1), checked block by block."""
    out, pos = [], 0
    while pos < len(data):
        method, csize, usize = struct.unpack_from("<BII", data, pos + 16)
        block = data[pos + 16:pos + 16 + csize]
        assert method == 0x82 and chfront._checksum(block) == data[pos:pos + 16]
        out.append(lz4.block.decompress(block[9:], uncompressed_size=usize))
        pos += 16 + csize
    assert pos == len(data)
    return out


def rss(front):
    with open("/proc/%d/status" % front.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def wait_gone(front, marker, timeout=30):
    deadline = time.monotonic() + timeout
    while running_query_ids(front, marker):
        assert time.monotonic() < deadline, "%s still running" % marker
        time.sleep(0.1)


# --------------------------------------------------------------------------


def test_the_first_bytes_of_a_large_result_come_while_the_query_runs(front):
    # 20M rows, 2.18 GB of RowBinary: computed whole, the first byte would come after all
    # of it, with all of it in memory.
    marker = "big_" + uuid.uuid4().hex
    sql = ("SELECT number, repeat('x', 100) AS %s FROM numbers(20000000) FORMAT RowBinary"
           % marker)
    before = rss(front)
    conn = http.client.HTTPConnection(*address(front), timeout=60)
    started = time.monotonic()
    conn.request("POST", "/", body=sql.encode())
    resp = conn.getresponse()
    first = resp.read(100)
    first_byte_after = time.monotonic() - started
    headers = dict(resp.getheaders())
    assert resp.status == 200 and is_streamed(headers), headers
    assert headers["X-ClickHouse-Format"] == "RowBinary"
    assert len(headers["X-ClickHouse-Exception-Tag"]) == 16
    summary = json.loads(headers["X-ClickHouse-Summary"])
    assert summary["result_rows"] == "0" and int(summary["elapsed_ns"]) > 0
    assert first == rowbinary_rows(0, 1)[:100]
    # the engine is still producing the result
    assert running_query_ids(front, marker), "the query ended before its first bytes came"
    # 200 MB of it, checked, while the front's memory stays far below the result's size
    rows, peak = 1 << 20, 0
    rest = resp.read(rows * 109 - 100)
    assert first + rest == rowbinary_rows(0, rows)
    for _ in range(100):
        assert len(resp.read(2 << 20)) == 2 << 20
        peak = max(peak, rss(front))
    assert peak - before < 300 << 20, (before, peak)
    # the client goes away: the query is cancelled
    resp.close()
    conn.close()
    wait_gone(front, marker)
    assert first_byte_after < 10, first_byte_after
    assert front.ok("SELECT 1") == b"1\n"


@pytest.mark.parametrize("fmt", [
    "RowBinary", "RowBinaryWithNamesAndTypes", "TSV", "TabSeparatedWithNamesAndTypes",
    "CSVWithNames", "JSONEachRow", "JSONCompactEachRowWithNames", "Native"])
def test_a_streamed_result_is_the_whole_result(front, fmt):
    sqls = [
        "SELECT number, toString(number) AS s, [number, 1] AS a, 'q\"\\n' AS `odd\"\\nname` "
        "FROM numbers(300000)",
        "SELECT number % 200000 AS k, count() AS c FROM numbers(400000) GROUP BY k "
        "WITH TOTALS ORDER BY k",
        "SELECT number, toString(number) AS s FROM numbers(300000) SETTINGS extremes = 1",
        "SELECT number FROM numbers(10) WHERE number > 100",  # empty: a header at most
    ]
    for sql in sqls:
        sql = "%s FORMAT %s" % (sql, fmt)
        status, headers, body = front.q(sql)
        assert status == 200, body
        assert is_streamed(headers) == ("numbers(10)" not in sql), (sql, headers)
        assert body == whole(front, sql), sql


def test_streamed_rowbinary_and_tsv_are_exact(front):
    sql = "SELECT number, repeat('x', 100) FROM numbers(200000)"
    status, headers, body = front.q(sql + " FORMAT RowBinary")
    assert is_streamed(headers) and body == rowbinary_rows(0, 200000)
    status, headers, body = front.q("SELECT number, toString(number * 3) FROM numbers(300000)",
                                    default_format="TSV")
    assert is_streamed(headers)
    assert body == b"".join(b"%d\t%d\n" % (n, n * 3) for n in range(300000))


def test_a_keep_alive_connection_serves_requests_after_a_stream(front):
    conn = http.client.HTTPConnection(*address(front), timeout=60)
    for n in (200000, 300000, 5):
        conn.request("POST", "/", body=b"SELECT number FROM numbers(%d)" % n)
        resp = conn.getresponse()
        assert is_streamed(dict(resp.getheaders())) == (n > 5)
        assert resp.read() == b"".join(b"%d\n" % i for i in range(n))
    conn.close()


def test_streamed_compression(front):
    sql = "SELECT number, toString(number) FROM numbers(1000000) FORMAT TSV"
    expected = b"".join(b"%d\t%d\n" % (n, n) for n in range(1000000))
    # native blocks: the same 1 MiB blocks as the whole result's, so the same bytes
    status, headers, body = front.q(sql, compress="1")
    assert is_streamed(headers)
    assert body == whole(front, sql, compress="1")
    blocks = native_blocks(body)
    assert b"".join(blocks) == expected and {len(b) for b in blocks[:-1]} == {1 << 20}
    # HTTP compression, with both
    decoders = {"gzip": gzip.decompress, "deflate": zlib.decompress,
                "lz4": lz4.frame.decompress}
    for enc, decode in decoders.items():
        for compress in ("0", "1"):
            status, headers, body = front.request(
                "/?enable_http_compression=1&compress=" + compress, data=sql.encode(),
                headers={"Accept-Encoding": enc})
            assert status == 200 and is_streamed(headers) and headers["Content-Encoding"] == enc
            got = decode(body)
            assert (b"".join(native_blocks(got)) if compress == "1" else got) == expected


def test_a_client_that_leaves_mid_stream_frees_its_connection(front1):
    default = front1.ok("SELECT getSetting('max_threads'), getSetting('max_block_size')")
    for how in ("close", "reset"):
        marker = "left_" + uuid.uuid4().hex
        sql = ("SELECT number, repeat('x', 100) AS %s FROM numbers(1000000000) "
               "FORMAT RowBinary" % marker)
        conn = http.client.HTTPConnection(*address(front1), timeout=60)
        conn.request("POST", "/?max_threads=1&max_block_size=10000", body=sql.encode())
        resp = conn.getresponse()
        assert is_streamed(dict(resp.getheaders()))
        assert len(resp.read(5 << 20)) == 5 << 20
        if how == "reset":  # an RST rather than a FIN
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()
        resp.close()
        conn.close()
        # the one connection serves the next request, its settings reset
        assert front1.ok("SELECT getSetting('max_threads'), getSetting('max_block_size')") == \
            default
        wait_gone(front1, marker)
        assert front1.ok("SELECT sum(number) FROM numbers(1000)") == b"499500\n"


def test_an_error_mid_stream_ends_the_body_as_clickhouse_does(front):
    sql = ("SELECT number, repeat('x', 100) FROM numbers(1000000) "
           "WHERE throwIf(number = 400000, 'boom mid-stream') = 0 "
           "SETTINGS max_threads = 1, max_block_size = 65536 FORMAT RowBinary")
    status, headers, chunks, ended = raw_exchange(front, sql)
    assert status == 200 and not ended  # no last chunk: the transfer is broken
    assert "X-ClickHouse-Exception-Code" not in headers
    tag = headers["X-ClickHouse-Exception-Tag"].encode()
    message = extract_exception_new(chunks[-1], tag)
    assert message.startswith("Code: 395. DB::Exception: boom mid-stream")
    assert message.endswith("(version %s (official build))" % front.ok(
        "SELECT version()").decode().strip())
    assert chunks[-1] == chstream.exception_block(message + "\n", tag.decode())
    data = b"".join(chunks[:-1])  # whole rows before the failing block
    assert len(data) % 109 == 0 and data == rowbinary_rows(0, len(data) // 109)

    # compress=1: the exception is a native block of its own, in a chunk of its own
    status, headers, chunks, ended = raw_exchange(front, sql, {"compress": "1"})
    assert status == 200 and not ended
    tag = headers["X-ClickHouse-Exception-Tag"].encode()
    last = native_blocks(chunks[-1])
    assert len(last) == 1 and extract_exception_new(last[0], tag) == message
    data = b"".join(native_blocks(b"".join(chunks[:-1])))
    assert data == rowbinary_rows(0, len(data) // 109)

    # Content-Encoding lz4 (the clickhouse crate's Accept-Encoding): a frame block of its own
    status, headers, chunks, ended = raw_exchange(
        front, sql, {"enable_http_compression": "1"}, {"Accept-Encoding": "lz4"})
    assert status == 200 and not ended and headers["Content-Encoding"] == "lz4"
    decoder = lz4.frame.LZ4FrameDecompressor()
    data = b"".join(decoder.decompress(c) for c in chunks[:-1])
    assert data == rowbinary_rows(0, len(data) // 109)
    last = decoder.decompress(chunks[-1])
    assert extract_exception_new(last, headers["X-ClickHouse-Exception-Tag"].encode()) == message


def test_max_execution_time_mid_stream(front):
    # 300 kB rows, one per block, 50 ms each: streaming after 4 rows, stopped at 2 s
    sql = ("SELECT number, repeat('x', 300000) FROM numbers(1000) WHERE sleepEachRow(0.05) = 0 "
           "SETTINGS max_block_size = 1, max_threads = 1, max_execution_time = 2 FORMAT TSV")
    started = time.monotonic()
    status, headers, chunks, ended = raw_exchange(front, sql)
    assert time.monotonic() - started < 15
    assert status == 200 and not ended and len(chunks) > 1
    message = extract_exception_new(chunks[-1], headers["X-ClickHouse-Exception-Tag"].encode())
    assert message.startswith("Code: 159. DB::Exception: Timeout exceeded"), message


def test_an_error_before_the_first_byte_is_an_error_response(front):
    status, headers, body = front.q(
        "SELECT number, repeat('x', 100), throwIf(number = 10, 'boom early') "
        "FROM numbers(1000000) FORMAT RowBinary")
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "395"
    assert body.startswith(b"Code: 395. DB::Exception: boom early")
    assert "X-ClickHouse-Exception-Tag" not in headers
    status, headers, body = front.q("SELECT * FROM no_such_table FORMAT RowBinary")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "60"


def test_settings_and_database_stay_with_their_streamed_request(front1):
    front1.ok("CREATE DATABASE IF NOT EXISTS iso_stream")
    sql = "SELECT currentDatabase(), number FROM numbers(200000) FORMAT TSV"
    status, headers, body = front1.q(sql, database="iso_stream",
                                     output_format_tsv_crlf_end_of_line="1")
    assert status == 200 and is_streamed(headers)
    assert body == b"".join(b"iso_stream\t%d\r\n" % n for n in range(200000))
    status, headers, body = front1.q(sql)
    assert status == 200 and is_streamed(headers)
    assert body == b"".join(b"default\t%d\n" % n for n in range(200000))
    assert front1.ok("SELECT getSetting('output_format_tsv_crlf_end_of_line')") == b"false\n"
    # a setting of the streamed request that fails it mid-stream does not stay either
    status, headers, chunks, ended = raw_exchange(
        front1, sql.replace("200000", "1000000"),
        {"max_result_rows": "500000", "result_overflow_mode": "throw",
         "max_block_size": "10000"})
    assert not ended
    assert "TOO_MANY_ROWS_OR_BYTES" in extract_exception_new(
        chunks[-1], headers["X-ClickHouse-Exception-Tag"].encode())
    assert front1.ok("SELECT getSetting('max_result_rows'), getSetting('max_block_size')") \
        .split()[0] == b"0"
    assert front1.ok(sql.replace("200000", "3")) == b"default\t0\ndefault\t1\ndefault\t2\n"


def test_what_does_not_stream(front):
    # JSON: chDB writes each block as a document of its own, so it is computed whole
    status, headers, body = front.q("SELECT number FROM numbers(300000) FORMAT JSON")
    assert status == 200 and not is_streamed(headers)
    assert len(json.loads(body)["data"]) == 300000
    # a small result goes out whole, its summary complete
    status, headers, body = front.q("SELECT count() FROM numbers(100000)")
    assert body == b"100000\n" and not is_streamed(headers)
    assert json.loads(headers["X-ClickHouse-Summary"])["read_rows"] == "100000"
    # a prefix and suffix set for the rows
    status, headers, body = front.q(
        "SELECT number FROM numbers(300000) FORMAT JSONEachRow",
        output_format_json_array_of_rows="1")
    assert not is_streamed(headers) and len(json.loads(body)) == 300000
    # names and types, the types in binary: not the header chfront cuts from each block
    sql = "SELECT number, toString(number) FROM numbers(300000) FORMAT RowBinaryWithNamesAndTypes"
    status, headers, body = front.q(
        sql, output_format_binary_encode_types_in_binary_format="1")
    assert status == 200 and not is_streamed(headers)
    assert not chstream.streamable("INSERT_SELECT", "RowBinary", b"", {})
    assert chstream.streamable("WITH", "rowbinarywithnamesandtypes", b"WITH 1 AS x SELECT x", {})


def test_the_exception_block_is_the_crates():
    # clickhouse 0.15 src/response.rs, it_extracts_exception_new
    chunk = (b"\r\n__exception__\r\nrnywyenlaeqynhmu\r\nCode: 159. DB::Exception: Timeout "
             b"exceeded: elapsed 126.147987 ms, maximum: 100 ms. (TIMEOUT_EXCEEDED) (version "
             b"25.12.1.649 (official build))\n142 rnywyenlaeqynhmu\r\n__exception__\r\n")
    text = chunk.split(b"\r\n")[3].split(b"\n")[0].decode()
    assert chstream.exception_block(text, "rnywyenlaeqynhmu") == chunk
    # a long message is cut so the block stays within 16 KiB
    block = chstream.exception_block("Code: 1. " + "y" * 20000, "t" * 16)
    assert len(block) <= 16 * 1024 and extract_exception_new(block, b"t" * 16).startswith("Code")
