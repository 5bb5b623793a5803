"""Tests of chfront against a real chDB: started on a free port, temp data dir."""

import concurrent.futures
import gzip
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import lz4.block
import lz4.frame
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import chfront  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Front:
    def __init__(self, data_dir, args=(), env=None):
        self.data_dir = data_dir
        self.args = list(args)
        self.env = env
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(HERE), "chfront.py"),
             "--port", str(self.port), "--data", self.data_dir] + self.args,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=None if self.env is None else dict(os.environ, **self.env))
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if self.get("/ping")[2] == b"Ok.\n":
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("chfront did not start: %s" % self.proc.stderr.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        self.proc.stderr.close()
        return rc

    def request(self, path, data=None, headers=None, method=None):
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {},
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def get(self, path, **kw):
        return self.request(path, **kw)

    def q(self, sql, data=None, **params):
        params = dict(params)
        if data is None:
            return self.request("/?" + urllib.parse.urlencode(params), data=sql.encode())
        params["query"] = sql
        return self.request("/?" + urllib.parse.urlencode(params), data=data)

    def ok(self, sql, data=None, **params):
        status, headers, body = self.q(sql, data, **params)
        assert status == 200, body
        return body


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    f = Front(str(tmp_path_factory.mktemp("chdata")))
    f.start()
    yield f
    assert f.stop() == 0


def rowbinary(rows):
    out = bytearray()
    for a, s in rows:
        b = s.encode()
        out += struct.pack("<I", a)
        out += bytes([len(b)])  # LEB128, short strings only
        out += b
    return bytes(out)


def test_ping_and_root(front):
    assert front.get("/ping")[2] == b"Ok.\n"
    assert front.get("/")[2] == b"Ok.\n"
    assert front.get("/nope")[0] == 404


def test_select_get_and_post(front):
    status, headers, body = front.get("/?query=SELECT+1")
    assert (status, body) == (200, b"1\n")
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert "X-ClickHouse-Query-Id" in headers
    json.loads(headers["X-ClickHouse-Summary"])
    assert front.ok("SELECT 2") == b"2\n"
    # URL query + body are concatenated
    assert front.request("/?query=SELECT", data=b"3")[2] == b"3\n"
    assert front.ok("SELECT 1 AS x FORMAT JSONEachRow") == b'{"x":1}\n'
    assert front.ok("SELECT 1 AS x", default_format="CSVWithNames") == b'"x"\n1\n'
    assert front.ok("SELECT 4;") == b"4\n"


def test_get_is_readonly(front):
    status, headers, body = front.get("/?query=" + urllib.parse.quote(
        "CREATE TABLE ro (a UInt8) ENGINE=Memory"))
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "164"


def test_database_param(front):
    front.ok("CREATE DATABASE IF NOT EXISTS dbp")
    front.ok("CREATE TABLE t (a UInt8) ENGINE=MergeTree ORDER BY a", database="dbp")
    front.ok("INSERT INTO t VALUES (7)", database="dbp")
    assert front.ok("SELECT currentDatabase(), a FROM t", database="dbp") == b"dbp\t7\n"
    assert front.ok("SELECT currentDatabase()") == b"default\n"
    status, headers, _ = front.q("SELECT 1", database="no_such_db")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "81"


def test_params(front):
    body = front.ok("SELECT {a:UInt32} + 1, {s:String}", param_a="41", param_s="it's")
    assert body == b"42\tit\\'s\n"
    # multipart form, as the Rust crate sends .param()
    boundary = "XyZ"
    parts = []
    for k, v in (("query", "SELECT {n:Int64} * 2"), ("param_n", "-21")):
        parts.append('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
                     % (boundary, k, v))
    data = ("".join(parts) + "--%s--\r\n" % boundary).encode()
    status, _, body = front.request("/", data=data, headers={
        "Content-Type": "multipart/form-data; boundary=" + boundary})
    assert (status, body) == (200, b"-42\n")


def test_settings_per_request(front):
    status, headers, body = front.q("SELECT number FROM numbers(10)", max_result_rows="3")
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "396"
    assert body.startswith(b"Code: 396. DB::Exception")
    # not leaked into the next request
    assert front.ok("SELECT count() FROM (SELECT number FROM numbers(10))") == b"10\n"
    assert front.ok("SELECT getSetting('max_result_rows')") == b"0\n"
    assert front.ok("SELECT getSetting('max_threads')", max_threads="3") == b"3\n"
    status, headers, _ = front.q("SELECT 1", no_such_setting_here="1")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "115"


def test_error_shape(front):
    status, headers, body = front.q("SELEC 1")
    assert status == 400
    assert headers["X-ClickHouse-Exception-Code"] == "62"
    assert body.startswith(b"Code: 62. DB::Exception")
    assert b"(SYNTAX_ERROR)" in body and body.endswith(b"\n")
    status, headers, body = front.q("SELECT * FROM no_such_table")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "60"
    status, headers, body = front.q("SELECT 1; SELECT 2")
    assert status == 400 and b"Multi-statements" in body


def test_insert_formats(front):
    front.ok("CREATE TABLE ins (a UInt32, s String) ENGINE=MergeTree ORDER BY a")
    front.ok("INSERT INTO ins FORMAT RowBinary", data=rowbinary([(1, "a"), (2, "b\tc")]))
    front.ok("INSERT INTO ins (a, s) FORMAT JSONEachRow", data=b'{"a":3,"s":"x"}\n')
    front.ok("INSERT INTO ins FORMAT TSV\n4\tq\n")  # data inline in the body
    front.ok("INSERT INTO ins VALUES", data=b"(5, 'v')")
    front.ok("INSERT INTO ins SETTINGS max_threads=1 FORMAT CSV", data=b"6,\"c\"\n")
    front.ok("INSERT INTO ins SELECT 7, 'sel'")
    assert front.ok("SELECT a, s FROM ins ORDER BY a") == \
        b"1\ta\n2\tb\\tc\n3\tx\n4\tq\n5\tv\n6\tc\n7\tsel\n"


def test_insert_decompress(front):
    front.ok("CREATE TABLE insz (a UInt32, s String) ENGINE=MergeTree ORDER BY a")
    raw = rowbinary([(i, "row%d" % i) for i in range(1000)])
    front.ok("INSERT INTO insz FORMAT RowBinary", data=chfront.native_compress(raw),
             decompress="1")
    assert front.ok("SELECT count(), sum(a) FROM insz") == b"1000\t499500\n"
    # uncompressed method byte 0x02 is accepted too
    block = struct.pack("<BII", 0x02, len(raw) + 9, len(raw)) + raw
    front.ok("INSERT INTO insz FORMAT RowBinary", data=chfront._checksum(block) + block,
             decompress="1")
    assert front.ok("SELECT count() FROM insz") == b"2000\n"
    # corrupted checksum
    bad = bytearray(chfront.native_compress(raw))
    bad[0] ^= 0xFF
    status, headers, body = front.q("INSERT INTO insz FORMAT RowBinary", bytes(bad),
                                    decompress="1")
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "40"
    assert b"Checksum doesn't match" in body
    assert front.ok("SELECT count() FROM insz") == b"2000\n"


def test_compress_output(front):
    status, headers, body = front.q("SELECT number FROM numbers(300000)", compress="1")
    assert status == 200
    out, pos = [], 0
    while pos < len(body):
        checksum = body[pos:pos + 16]
        method, csize, usize = struct.unpack_from("<BII", body, pos + 16)
        block = body[pos + 16:pos + 16 + csize]
        assert method == 0x82 and usize <= 1 << 20
        assert chfront._checksum(block) == checksum
        out.append(lz4.block.decompress(block[9:], uncompressed_size=usize))
        pos += 16 + csize
    data = b"".join(out)
    assert len(out) > 1
    assert data == b"".join(b"%d\n" % i for i in range(300000))


def test_http_compression(front):
    for enc, dec in (("gzip", gzip.decompress), ("lz4", lz4.frame.decompress)):
        status, headers, body = front.request(
            "/?enable_http_compression=1", data=b"SELECT 'hello'",
            headers={"Accept-Encoding": enc})
        assert headers["Content-Encoding"] == enc
        assert dec(body) == b"hello\n"
    status, headers, body = front.request(
        "/", data=gzip.compress(b"SELECT 5"), headers={"Content-Encoding": "gzip"})
    assert body == b"5\n"


def test_dedup_token(front):
    front.ok("CREATE TABLE dd (a UInt32, s String) ENGINE=MergeTree ORDER BY a "
             "SETTINGS non_replicated_deduplication_window = 100")
    data = rowbinary([(1, "x"), (2, "y")])
    for _ in range(3):
        front.ok("INSERT INTO dd FORMAT RowBinary", data=data, insert_deduplication_token="t1")
    front.ok("INSERT INTO dd FORMAT RowBinary", data=data, insert_deduplication_token="t2")
    assert front.ok("SELECT count() FROM dd") == b"4\n"


def send_raw_and_close(front, head, body_part):
    """Sends a request whose body stops early, then closes the connection."""
    host, port = urllib.parse.urlsplit(front.url).netloc.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head + body_part)
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(10)
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass


