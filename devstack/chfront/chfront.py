#!/usr/bin/env python3
"""chfront: ClickHouse's HTTP interface in front of embedded chDB (the ClickHouse engine).

Dev-stack stand-in for a ClickHouse server (no Docker here). Serves the HTTP
protocol that ClickHouse clients speak (the Rust `clickhouse` crate, curl):
query in the URL and/or body, INSERT data in the body, `param_*` and multipart
query parameters, per-request settings, native block compression
(`compress`/`decompress`), HTTP compression (`enable_http_compression`),
ClickHouse-shaped errors.

Usage: chfront.py [--host 127.0.0.1] [--port 8123] [--data DIR]
                  [--max-concurrent-queries N]

Requests run concurrently, as on clickhouse-server: each running query has a
chDB connection of its own, taken from a pool of connections to the one data
path (chpool.py; separate connections run their queries at the same time, one
connection runs one at a time). At most N (--max-concurrent-queries, or
CHFRONT_MAX_CONCURRENT_QUERIES; 8) run at once; more wait for a free
connection. The request's `database` (USE) and settings (SET) are applied on
its connection and undone before the connection serves another request (the
settings reset, the database set again when it differs); a connection whose
state cannot be restored that way (a reset failed, CREATE TEMPORARY TABLE) is
closed instead of reused, so nothing leaks between requests.

Results stream as on clickhouse-server (chstream.py): a SELECT in a row format
(RowBinary[WithNamesAndTypes], TSV, CSV, JSONEachRow, Native, ...) longer than
1 MiB is sent chunked as the engine produces it, its connection taken until the
stream ends. Anything else is computed whole and sent, with Content-Length,
once its connection is back in the pool: a slow reader holds none.

SIGTERM/SIGINT: stop accepting, let in-flight requests finish, close the
connections, exit 0.

Profiling: with CHFRONT_PROFILE=<file>, one TSV line per query is appended:
unix time at the end, elapsed ms, ms waited for a pooled connection (the
"lock wait": nonzero when N queries were running already), ms spent on USE/SET
before the query, request bytes, and the start of the query text.
"""

import argparse
import base64
import contextlib
import gzip
import json
import os
import re
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import lz4.block
import lz4.frame
from clickhouse_cityhash.cityhash import CityHash128

import chpool
import chstream

DEBUG = os.environ.get("CHFRONT_DEBUG", "") not in ("", "0")

# --------------------------------------------------------------------------
# Errors


class CHError(Exception):
    """An error reported to the client the way ClickHouse reports it."""

    def __init__(self, code, message, name=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.name = name


class ClientGone(Exception):
    """The request body ended early: the connection is closed without running anything."""


# ClickHouse's src/Server/HTTP/exceptionCodeToHTTPStatus.cpp, by error name.
_STATUS_BY_NAME = {}
for _n in ("REQUIRED_PASSWORD",):
    _STATUS_BY_NAME[_n] = 401
for _n in ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED",
           "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"):
    _STATUS_BY_NAME[_n] = 403
for _n in ("BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT",
           "CANNOT_PARSE_ESCAPE_SEQUENCE", "CANNOT_PARSE_QUOTED_STRING",
           "CANNOT_PARSE_DATE", "CANNOT_PARSE_DATETIME", "CANNOT_PARSE_NUMBER",
           "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING", "CANNOT_PARSE_IPV4",
           "CANNOT_PARSE_IPV6", "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
           "CANNOT_PARSE_UUID", "DUPLICATE_COLUMN", "ILLEGAL_COLUMN",
           "UNKNOWN_ELEMENT_IN_AST", "UNKNOWN_TYPE_OF_AST_NODE",
           "THERE_IS_NO_COLUMN", "TOO_DEEP_AST", "TOO_BIG_AST",
           "UNEXPECTED_AST_STRUCTURE", "SYNTAX_ERROR", "INCORRECT_DATA",
           "TYPE_MISMATCH", "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"):
    _STATUS_BY_NAME[_n] = 400
for _n in ("UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER",
           "UNKNOWN_TYPE", "UNKNOWN_STORAGE", "UNKNOWN_DATABASE",
           "UNKNOWN_SETTING", "UNKNOWN_DIRECTION_OF_SORTING",
           "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT",
           "UNKNOWN_DATABASE_ENGINE", "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE"):
    _STATUS_BY_NAME[_n] = 404
_STATUS_BY_NAME.update({
    "QUERY_IS_TOO_LARGE": 413, "NOT_IMPLEMENTED": 501, "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503, "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408, "CANNOT_SCHEDULE_TASK": 503,
    "UNSUPPORTED_MEDIA_TYPE": 415,
})

