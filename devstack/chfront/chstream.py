"""chstream: chfront's streamed SELECT results, as clickhouse-server streams them.

chfront runs most statements with chDB's `Connection.query`, which materializes the whole
result before its first byte can be sent. A SELECT (or WITH ... SELECT) whose output format
allows it runs through chDB's streaming API instead (`send_query`, then one block of output
per fetch), here:

- `Query` reads the result block by block on the request's pooled connection. A result that
  ends within `BUFFERED` bytes (1 MiB, clickhouse-server's default response buffer) is sent
  as before, with Content-Length, after its connection is back in the pool. A longer one is
  streamed while the connection stays taken (a slow reader slows the query, as on
  clickhouse-server; a stalled write fails after the socket timeout): memory holds a block or
  two, never the result.
- `Response` writes such a result with `Transfer-Encoding: chunked`: the headers
  clickhouse-server sends up front (query id, format, timezone, the X-ClickHouse-Summary of
  the progress made so far, X-ClickHouse-Exception-Tag), then the blocks, through native
  compression (`compress=1`, re-cut into the same 1 MiB blocks a whole result gets) and HTTP
  compression (gzip, deflate, lz4; flushed after each block).
- An error after the first byte is written into the body as clickhouse-server 25.11+ writes
  it (`WriteBufferFromHTTP1ServerResponse::cancelWithException`): a block of its own,
  `\\r\\n__exception__\\r\\n<tag>\\r\\n<message>\\n<length> <tag>\\r\\n__exception__\\r\\n`
  (the tag is the response's X-ClickHouse-Exception-Tag, the length counts the message and
  its newline), through the same compression, then the connection is closed without the last
  chunk: the clickhouse crate (0.15: `extract_exception_new`) and clickhouse-connect report
  that message, any other client an incomplete body.

chDB formats every block of a streamed result on its own: a format with a header repeats it
in every block, one with a prefix and a suffix (JSON, XML, Pretty, Parquet, Arrow, ...) makes
each block a document of its own. So only formats whose blocks join into exactly what
`query` returns stream: row formats (`PLAIN`), and those whose only per-block extra is the
header of names and types (`HEADERS`), which is kept from the first block and cut from the
others (a totals or extremes block carries it at its end). Any other format, a query that
names a setting giving the rows a prefix, a suffix or another header (`_NOT_STREAMED`),
`INTO OUTFILE`, or `wait_end_of_query=1` runs as before, materialized.

chstream does not import chfront (run as a script, it is `__main__`): chfront hands over
what it needs (its error conversion, its error text, native compression).
"""

import random
import re
import string
import zlib

import lz4.frame

# A result that ends within this many bytes is sent whole, with Content-Length, after its
# connection is back in the pool; a longer one is streamed.
BUFFERED = 1 << 20
# Bytes per HTTP chunk (one socket write each: the socket timeout bounds each write).
SEND_SLICE = 1 << 20
# Native compression's block size (compress=1): the blocks of a whole result.
NATIVE_BLOCK = 1 << 20

# Row formats: the blocks' output joins into the whole result's (checked against `query`).
PLAIN = {f.lower() for f in (
    "RowBinary", "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "CSV",
    "JSONEachRow", "JSONLines", "NDJSON", "JSONStringsEachRow", "JSONCompactEachRow",
    "JSONCompactStringsEachRow", "Native", "TSKV", "CustomSeparated", "BSONEachRow",
    "MsgPack", "LineAsString", "RawBLOB")}


def _rowbinary_header(groups):
    """The header of RowBinaryWithNames(AndTypes): a LEB128 count, then `groups` strings
    (names, types) per column, each a LEB128 length and bytes."""
    def header(buf):
        pos, count = _leb128(buf, 0)
        for _ in range(count * groups):
            pos, size = _leb128(buf, pos)
            pos += size
        return pos if pos <= len(buf) else None
    return header


def _leb128(buf, pos):
    value = shift = 0
    while True:
        if pos >= len(buf):
            return len(buf) + 1, 0  # truncated: the caller sees a position past the end
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return pos, value