def test_a_body_cut_short_runs_nothing(front):
    # A client whose connection dies between two chunks of an INSERT must not leave part of
    # its rows behind under its deduplication token: its retry would then be dropped whole.
    front.ok("CREATE TABLE cut (a UInt32, s String) ENGINE=MergeTree ORDER BY a "
             "SETTINGS non_replicated_deduplication_window = 100")
    query = urllib.parse.urlencode({"query": "INSERT INTO cut FORMAT RowBinary",
                                    "insert_deduplication_token": "cut1"})
    first_chunk = rowbinary([(1, "x"), (2, "y")])
    chunked_head = ("POST /?%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    % query).encode()
    chunk = b"%x\r\n%s\r\n" % (len(first_chunk), first_chunk)
    send_raw_and_close(front, chunked_head, chunk)  # ends between chunks
    send_raw_and_close(front, chunked_head, chunk[:5])  # ends inside a chunk
    whole = rowbinary([(1, "x"), (2, "y"), (3, "z")])
    sized_head = ("POST /?%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                  % (query, len(whole))).encode()
    send_raw_and_close(front, sized_head, whole[:len(first_chunk)])  # short Content-Length
    assert front.ok("SELECT count() FROM cut") == b"0\n"
    # The retry, complete this time, lands in full under the same token.
    front.ok("INSERT INTO cut FORMAT RowBinary", data=whole, insert_deduplication_token="cut1")
    assert front.ok("SELECT count() FROM cut") == b"3\n"


def test_concurrent_inserts_and_selects(front):
    front.ok("CREATE TABLE conc (w UInt32, i UInt32) ENGINE=MergeTree ORDER BY (w, i)")

    def insert(w):
        rows = b"".join(b"%d\t%d\n" % (w, i) for i in range(500))
        for _ in range(5):
            front.ok("INSERT INTO conc FORMAT TSV", data=rows)
        return True

    def select(n):
        for _ in range(10):
            assert front.ok("SELECT %d, count() >= 0 FROM conc" % n) == b"%d\t1\n" % n
            status, _, _ = front.q("SELECT number FROM numbers(100)", max_result_rows="5")
            assert status == 500
        return True

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(insert, w) for w in range(4)] + \
               [ex.submit(select, n) for n in range(4)]
        assert all(f.result(timeout=120) for f in futs)
    assert front.ok("SELECT count(), uniqExact(w) FROM conc") == b"10000\t4\n"


# --------------------------------------------------------------------------
# Concurrency: each running request has a pooled chDB connection of its own.


@pytest.fixture(scope="module")
def front1(tmp_path_factory):
    """A front with one pooled connection: consecutive requests share it."""
    f = Front(str(tmp_path_factory.mktemp("chdata1")), ["--max-concurrent-queries", "1"])
    f.start()
    yield f
    assert f.stop() == 0


def sql_str(v):
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def running_query_ids(front, marker):
    """The ids of the running queries whose text contains marker (this one excepted)."""
    return front.ok("SELECT query_id FROM system.processes WHERE query LIKE %s "
                    "AND query_id != queryID()" % sql_str("%" + marker + "%")).split()


def wait_running(front, marker):
    """The query id of the query containing marker, once the engine runs it. The polls go
    through the front while that query runs: with one engine for all requests, they would
    wait for it to end and never see it."""
    deadline = time.monotonic() + 60
    while True:
        ids = running_query_ids(front, marker)
        if ids:
            return ids[0].decode()
        assert time.monotonic() < deadline, "%s never seen running" % marker
        time.sleep(0.05)


def kill(front, query_id):
    front.ok("KILL QUERY WHERE query_id = %s SYNC" % sql_str(query_id))


@pytest.mark.parametrize("slow_sql", [
    # sleeps a second per row, 50 rows: ends when killed
    "SELECT sleepEachRow(1) AS {m} FROM numbers(50) SETTINGS max_block_size = 1",
    # one core busy for hours: ends when killed
    "SELECT sum(cityHash64(number)) AS {m} FROM numbers(1000000000000) "
    "SETTINGS max_threads = 1",
], ids=["sleeping", "cpu_bound"])
def test_a_slow_query_does_not_block_fast_ones(front, slow_sql):
    marker = "slow_" + uuid.uuid4().hex
    front.ok("CREATE TABLE %s (a UInt32) ENGINE=MergeTree ORDER BY a" % marker)
    finished = []

    def slow():
        try:
            return front.q(slow_sql.format(m=marker))
        finally:
            finished.append("slow")

    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(slow)
        query_id = wait_running(front, marker)
        # a read, an insert and a read of it, all while the slow query runs
        assert front.ok("SELECT 1") == b"1\n"
        front.ok("INSERT INTO %s FORMAT RowBinary" % marker, data=struct.pack("<II", 1, 2))
        assert front.ok("SELECT count() FROM %s" % marker) == b"2\n"
        finished.append("fast")
        assert finished == ["fast"]
        assert running_query_ids(front, marker) == [query_id.encode()]
        kill(front, query_id)
        status, headers, body = fut.result(timeout=60)
    assert finished == ["fast", "slow"]
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "394", body
    assert b"QUERY_WAS_CANCELLED" in body
    assert front.ok("SELECT 2") == b"2\n"  # the killed query's connection serves again


def test_concurrent_inserts_and_selects_count_exactly(front):
    front.ok("CREATE TABLE exact (a UInt32, s String) ENGINE=MergeTree ORDER BY a")
    writers, inserts, rows = 6, 8, 500
    writers_done = []

    def insert(w):
        for k in range(inserts):
            first = (w * inserts + k) * rows
            batch = [(first + i, "w%d" % w) for i in range(rows)]
            if w % 3 == 0:
                front.ok("INSERT INTO exact FORMAT RowBinary", data=rowbinary(batch))
            elif w % 3 == 1:  # compressed, as the Rust client sends by default
                front.ok("INSERT INTO exact FORMAT RowBinary",
                         data=chfront.native_compress(rowbinary(batch)), decompress="1")
            else:
                front.ok("INSERT INTO exact FORMAT TSV",
                         data=b"".join(b"%d\t%s\n" % (a, s.encode()) for a, s in batch))
        writers_done.append(w)
        return inserts * rows

    def select():
        seen = []
        while len(writers_done) < writers or len(seen) < 5:
            count, batches = map(int, front.ok(
                "SELECT count(), uniqExact(intDiv(a, %d)) FROM exact" % rows).split())
            assert count == batches * rows, count  # an INSERT lands whole or not at all
            seen.append(count)
        assert seen == sorted(seen), seen  # and stays
        return seen

    with concurrent.futures.ThreadPoolExecutor(writers + 3) as ex:
        ins = [ex.submit(insert, w) for w in range(writers)]
        sel = [ex.submit(select) for _ in range(3)]
        assert sum(f.result(timeout=300) for f in ins) == writers * inserts * rows
        for f in sel:
            f.result(timeout=300)
    n = writers * inserts * rows
    assert front.ok("SELECT count(), sum(a), uniqExact(a), uniqExact(s) FROM exact") == \
        b"%d\t%d\t%d\t%d\n" % (n, n * (n - 1) // 2, n, writers)


def test_settings_do_not_leak_into_the_next_request_on_a_pooled_connection(front1):
    default = front1.ok("SELECT getSetting('max_threads'), getSetting('max_result_rows')")
    assert default.split()[1] == b"0"
    assert front1.ok("SELECT getSetting('max_threads'), getSetting('max_result_rows')",
                     max_threads="1", max_result_rows="7") == b"1\t7\n"
    assert front1.ok("SELECT getSetting('max_threads'), getSetting('max_result_rows')") == \
        default
    # a setting that applies, then one the engine refuses: neither stays
    status, headers, _ = front1.q("SELECT 1", max_threads="1", max_block_size="lots")
    assert status != 200
    assert front1.ok("SELECT getSetting('max_threads'), getSetting('max_result_rows')") == \
        default
    # a query that fails under its settings
    status, headers, _ = front1.q("SELECT number FROM numbers(10)", max_result_rows="3")
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "396"
    assert front1.ok("SELECT count() FROM (SELECT number FROM numbers(10))") == b"10\n"
    # SET without a session lasts for its request only, as on clickhouse-server
    front1.ok("SET max_result_rows = 1")
    assert front1.ok("SELECT getSetting('max_threads'), getSetting('max_result_rows')") == \
        default


def test_the_database_does_not_leak_into_the_next_request_on_a_pooled_connection(front1):
    front1.ok("CREATE DATABASE IF NOT EXISTS iso")
    assert front1.ok("SELECT currentDatabase()", database="iso") == b"iso\n"
    assert front1.ok("SELECT currentDatabase()") == b"default\n"
    for use in ("USE iso", "/* a comment first */ USE iso"):
        front1.ok(use)
        assert front1.ok("SELECT currentDatabase()") == b"default\n", use
    front1.ok("USE iso", database="default")
    assert front1.ok("SELECT currentDatabase()", database="iso") == b"iso\n"
    status, headers, _ = front1.q("SELECT 1", database="no_such_db")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "81"
    assert front1.ok("SELECT currentDatabase()") == b"default\n"
    assert front1.ok("SELECT currentDatabase()", database="iso") == b"iso\n"


def test_a_temporary_table_does_not_outlive_its_request(front1):
    front1.ok("CREATE TEMPORARY TABLE tmp_iso (a UInt8) ENGINE = Memory")
    status, headers, _ = front1.q("SELECT * FROM tmp_iso")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "60"


def test_requests_beyond_the_pool_wait_and_see_only_their_own_settings(front, front1):
    for f in (front, front1):
        f.ok("CREATE DATABASE IF NOT EXISTS iso_a")
        f.ok("CREATE DATABASE IF NOT EXISTS iso_b")
    default = front.ok("SELECT getSetting('max_threads')").strip()

    def client(f, i):
        database = ("default", "iso_a", "iso_b")[i % 3]
        for k in range(8):
            params = {"param_i": str(i)}
            want_threads = default
            if (i + k) % 2:
                params["max_threads"] = str(i + 1)
                want_threads = b"%d" % (i + 1)
            if k % 2:
                params["database"] = database
            got = f.ok("SELECT getSetting('max_threads'), currentDatabase(), {i:UInt32}",
                       **params)
            assert got == b"%s\t%s\t%d\n" % (
                want_threads, (database if k % 2 else "default").encode(), i), (i, k)
        return True

    # 12 clients on 8 connections, then on 1: some wait for a free connection
    for f in (front, front1):
        with concurrent.futures.ThreadPoolExecutor(12) as ex:
            futs = [ex.submit(client, f, i) for i in range(12)]
            assert all(fut.result(timeout=300) for fut in futs)


def test_sigterm_lets_running_queries_finish(tmp_path):
    f = Front(str(tmp_path / "data"))
    f.start()
    marker = "term_" + uuid.uuid4().hex
    sql = ("SELECT count(), sum(sleepEachRow(0.5)) AS %s FROM numbers(6) "
           "SETTINGS max_block_size = 1" % marker)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            fut = ex.submit(f.q, sql)
            wait_running(f, marker)
            f.proc.send_signal(signal.SIGTERM)
            status, _, body = fut.result(timeout=60)
        assert (status, body) == (200, b"6\t0\n")
    finally:
        rc = f.proc.wait(60)
        f.proc.stderr.close()
    assert rc == 0


def test_profile_lines(tmp_path):
    profile = tmp_path / "profile.tsv"
    f = Front(str(tmp_path / "data"), ["--max-concurrent-queries", "2"],
              env={"CHFRONT_PROFILE": str(profile)})
    f.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            futs = [ex.submit(f.ok, "SELECT %d" % i) for i in range(4)]
            assert sorted(fut.result(timeout=60) for fut in futs) == \
                [b"%d\n" % i for i in range(4)]
    finally:
        assert f.stop() == 0
    lines = profile.read_text().splitlines()
    assert len(lines) == 4
    for line in lines:
        at, elapsed, wait, settings, size, text = line.split("\t")
        assert float(elapsed) >= float(wait) >= 0 and float(settings) >= 0
        assert int(size) == len(text) and text.startswith("SELECT ")


def test_max_concurrent_queries_must_be_positive(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(HERE), "chfront.py"),
                        "--max-concurrent-queries", "0", "--data", str(tmp_path)],
                       capture_output=True, timeout=60)
    assert r.returncode == 2 and b"at least 1" in r.stderr