_CODE_RE = re.compile(r"Code: (\d+)\. ")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")


def chdb_error(exc):
    text = str(exc).strip()
    m = _CODE_RE.match(text)
    if not m:
        return CHError(1001, "DB::Exception: " + text, "STD_EXCEPTION")
    nm = _NAME_RE.search(text)
    err = CHError(int(m.group(1)), text[m.end():], nm.group(1) if nm else None)
    err.raw = True
    return err


# --------------------------------------------------------------------------
# ClickHouse native compressed block framing (compress=1 / decompress=1)

METHOD_NONE, METHOD_LZ4, METHOD_ZSTD = 0x02, 0x82, 0x90
MAX_BLOCK = 1 << 20


def _checksum(data):
    h = CityHash128(data)
    # ClickHouse writes CityHash128's (first, second) as two little-endian
    # u64s; the Python binding returns first << 64 | second.
    return struct.pack("<QQ", h >> 64, h & 0xFFFFFFFFFFFFFFFF)


def native_decompress(buf, verify=True):
    out = []
    pos, n = 0, len(buf)
    while pos < n:
        if n - pos < 25:
            raise CHError(271, "DB::Exception: Cannot decompress: "
                          "truncated compressed block header", "CANNOT_DECOMPRESS")
        checksum = buf[pos:pos + 16]
        method = buf[pos + 16]
        csize, usize = struct.unpack_from("<II", buf, pos + 17)
        if csize < 9 or pos + 16 + csize > n:
            raise CHError(271, "DB::Exception: Cannot decompress: "
                          "compressed block size is out of bounds", "CANNOT_DECOMPRESS")
        block = buf[pos + 16:pos + 16 + csize]
        if verify:
            actual = _checksum(block)
            if actual != checksum:
                ref = struct.unpack("<QQ", checksum)
                act = struct.unpack("<QQ", actual)
                raise CHError(40, "DB::Exception: Checksum doesn't match: corrupted "
                              "data. Reference: %016x%016x. Actual: %016x%016x. "
                              "Size of compressed block: %d" %
                              (ref[0], ref[1], act[0], act[1], csize),
                              "CHECKSUM_DOESNT_MATCH")
        payload = block[9:]
        if method == METHOD_LZ4:
            try:
                data = lz4.block.decompress(payload, uncompressed_size=usize)
            except Exception as e:  # noqa: BLE001
                raise CHError(271, "DB::Exception: Cannot decompress LZ4-encoded "
                              "data: %s" % e, "CANNOT_DECOMPRESS")
        elif method == METHOD_NONE:
            data = payload
        elif method == METHOD_ZSTD:
            try:
                import zstandard  # optional
            except ImportError:
                raise CHError(89, "DB::Exception: ZSTD compression method is not "
                              "supported by this dev server", "UNKNOWN_COMPRESSION_METHOD")
            data = zstandard.ZstdDecompressor().decompress(payload, max_output_size=usize)
        else:
            raise CHError(89, "DB::Exception: Unknown compression method: %d" % method,
                          "UNKNOWN_COMPRESSION_METHOD")
        if len(data) != usize:
            raise CHError(271, "DB::Exception: Cannot decompress: size mismatch",
                          "CANNOT_DECOMPRESS")
        out.append(data)
        pos += 16 + csize
    return b"".join(out)


def native_compress(data):
    out = []
    for off in range(0, max(len(data), 1), MAX_BLOCK):
        chunk = data[off:off + MAX_BLOCK]
        comp = lz4.block.compress(chunk, store_size=False)
        block = struct.pack("<BII", METHOD_LZ4, len(comp) + 9, len(chunk)) + comp
        out.append(_checksum(block) + block)
    return b"".join(out)


# --------------------------------------------------------------------------
# A small SQL lexer: enough to find statement kind, FORMAT clauses, INSERT
# data, SETTINGS clauses and multiple statements, without touching binary data.

_WS = b" \t\n\r\f\v"
_IDENT_START = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | set(b"0123456789$")