def _lines_header(lines, csv=False):
    """The header of a text format: `lines` lines (names, types). TSV and JSON escape line
    breaks inside a name; CSV quotes them, so its line ends only outside quotes."""
    def header(buf):
        pos = 0
        for _ in range(lines):
            if not csv:
                end = buf.find(b"\n", pos)
            else:
                end, quoted = pos, False
                while end < len(buf) and (quoted or buf[end] != 0x0A):
                    if buf[end] == 0x22:  # '"'; a doubled one flips twice
                        quoted = not quoted
                    end += 1
                end = end if end < len(buf) else -1
            if end < 0:
                return None
            pos = end + 1
        return pos
    return header


# Formats that repeat a header in every block: where the header of a block ends.
HEADERS = {f.lower(): h for f, h in (
    ("RowBinaryWithNames", _rowbinary_header(1)),
    ("RowBinaryWithNamesAndTypes", _rowbinary_header(2)),
    ("TabSeparatedWithNames", _lines_header(1)),
    ("TSVWithNames", _lines_header(1)),
    ("TabSeparatedWithNamesAndTypes", _lines_header(2)),
    ("TSVWithNamesAndTypes", _lines_header(2)),
    ("CSVWithNames", _lines_header(1, csv=True)),
    ("CSVWithNamesAndTypes", _lines_header(2, csv=True)),
    ("JSONCompactEachRowWithNames", _lines_header(1)),
    ("JSONCompactEachRowWithNamesAndTypes", _lines_header(2)),
    ("JSONCompactStringsEachRowWithNames", _lines_header(1)),
    ("JSONCompactStringsEachRowWithNamesAndTypes", _lines_header(2)),
)}

# Settings that give a row format a prefix or suffix (a JSON array of rows, CustomSeparated's
# and Template's result delimiters) or a header read otherwise (types in binary), and INTO
# OUTFILE: a query that names them is not streamed.
_NOT_STREAMED = re.compile(
    rb"array_of_rows|format_custom|format_template|types_in_binary_format|\boutfile\b", re.I)


def streamable(kind, fmt, sql, settings):
    """Whether a statement's result may be streamed: a SELECT in a format whose blocks join
    into the whole result, nothing in its text or settings that frames the rows."""
    if kind not in ("SELECT", "WITH"):
        return False
    if fmt.lower() not in PLAIN and fmt.lower() not in HEADERS:
        return False
    framed = b" ".join([sql] + [k.encode() for k in settings])
    return not _NOT_STREAMED.search(framed)


class Query:
    """One SELECT running through chDB's streaming API on a connection taken for it.

    Uses the engine's connection (`conn._conn`) directly: `StreamingResult.fetch` ends a
    stream at the first block without rows, which loses a header-only block (the names and
    types of an empty RowBinaryWithNamesAndTypes result, an empty TSVWithNames). Engine
    errors come as RuntimeError; `to_error` makes them chfront's CHError."""

    def __init__(self, conn, sql, fmt, params, to_error, result_fmt=None):
        self._conn = conn
        self._raw = conn._conn
        self._to_error = to_error
        self.fmt = result_fmt or fmt  # the output's: the query's FORMAT clause, else fmt
        self._header_end = HEADERS.get(self.fmt.lower())
        self._header = None
        self.rows = 0          # result rows so far
        self.progress = {}     # the engine's latest progress: read_rows, read_bytes, ...
        self.done = False      # the result ended (or failed, or was cancelled)
        conn.set_progress_callback(self._on_progress)
        try:
            self._handle = self._raw.send_query(sql, fmt, params=params or {})
        except BaseException as e:
            self.done = True
            self._clear_progress_callback()
            if isinstance(e, RuntimeError):
                raise to_error(e) from None
            raise

    def _on_progress(self, payload):
        self.progress = payload  # called by the engine inside fetch(), on this thread

    def fetch(self):
        """The next block of output (bytes or a memoryview), or None once the result ended.
        Raises CHError for an engine error (the result then ended too)."""
        if self.done:
            return None
        try:
            block = self._raw.streaming_fetch_result(self._handle)
        except RuntimeError as e:
            self.done = True
            raise self._to_error(e) from None
        data = block.bytes() if block is not None else b""
        rows = block.rows_read() if block is not None else 0
        if not data and not rows:
            self.done = True
            return None
        self.rows += rows
        if self._header_end is not None:
            data = self._cut_header(data)
        return data

    def _cut_header(self, data):
        if self._header is None:  # the first block: its header is the result's
            end = self._header_end(data)
            if end is None:
                raise self._to_error(RuntimeError(
                    "chfront: the first block of a %s result has no header" % self.fmt))
            self._header = bytes(data[:end])
            return data
        h = self._header
        if data.startswith(h):
            return memoryview(data)[len(h):]
        if data.endswith(h):  # totals, extremes: the header comes after them
            return memoryview(data)[:len(data) - len(h)]
        raise self._to_error(RuntimeError(
            "chfront: a block of a %s result does not repeat the result's header" % self.fmt))

    def read_head(self, limit):
        """Blocks until `limit` bytes or the end of the result: the list of them."""
        parts, size = [], 0
        while size < limit:
            part = self.fetch()
            if part is None:
                break
            parts.append(part)
            size += len(part)
        return parts

    def summary(self, elapsed_ns):
        """X-ClickHouse-Summary while the result streams: the engine's progress so far (the
        result's rows and bytes are known at its end only), as clickhouse-server."""
        p = self.progress
        return {
            "read_rows": str(p.get("read_rows", 0)),
            "read_bytes": str(p.get("read_bytes", 0)),
            "written_rows": "0",
            "written_bytes": "0",
            "total_rows_to_read": str(p.get("total_rows_to_read", 0)),
            "result_rows": "0",
            "result_bytes": "0",
            "elapsed_ns": str(elapsed_ns),
        }

    def close(self):
        """Cancels the query if its result has not ended. False if that, or clearing the
        progress callback, failed: the connection's state is then unknown (discard it)."""
        ok = True
        if not self.done:
            self.done = True
            try:
                self._raw.streaming_cancel_query(self._handle)
            except Exception:  # noqa: BLE001
                ok = False
        return self._clear_progress_callback() and ok

    def _clear_progress_callback(self):
        try:
            self._conn.set_progress_callback(None)
            return True
        except Exception:  # noqa: BLE001
            return False


