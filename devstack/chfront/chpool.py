"""chpool: a bounded pool of chDB connections for chfront.

chDB runs the queries of separate `chdb.connect(path)` connections to one data path at the
same time (one embedded server, one client per connection), while one connection runs one
query at a time. chfront therefore takes one connection per running request from this pool:
at most `size` connections are open, a request beyond that waits until one is released, as
clickhouse-server's `max_concurrent_queries` bounds the queries it runs at once.

Connections are created on demand and reused most-recently-released first. Each carries
the client state chfront keeps track of (its current database); a connection whose state
could not be restored after a request is discarded (closed) instead of being reused.

The pool knows nothing about chDB: `connect` is any function returning an object with
`close()`, so it is tested with stand-ins (tests/test_chpool.py).
"""

import threading
import time


class PoolClosed(Exception):
    """The pool was closed: no more connections are handed out."""


class Pooled:
    """One connection of the pool and what is known of its client state."""

    __slots__ = ("conn", "number", "database")

    def __init__(self, conn, number):
        self.conn = conn
        self.number = number  # 1, 2, ...: the order connections were opened in
        self.database = None  # its current database, if known (None: unknown, USE it)


class Pool:
    def __init__(self, connect, size):
        if size < 1:
            raise ValueError("a pool of %r connections" % size)
        self._connect = connect
        self.size = size
        self._cond = threading.Condition()
        self._idle = []       # released connections, the most recent last
        self._open = 0        # connections open or being opened (idle + in use)
        self._waiting = 0     # acquire() calls waiting for a connection
        self._opened = 0      # connections ever opened (numbers them)
        self._closed = False

    def acquire(self):
        """A connection for one request, and the seconds waited for it (a new connection's
        opening included); blocks while `size` connections are in use."""
        start = time.monotonic()
        with self._cond:
            while True:
                if self._closed:
                    raise PoolClosed("the connection pool is closed")
                if self._idle:
                    return self._idle.pop(), time.monotonic() - start
                if self._open < self.size:
                    self._open += 1
                    self._opened += 1
                    number = self._opened
                    break
                self._waiting += 1
                try:
                    self._cond.wait()
                finally:
                    self._waiting -= 1
        try:
            conn = self._connect()
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify_all()
            raise
        return Pooled(conn, number), time.monotonic() - start

    def release(self, pooled, discard=False):
        """Gives a connection back; with discard, or once the pool is closed, it is closed
        (a later request beyond the idle ones opens a new one)."""
        with self._cond:
            if not (discard or self._closed):
                self._idle.append(pooled)
                self._cond.notify_all()
                return
            self._open -= 1
            self._cond.notify_all()
        _close_quietly(pooled.conn)

    def stats(self):
        """(open, idle, in use, waiting, ever opened)."""
        with self._cond:
            return (self._open, len(self._idle), self._open - len(self._idle),
                    self._waiting, self._opened)

    def close(self, timeout=None):
        """Waits until no connection is in use and no request waits for one (in-flight
        requests finish, waiting ones are served), then closes every connection. Returns
        False if that took longer than timeout (the idle ones are closed anyway and the
        ones still in use are closed when released)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            drained = True
            while self._open > len(self._idle) or self._waiting:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    drained = False
                    break
                self._cond.wait(left)
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for pooled in idle:
            _close_quietly(pooled.conn)
        return drained


def _close_quietly(conn):
    try:
        conn.close()
    except Exception:  # noqa: BLE001
        pass