def next_token(buf, pos):
    """Returns (kind, start, end) of the token at or after pos, skipping
    whitespace and comments; kind is None at end of input."""
    n = len(buf)
    while pos < n:
        c = buf[pos]
        if c in _WS:
            pos += 1
        elif buf.startswith(b"--", pos) or c == 0x23:  # -- or # comment
            end = buf.find(b"\n", pos)
            pos = n if end < 0 else end + 1
        elif buf.startswith(b"/*", pos):
            end = buf.find(b"*/", pos + 2)
            pos = n if end < 0 else end + 2
        else:
            break
    if pos >= n:
        return None, n, n
    c = buf[pos]
    if c in (0x27, 0x22, 0x60):  # ' " `
        i = pos + 1
        while i < n:
            if buf[i] == 0x5C:  # backslash escape
                i += 2
                continue
            if buf[i] == c:
                if i + 1 < n and buf[i + 1] == c:  # doubled quote
                    i += 2
                    continue
                return ("str" if c == 0x27 else "qident"), pos, i + 1
            i += 1
        raise CHError(62, "DB::Exception: Syntax error: failed at position %d: "
                      "unterminated quoted literal" % (pos + 1), "SYNTAX_ERROR")
    if c in _IDENT_START or c >= 0x80:
        i = pos + 1
        while i < n and (buf[i] in _IDENT_CHARS or buf[i] >= 0x80):
            i += 1
        return "ident", pos, i
    if 0x30 <= c <= 0x39:
        i = pos + 1
        while i < n and (buf[i] in _IDENT_CHARS or buf[i] == 0x2E):
            i += 1
        return "num", pos, i
    if buf.startswith(b"$$", pos):
        end = buf.find(b"$$", pos + 2)
        end = n if end < 0 else end + 2
        return "str", pos, end
    return "punct", pos, pos + 1


class Statement:
    kind = ""            # first keyword, upper-case (SELECT, INSERT, ...)
    out_format = None    # FORMAT clause of a non-INSERT query
    insert_head = None   # INSERT: statement text before SETTINGS/FORMAT/VALUES
    insert_settings = b""  # INSERT: "SETTINGS ..." clause text, if any
    insert_format = None  # INSERT: input format name
    data_start = None    # INSERT: offset of inline data in the buffer
    temporary = False    # CREATE TEMPORARY ...: state that would outlive the request


def analyze(buf):
    st = Statement()
    depth = 0
    pos = 0
    ntok = 0
    settings_at = None
    while True:
        kind, s, e = next_token(buf, pos)
        if kind is None:
            break
        tok = buf[s:e]
        up = tok.upper() if kind == "ident" else b""
        ntok += 1
        if ntok == 1:
            st.kind = up.decode() if kind == "ident" else ("SELECT" if tok == b"(" else "")
        elif ntok <= 4 and st.kind == "CREATE" and up == b"TEMPORARY":
            st.temporary = True  # CREATE [OR REPLACE] TEMPORARY TABLE
        if kind == "punct":
            if tok in (b"(", b"[", b"{"):
                depth += 1
            elif tok in (b")", b"]", b"}"):
                depth -= 1
            elif tok == b";" and depth <= 0:
                k2, s2, _ = next_token(buf, e)
                if k2 is not None:
                    raise CHError(62, "DB::Exception: Syntax error (Multi-statements "
                                  "are not allowed): failed at position %d (end of "
                                  "query): %s. " % (s + 1, buf[s:s + 40].decode(
                                      "utf-8", "replace")), "SYNTAX_ERROR")
                # trailing semicolon: cut it off
                st.end = s
                break
        if depth == 0 and kind == "ident":
            if st.kind == "INSERT":
                if up in (b"SELECT", b"WITH", b"INFILE") and st.insert_format is None:
                    st.kind = "INSERT_SELECT"
                elif up == b"SETTINGS" and settings_at is None:
                    settings_at = s
                elif up == b"VALUES":
                    st.insert_head = buf[:settings_at if settings_at is not None else s]
                    if settings_at is not None:
                        st.insert_settings = buf[settings_at:s]
                    st.insert_format = "Values"
                    st.data_start = e
                    return st
                elif up == b"FORMAT":
                    k2, s2, e2 = next_token(buf, e)
                    if k2 in ("ident", "qident"):
                        st.insert_head = buf[:settings_at if settings_at is not None else s]
                        if settings_at is not None:
                            st.insert_settings = buf[settings_at:s]
                        st.insert_format = buf[s2:e2].strip(b"`\"").decode()
                        # Data starts after the first newline, or after the
                        # spaces following the format name (ClickHouse's rule).
                        d = e2
                        while d < len(buf) and buf[d] in b" \t\f":
                            d += 1
                        if d < len(buf) and buf[d] == 0x0D:
                            d += 1
                        if d < len(buf) and buf[d] == 0x0A:
                            d += 1
                        st.data_start = d
                        return st
            elif up == b"FORMAT":
                k2, s2, e2 = next_token(buf, e)
                if k2 in ("ident", "qident"):
                    st.out_format = buf[s2:e2].strip(b"`\"").decode()
        pos = e
    if st.kind == "INSERT":
        st.kind = "INSERT_SELECT"  # e.g. INSERT INTO t SELECT ...
    return st


# --------------------------------------------------------------------------
# Engine: chDB behind a pool of connections