class Result:
    """A result that ended within BUFFERED bytes, shaped as chDB's query() result."""

    def __init__(self, data, progress):
        self._data = data
        self._progress = progress

    def bytes(self):  # noqa: A003
        return self._data

    def rows_read(self):
        return self._progress.get("read_rows", 0)

    def bytes_read(self):
        return self._progress.get("read_bytes", 0)

    def rows_written(self):
        return 0

    def bytes_written(self):
        return 0


# --------------------------------------------------------------------------
# The streamed response

EXCEPTION_MARKER = b"__exception__"
EXCEPTION_TAG_LENGTH = 16
MAX_EXCEPTION_SIZE = 16 * 1024  # the whole exception block, as clickhouse-server


def exception_tag():
    return "".join(random.choice(string.ascii_lowercase) for _ in range(EXCEPTION_TAG_LENGTH))


def exception_block(text, tag):
    """An error after the first byte, as clickhouse-server 25.11+ ends the body with it."""
    tag = tag.encode()
    overhead = 2 + len(EXCEPTION_MARKER) + 2 + len(tag) + 2 + 8 + 1 + len(tag) + 2 + \
        len(EXCEPTION_MARKER) + 2
    message = text.encode("utf-8", "replace")[:MAX_EXCEPTION_SIZE - overhead]
    if not message.endswith(b"\n"):
        message += b"\n"
    return b"".join((b"\r\n", EXCEPTION_MARKER, b"\r\n", tag, b"\r\n", message,
                     b"%d " % len(message), tag, b"\r\n", EXCEPTION_MARKER, b"\r\n"))


class _NativeBlocks:
    """compress=1 on a stream: the output re-cut into the 1 MiB blocks that native
    compression makes of a whole result, so the bytes are the same."""

    def __init__(self, compress):
        self._compress = compress
        self._pending = bytearray()

    def add(self, data):
        self._pending += data
        whole = len(self._pending) // NATIVE_BLOCK * NATIVE_BLOCK
        if not whole:
            return b""
        out = self._compress(bytes(self._pending[:whole]))
        del self._pending[:whole]
        return out

    def flush(self):
        if not self._pending:
            return b""
        out = self._compress(bytes(self._pending))
        self._pending.clear()
        return out

    def alone(self, data):
        """`data` in blocks of its own (after a flush)."""
        return self._compress(data)