def test_persistence_across_restart(tmp_path):
    f = Front(str(tmp_path / "data"))
    f.start()
    try:
        f.ok("CREATE DATABASE p")
        f.ok("CREATE TABLE p.t (a UInt32) ENGINE=MergeTree ORDER BY a")
        f.ok("INSERT INTO p.t FORMAT TSV", data=b"1\n2\n3\n")
    finally:
        assert f.stop() == 0
    f2 = Front(f.data_dir)
    f2.start()
    try:
        assert f2.ok("SELECT sum(a) FROM p.t") == b"6\n"
    finally:
        assert f2.stop() == 0


def test_lexer():
    st = chfront.analyze(b"INSERT INTO t (a) SETTINGS x=1 FORMAT RowBinary\n\x00\n\x01")
    assert st.insert_format == "RowBinary"
    assert st.insert_head == b"INSERT INTO t (a) "
    assert st.insert_settings == b"SETTINGS x=1 "
    assert b"INSERT INTO t (a) SETTINGS x=1 FORMAT RowBinary\n\x00\n\x01"[st.data_start:] \
        == b"\x00\n\x01"
    st = chfront.analyze(b"SELECT 'FORMAT x; y' AS `FORMAT` -- FORMAT z\nFORMAT JSON")
    assert st.kind == "SELECT" and st.out_format == "JSON"
    assert chfront.analyze(b"INSERT INTO t SELECT 1").kind == "INSERT_SELECT"
    with pytest.raises(chfront.CHError):
        chfront.analyze(b"SELECT 1; DROP TABLE x")