RESERVED_PARAMS = {
    "query", "database", "default_format", "query_id", "session_id",
    "session_timeout", "session_check", "close_session", "user", "password",
    "quota_key", "compress", "decompress", "buffer_size", "wait_end_of_query",
    "stacktrace", "role", "client_protocol_version", "readonly",
}
WRITE_KINDS = {"INSERT", "INSERT_SELECT", "CREATE", "ALTER", "DROP", "TRUNCATE",
               "RENAME", "DELETE", "UPDATE", "OPTIMIZE", "SYSTEM", "ATTACH", "DETACH",
               "GRANT", "REVOKE", "KILL", "EXCHANGE", "UNDROP", "BACKUP", "RESTORE",
               "MOVE", "REPLACE"}
_DB_CHANGING = ("USE", "DROP", "CREATE", "RENAME", "DETACH", "ATTACH", "EXCHANGE",
                "UNDROP")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quote_str(v):
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_ident(v):
    return "`" + v.replace("\\", "\\\\").replace("`", "\\`") + "`"


class Timing:
    """What one request's query spent before it ran (for CHFRONT_PROFILE)."""
    wait = 0.0      # seconds waiting for a pooled connection
    settings = 0.0  # seconds on USE/SET before the query


class Engine:
    """chDB behind a pool of connections to one data path: each running request has a
    connection of its own, so queries run concurrently, as on clickhouse-server."""

    def __init__(self, data_dir, max_concurrent=8):
        import chdb  # imported here so --help works without chdb
        from chdb import ChdbError
        os.makedirs(data_dir, exist_ok=True)
        self.tmp_dir = os.path.join(data_dir, "chfront-tmp")
        os.makedirs(self.tmp_dir, exist_ok=True)
        for f in os.listdir(self.tmp_dir):
            try:
                os.unlink(os.path.join(self.tmp_dir, f))
            except OSError:
                pass
        self.engine_error = ChdbError
        # The first connection starts chDB's embedded server on data_dir; kept open (and
        # never used for requests) so that the server stays up while pooled connections are
        # discarded and opened again.
        self.anchor = chdb.connect(data_dir)
        self.pool = chpool.Pool(lambda: chdb.connect(data_dir), max_concurrent)
        # Per-query timings for profiling (CHFRONT_PROFILE=<file>): one TSV line per query.
        profile = os.environ.get("CHFRONT_PROFILE")
        self.profile = open(profile, "a", buffering=1) if profile else None
        self.profile_lock = threading.Lock()
        row = self.anchor.query("SELECT version(), timezone()", "TSV").bytes()
        self.version, self.timezone = row.decode().strip().split("\t")

    def close(self):
        """Closes every connection once the requests using them are done."""
        self.pool.close()
        self.anchor.close()

    @contextlib.contextmanager
    def lease(self, database, settings, kind="", stateful=False, timing=None):
        """A pooled connection for one statement of one request, for the `with` block:
        `database` and `settings` apply to it alone. It goes back to the pool as it was (its
        settings reset, its current database known) or, when that cannot be ensured (a
        reset failed, a `stateful` statement such as CREATE TEMPORARY TABLE, an error in the
        block that is not a CHError, `lease.discard` set), it is discarded. `kind` is the
        statement's first keyword."""
        timing = timing if timing is not None else Timing()
        pooled, timing.wait = self.pool.acquire()
        lease = Lease(pooled)
        conn = pooled.conn
        prepared = time.monotonic()
        applied = []
        try:
            if database != pooled.database:
                pooled.database = None
                try:
                    conn.query("USE " + _quote_ident(database), "TSV")
                except Exception as e:  # noqa: BLE001
                    raise chdb_error(e)
                pooled.database = database
            for k, v in settings.items():
                try:
                    conn.query("SET %s = %s" % (k, _quote_str(v)), "TSV")
                except Exception as e:  # noqa: BLE001
                    raise chdb_error(e)
                applied.append(k)
            timing.settings = time.monotonic() - prepared
            if kind in _DB_CHANGING:
                pooled.database = None  # USE, or a statement that may change it
            try:
                yield lease
            except CHError:
                raise
            except BaseException:
                lease.discard = True  # not the engine's error: the client's state is unknown
                raise
            finally:
                lease.discard = lease.discard or stateful
        finally:
            if applied and not _reset_settings(conn, applied):
                lease.discard = True
            self.pool.release(pooled, lease.discard)

    def run(self, sql, fmt, database, settings, params, kind="", stateful=False,
            timing=None):
        """Runs one statement on a leased connection (see `lease`): its whole result."""
        with self.lease(database, settings, kind, stateful, timing) as lease:
            try:
                return lease.conn.query(sql, fmt, params=params or None)
            except self.engine_error as e:
                raise chdb_error(e)