class _HttpEncoder:
    """Content-Encoding on a stream: what `write` returns can be decoded by the client at
    once (gzip and deflate flush, lz4 writes whole frame blocks)."""

    def __init__(self, encoding):
        self.encoding = encoding
        if encoding == "lz4":
            self._lz4 = lz4.frame.LZ4FrameCompressor(auto_flush=True)
            self._start = self._lz4.begin()
        else:  # gzip: the gzip wrapper, deflate: the zlib one (as gzip/zlib.compress)
            self._zlib = zlib.compressobj(3, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
            self._start = b""

    def write(self, data):
        start, self._start = self._start, b""
        if self.encoding == "lz4":
            return start + (self._lz4.compress(data) if len(data) else b"")
        return start + self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def finish(self):
        start, self._start = self._start, b""
        if self.encoding == "lz4":
            return start + self._lz4.flush()
        return start + self._zlib.flush()


class Response:
    """A result streamed to the client of `handler` (chfront's request handler).

    `start` sends the headers, `write` the result's bytes, `finish` the end of the body;
    `fail` ends it with an error instead. A client that went away (a failed or timed-out
    write) raises OSError from them."""

    def __init__(self, handler, native_compress=None, encoding=None):
        self._h = handler
        self._chunked = handler.request_version != "HTTP/1.0"
        self._native = _NativeBlocks(native_compress) if native_compress else None
        self._encoder = _HttpEncoder(encoding) if encoding else None
        self.tag = exception_tag()
        self.sent = 0  # bytes of the body sent (compressed)

    def start(self, content_type, headers):
        h = self._h
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        if self._chunked:
            h.send_header("Transfer-Encoding", "chunked")
        if self._encoder:
            h.send_header("Content-Encoding", self._encoder.encoding)
        h.send_header("X-ClickHouse-Server-Display-Name", "chfront")
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("X-ClickHouse-Exception-Tag", self.tag)
        if h.server.stopping or not self._chunked:
            h.close_connection = True
            h.send_header("Connection", "close")
        else:
            h.send_header("Keep-Alive", "timeout=10")
        h.end_headers()

    def write(self, data):
        if self._native:
            data = self._native.add(data)
        if self._encoder and len(data):
            data = self._encoder.write(data)
        self._send(data)

    def finish(self):
        tail = self._encode(self._native.flush() if self._native else b"")
        if self._encoder:
            tail += self._encoder.finish()
        self._send(tail)
        if self._chunked:
            self._h.wfile.write(b"0\r\n\r\n")

    def fail(self, text):
        """Ends the body with the error `text` (ClickHouse's exception text), in a chunk
        (and a compressed block) of its own after what is pending, and without the last
        chunk: the transfer is broken, the connection closed."""
        self._h.close_connection = True
        if self._native:
            self._send(self._encode(self._native.flush()))
        block = exception_block(text, self.tag)
        if self._native:
            block = self._native.alone(block)
        self._send(self._encode(block))

    def abandon(self):
        """The client is gone: nothing more is written, the connection is closed."""
        self._h.close_connection = True

    def _encode(self, data):
        return self._encoder.write(data) if self._encoder and len(data) else data

    def _send(self, data):
        view = memoryview(data)
        for start in range(0, len(view), SEND_SLICE):
            piece = view[start:start + SEND_SLICE]
            if self._chunked:
                self._h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self._h.wfile.write(piece)
            self.sent += len(piece)


def stream(query, head, response, content_type, headers, error_text, engine_error):
    """Sends a result that did not end within `head` (its blocks read so far): the headers,
    then block after block as the engine produces them. Never raises: an error after the
    headers went out ends the body (`error_text(exc)` is its text). Returns "ok", "failed"
    (an `engine_error`, sent), "gone" (the client went away: closing the query cancels it)
    or "broken" (another error: the connection's state is unknown, discard it)."""
    try:
        response.start(content_type, headers)
        for part in head:
            response.write(part)
        del head[:]
        while True:
            try:
                part = query.fetch()
            except engine_error as exc:
                response.fail(error_text(exc))
                return "failed"
            if part is None:
                break
            response.write(part)
        response.finish()
        return "ok"
    except OSError:  # a write failed or timed out: the client is gone
        response.abandon()
        return "gone"
    except Exception as exc:  # noqa: BLE001  (not the engine's: a bug, reported all the same)
        try:
            response.fail(error_text(exc))
        except Exception:  # noqa: BLE001
            response.abandon()
        return "broken"