class Lease:
    """A connection taken from the pool for one statement (Engine.lease)."""

    def __init__(self, pooled):
        self.conn = pooled.conn
        self.discard = False  # set: closed instead of going back to the pool


def _reset_settings(conn, names):
    """SET names = DEFAULT on conn; False if any of them may still be set."""
    try:
        conn.query("SET " + ", ".join("%s = DEFAULT" % k for k in names), "TSV")
        return True
    except Exception:  # noqa: BLE001
        pass
    ok = True
    for k in names:
        try:
            conn.query("SET %s = DEFAULT" % k, "TSV")
        except Exception:  # noqa: BLE001
            ok = False
    return ok


# --------------------------------------------------------------------------
# HTTP

CONTENT_TYPES = [
    ("TabSeparated", "text/tab-separated-values; charset=UTF-8"),
    ("TSV", "text/tab-separated-values; charset=UTF-8"),
    ("CSV", "text/csv; charset=UTF-8; header=absent"),
    ("JSONEachRow", "application/x-ndjson; charset=UTF-8"),
    ("JSON", "application/json; charset=UTF-8"),
    ("RowBinary", "application/octet-stream"),
    ("Native", "application/octet-stream"),
    ("Parquet", "application/octet-stream"),
    ("Arrow", "application/octet-stream"),
    ("ORC", "application/octet-stream"),
    ("Avro", "application/octet-stream"),
    ("XML", "application/xml; charset=UTF-8"),
]


def content_type_for(fmt):
    for prefix, ct in CONTENT_TYPES:
        if fmt.lower().startswith(prefix.lower()):
            if prefix == "CSV" and "WithNames" in fmt:
                return "text/csv; charset=UTF-8; header=present"
            return ct
    return "text/plain; charset=UTF-8"


def parse_multipart(body, content_type):
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise CHError(36, "DB::Exception: multipart/form-data without boundary",
                      "BAD_ARGUMENTS")
    delim = b"--" + m.group(1).encode()
    fields = {}
    for part in body.split(delim)[1:]:
        if part.startswith(b"--"):
            break
        part = part[2:] if part.startswith(b"\r\n") else part
        head, _, value = part.partition(b"\r\n\r\n")
        if value.endswith(b"\r\n"):
            value = value[:-2]
        nm = re.search(rb'name="([^"]*)"', head)
        if nm:
            fields[nm.group(1).decode()] = value
    return fields


def _truthy(v):
    return v is not None and v.strip().lower() not in ("", "0", "false")


# Bytes per socket write of a response body (see Handler.send).
SEND_SLICE = 1 << 20


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chfront"

    def version_string(self):
        return "chfront"

    timeout = 10  # idle keep-alive connections are closed after this (as ClickHouse)

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle holds the
        # body until the client's delayed ACK, 40 ms on every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.idle = True
        self.server.track(self, True)

    def parse_request(self):
        self.idle = False
        return super().parse_request()

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self, False)

    def log_message(self, fmt, *args):  # noqa: A003
        if DEBUG:
            sys.stderr.write("chfront: %s %s\n" % (self.address_string(), fmt % args))

    # -- plumbing ---------------------------------------------------------

    def read_body(self):
        """The request body, or ClientGone if the connection ended before all of it came.

        A body cut short must never run: with chunked encoding, a connection closed between
        two chunks would otherwise look like a complete, shorter INSERT, land part of the rows
        and take the deduplication token with it, so the client's retry would be dropped as a
        duplicate. ClickHouse rejects such a body as well.
        """
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                if not line.endswith(b"\n"):
                    raise ClientGone("connection closed before the end of a chunked body")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise ClientGone("malformed chunk size %r" % line[:40]) from None
                if size == 0:
                    while True:
                        trailer = self.rfile.readline(65537)
                        if trailer in (b"\r\n", b"\n"):
                            break
                        if not trailer:
                            raise ClientGone("connection closed inside the chunked trailer")
                    break
                chunk = self.rfile.read(size)
                if len(chunk) < size or self.rfile.readline(65537) not in (b"\r\n", b"\n"):
                    raise ClientGone("connection closed inside a chunk")
                parts.append(chunk)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) < length:
            raise ClientGone("connection closed after %d of %d body bytes" % (len(body), length))
        return body

    def send(self, status, body, headers=(), content_type="text/plain; charset=UTF-8",
             encoding=None):
        if encoding:
            body = http_compress(body, encoding)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("X-ClickHouse-Server-Display-Name", "chfront")
        for k, v in headers:
            self.send_header(k, v)
        if self.server.stopping:
            self.close_connection = True
            self.send_header("Connection", "close")
        else:
            self.send_header("Keep-Alive", "timeout=10")
        self.end_headers()
        if self.command != "HEAD":
            # In slices: a socket timeout bounds each sendall as a whole, so one write of a
            # large result would fail any reader slower than `timeout` for all of it, where
            # ClickHouse's send timeout bounds each stalled write.
            view = memoryview(body)
            for start in range(0, len(view), SEND_SLICE):
                self.wfile.write(view[start:start + SEND_SLICE])

    def error_text(self, err):
        """ClickHouse's text of an error (a CHError, or any exception: STD_EXCEPTION)."""
        if not isinstance(err, CHError):
            err = CHError(1001, "DB::Exception: %s: %s" % (type(err).__name__, err),
                          "STD_EXCEPTION")
        if getattr(err, "raw", False):
            text = "Code: %d. %s" % (err.code, err.message)
        else:
            text = "Code: %d. %s (%s)" % (err.code, err.message,
                                          err.name or "UNKNOWN_EXCEPTION")
        return text + " (version %s (official build))\n" % self.server.engine.version

    def send_error_ch(self, err, query_id, encoding=None):
        name = err.name or "UNKNOWN_EXCEPTION"
        text = self.error_text(err)
        status = _STATUS_BY_NAME.get(name, 500)
        if DEBUG or name == "STD_EXCEPTION":
            sys.stderr.write("chfront: error %d: %s" % (status, text))
        self.send(status, text.encode(), [
            ("X-ClickHouse-Exception-Code", str(err.code)),
            ("X-ClickHouse-Query-Id", query_id),
        ], encoding=encoding)

    # -- endpoints --------------------------------------------------------

    def do_HEAD(self):  # noqa: N802
        self.do_GET()

    def do_GET(self):  # noqa: N802
        self.handle_any()

    def do_POST(self):  # noqa: N802
        self.handle_any()

    def handle_any(self):
        try:
            url = urlsplit(self.path)
            path = url.path
            try:
                body = self.read_body() if self.command == "POST" else b""
            except ClientGone as gone:
                # Nothing runs and nothing is answered: the client is gone or broken.
                if DEBUG:
                    sys.stderr.write("chfront: %s: %s\n" % (self.address_string(), gone))
                self.close_connection = True
                return
            if path in ("/ping", "/replicas_status") or (
                    path == "/" and self.command == "HEAD"):
                return self.send(200, b"Ok.\n")
            if path != "/":
                return self.send(404, ("There is no handle %s\n\nUse / or /ping for "
                                       "health checks.\n" % path).encode())
            self.handle_root(url, body)
        finally:
            self.idle = True

    def handle_root(self, url, body):
        qs = parse_qsl(url.query, keep_blank_values=True)
        params = dict(qs)
        query_id = params.get("query_id") or str(uuid.uuid4())
        encoding = None
        try:
            if _truthy(params.get("enable_http_compression")):
                encoding = choose_encoding(self.headers.get("Accept-Encoding", ""))
            self.check_auth(params)
            self.execute(params, body, query_id, encoding)
        except CHError as err:
            self.send_error_ch(err, query_id, encoding)
        except Exception as exc:  # noqa: BLE001
            self.send_error_ch(CHError(1001, "DB::Exception: %s: %s" % (
                type(exc).__name__, exc), "STD_EXCEPTION"), query_id, encoding)

    def check_auth(self, params):
        user = params.get("user") or self.headers.get("X-ClickHouse-User")
        password = params.get("password") or self.headers.get("X-ClickHouse-Key")
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                u, _, p = base64.b64decode(auth[6:].strip()).decode().partition(":")
                user, password = user or u, password or p
            except Exception:  # noqa: BLE001
                pass
        want_user = os.environ.get("CHFRONT_USER")
        if want_user is None:
            return
        if (user or "default") != want_user or (password or "") != os.environ.get(
                "CHFRONT_PASSWORD", ""):
            raise CHError(516, "DB::Exception: %s: Authentication failed: password "
                          "is incorrect, or there is no user with such name."
                          % (user or "default"), "AUTHENTICATION_FAILED")

    def execute(self, params, body, query_id, encoding):
        engine = self.server.engine
        settings = {}
        qparams = {}
        for k, v in params.items():
            if k.startswith("param_"):
                qparams[k[6:]] = v
            elif k not in RESERVED_PARAMS:
                if not _SETTING_NAME.match(k):
                    raise CHError(115, "DB::Exception: Unknown setting '%s'" % k,
                                  "UNKNOWN_SETTING")
                settings[k] = v
        settings.pop("enable_http_compression", None)
        verify = not _truthy(settings.get(
            "http_native_compression_disable_checksumming_on_decompress"))

        # request body decoding
        ce = self.headers.get("Content-Encoding", "").strip().lower()
        if ce and body:
            body = http_decompress(body, ce)
        if _truthy(params.get("decompress")) and body:
            body = native_decompress(body, verify)

        url_query = params.get("query", "")
        ctype = self.headers.get("Content-Type", "")
        if ctype.lower().startswith("multipart/form-data") and body:
            form = parse_multipart(body, ctype)
            body = b""
            for k, v in form.items():
                if k.startswith("param_"):
                    qparams[k[6:]] = v.decode("utf-8", "surrogateescape")
                elif k == "query" and not url_query:
                    url_query = v.decode("utf-8", "surrogateescape")

        if url_query and body:
            full = url_query.encode("utf-8", "surrogateescape") + b"\n" + body
        else:
            full = url_query.encode("utf-8", "surrogateescape") or body
        if not full.strip():
            if self.command == "GET":
                return self.send(200, b"Ok.\n")
            raise CHError(62, "DB::Exception: Empty query", "SYNTAX_ERROR")

        st = analyze(full)
        readonly = params.get("readonly", "0")
        if (self.command == "GET" or readonly not in ("", "0")) and \
                st.kind in WRITE_KINDS:
            raise CHError(164, "DB::Exception: Cannot execute query in readonly mode. "
                          "For queries over HTTP, method GET implies readonly. You "
                          "should use method POST for modifying queries", "READONLY")

        database = params.get("database") or self.headers.get(
            "X-ClickHouse-Database") or "default"
        fmt = (params.get("default_format") or self.headers.get("X-ClickHouse-Format")
               or "TabSeparated")
        out_fmt = st.out_format or fmt
        headers = [("X-ClickHouse-Query-Id", query_id),
                   ("X-ClickHouse-Timezone", engine.timezone)]
        if params.get("session_id"):
            headers.append(("X-ClickHouse-Session-Id", params["session_id"]))

        timing = Timing()
        started = time.monotonic()
        if st.kind == "SET":
            # Without a real session, ClickHouse's SET over HTTP lasts for the
            # request only: nothing to do.
            result = None
        elif st.insert_format is not None:
            data = full[st.data_start:]
            fd, path = tempfile.mkstemp(dir=engine.tmp_dir, suffix=".data")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                sql = "%s FROM INFILE %s %s FORMAT %s" % (
                    st.insert_head.decode("utf-8", "surrogateescape").rstrip(),
                    _quote_str(path),
                    st.insert_settings.decode("utf-8", "surrogateescape").strip(),
                    st.insert_format)
                result = engine.run(sql, "TabSeparated", database, settings, qparams,
                                    st.kind, timing=timing)
            finally:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            out_fmt = fmt
        else:
            end = getattr(st, "end", None)
            text = full[:end] if end is not None else full
            sql = text.decode("utf-8", "surrogateescape")
            if chstream.streamable(st.kind, out_fmt, text, settings) and \
                    not _truthy(params.get("wait_end_of_query")):
                result = self.select(sql, fmt, out_fmt, database, settings, qparams, st.kind,
                                     headers, _truthy(params.get("compress")), encoding,
                                     timing, started)
                if result is None:  # streamed
                    return self.profile(started, timing, full)
            else:
                result = engine.run(sql, fmt, database, settings, qparams, st.kind,
                                    stateful=st.temporary, timing=timing)
        elapsed_ns = self.profile(started, timing, full)

        out = result.bytes() if result is not None else b""
        summary = {
            "read_rows": str(result.rows_read() if result else 0),
            "read_bytes": str(result.bytes_read() if result else 0),
            "written_rows": str(result.rows_written() if result else 0),
            "written_bytes": str(result.bytes_written() if result else 0),
            "total_rows_to_read": "0",
            "result_rows": "0",
            "result_bytes": str(len(out)),
            "elapsed_ns": str(elapsed_ns),
        }
        headers.append(("X-ClickHouse-Format", out_fmt))
        headers.append(("X-ClickHouse-Summary", json.dumps(summary, separators=(",", ":"))))
        ct = content_type_for(out_fmt)
        if _truthy(params.get("compress")):
            out = native_compress(out)
        self.send(200, out, headers, content_type=ct, encoding=encoding)

    def select(self, sql, fmt, out_fmt, database, settings, qparams, kind, headers, compress,
               encoding, timing, started):
        """A SELECT through chDB's streaming API (chstream.py). Returns its result when it
        ended within chstream.BUFFERED bytes, to be sent as any other once its connection is
        back in the pool; None when it was longer and has been streamed from here, the
        connection taken until the end of the stream."""
        with self.server.engine.lease(database, settings, kind, timing=timing) as lease:
            query = chstream.Query(lease.conn, sql, fmt, qparams, chdb_error, out_fmt)
            try:
                head = query.read_head(chstream.BUFFERED)
                if query.done:
                    return chstream.Result(b"".join(head), query.progress)
                summary = query.summary(int((time.monotonic() - started) * 1e9))
                headers = headers + [
                    ("X-ClickHouse-Format", out_fmt),
                    ("X-ClickHouse-Summary", json.dumps(summary, separators=(",", ":")))]
                response = chstream.Response(self, native_compress if compress else None,
                                             encoding)
                outcome = chstream.stream(query, head, response, content_type_for(out_fmt),
                                          headers, self.error_text, CHError)
                if outcome == "broken":
                    lease.discard = True
                if DEBUG or outcome == "broken":
                    sys.stderr.write("chfront: streamed %s (%d bytes sent)\n" % (
                        outcome, response.sent))
                return None
            finally:
                if not query.close():
                    lease.discard = True

    def profile(self, started, timing, full):
        """The request's elapsed ns; with CHFRONT_PROFILE, its line appended."""
        engine = self.server.engine
        elapsed_ns = int((time.monotonic() - started) * 1e9)
        if engine.profile is not None:
            line = "%.3f\t%.2f\t%.2f\t%.2f\t%d\t%s\n" % (
                time.time(), elapsed_ns / 1e6, timing.wait * 1e3, timing.settings * 1e3,
                len(full), " ".join(full[:120].decode("utf-8", "replace").split()))
            with engine.profile_lock:
                engine.profile.write(line)
        return elapsed_ns


def choose_encoding(accept):
    for item in accept.split(","):
        enc = item.split(";")[0].strip().lower()
        if enc in ("lz4", "gzip", "deflate"):
            return enc
    return None


def http_compress(body, enc):
    if enc == "gzip":
        return gzip.compress(body, 3)
    if enc == "deflate":
        return zlib.compress(body, 3)
    if enc == "lz4":
        return lz4.frame.compress(body)
    return body


def http_decompress(body, enc):
    try:
        if enc in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if enc == "deflate":
            return zlib.decompress(body)
        if enc == "lz4":
            return lz4.frame.decompress(body)
    except Exception as e:  # noqa: BLE001
        raise CHError(271, "DB::Exception: Cannot decompress %s body: %s" % (enc, e),
                      "CANNOT_DECOMPRESS")
    if enc in ("", "identity", "none"):
        return body
    raise CHError(89, "DB::Exception: Unknown HTTP Content-Encoding: %s" % enc,
                  "UNKNOWN_COMPRESSION_METHOD")


class Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, addr, engine):
        self.engine = engine
        self.stopping = False
        self._conns = {}
        self._conns_lock = threading.Lock()
        super().__init__(addr, Handler)

    def track(self, handler, alive):
        with self._conns_lock:
            if alive:
                self._conns[handler] = True
            else:
                self._conns.pop(handler, None)

    def close_idle(self):
        """Unblock keep-alive connections waiting for their next request."""
        with self._conns_lock:
            conns = list(self._conns)
        for h in conns:
            if h.idle:
                try:
                    h.connection.shutdown(socket.SHUT_RD)
                except OSError:
                    pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default=os.environ.get("CHFRONT_HOST", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("LOGBUS_CH_PORT", "8123")))
    ap.add_argument("--data", default=os.environ.get("LOGBUS_CH_DATA",
                                                     ".devstack/data/clickhouse"))
    ap.add_argument("--max-concurrent-queries", type=int, metavar="N",
                    default=int(os.environ.get("CHFRONT_MAX_CONCURRENT_QUERIES", "8")),
                    help="queries run at once, one pooled chDB connection each; more "
                    "wait for a free connection (default 8)")
    args = ap.parse_args(argv)
    if args.max_concurrent_queries < 1:
        ap.error("--max-concurrent-queries must be at least 1")

    engine = Engine(os.path.abspath(args.data), args.max_concurrent_queries)
    server = Server((args.host, args.port), engine)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
    t.start()
    sys.stderr.write("chfront: ClickHouse %s (chDB) HTTP on http://%s:%d data=%s "
                     "max_concurrent_queries=%d\n" % (
                         engine.version, args.host, args.port, os.path.abspath(args.data),
                         args.max_concurrent_queries))
    sys.stderr.flush()
    while not stop.wait(0.5):
        pass
    server.stopping = True
    server.shutdown()          # stop accepting
    t.join()
    server.close_idle()
    server.server_close()      # joins in-flight request threads
    engine.close()             # close the pooled chDB connections, then chDB
    sys.stderr.write("chfront: stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
