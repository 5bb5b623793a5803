"""Tests of chpool's connection pool with stand-in connections (no chDB)."""

import os
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import chpool  # noqa: E402


class FakeConn:
    def __init__(self, n):
        self.n = n
        self.closed = False

    def close(self):
        self.closed = True


def fake_connect():
    opened = []

    def connect():
        conn = FakeConn(len(opened) + 1)
        opened.append(conn)
        return conn
    return connect, opened


def until(cond, what):
    """Polls cond (a state the other thread reaches for sure, not a time limit)."""
    deadline = time.monotonic() + 30
    while not cond():
        assert time.monotonic() < deadline, "never happened: " + what
        time.sleep(0.005)


def in_thread(fn):
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001
            out["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_at_most_size_connections_and_the_next_request_waits_for_one():
    connect, opened = fake_connect()
    pool = chpool.Pool(connect, 2)
    a, _ = pool.acquire()
    b, _ = pool.acquire()
    assert (a.number, b.number) == (1, 2) and len(opened) == 2
    t, out = in_thread(pool.acquire)
    until(lambda: pool.stats()[3] == 1, "a third request waits")
    assert out == {} and len(opened) == 2
    pool.release(b)
    t.join(30)
    got, waited = out["value"]
    assert got is b and waited > 0  # the released connection, not a third one
    assert len(opened) == 2 and pool.stats() == (2, 0, 2, 0, 2)


def test_the_most_recently_released_connection_is_reused():
    connect, opened = fake_connect()
    pool = chpool.Pool(connect, 4)
    a, _ = pool.acquire()
    b, _ = pool.acquire()
    pool.release(a)
    pool.release(b)
    assert pool.acquire()[0] is b
    assert pool.acquire()[0] is a
    assert len(opened) == 2


def test_a_discarded_connection_is_closed_and_replaced():
    connect, opened = fake_connect()
    pool = chpool.Pool(connect, 1)
    a, _ = pool.acquire()
    a.database = "x"
    pool.release(a, discard=True)
    assert a.conn.closed
    b, _ = pool.acquire()
    assert b is not a and b.number == 2 and b.database is None and not b.conn.closed


def test_a_failed_connect_frees_its_place():
    calls = []

    def connect():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("no")
        return FakeConn(len(calls))
    pool = chpool.Pool(connect, 1)
    with pytest.raises(RuntimeError):
        pool.acquire()
    assert pool.stats()[0] == 0
    assert pool.acquire()[0].conn.n == 2


def test_close_lets_in_flight_and_waiting_requests_finish_then_closes_all():
    connect, opened = fake_connect()
    pool = chpool.Pool(connect, 1)
    a, _ = pool.acquire()
    waiter, got = in_thread(pool.acquire)
    until(lambda: pool.stats()[3] == 1, "a request waits")
    closer, closed = in_thread(pool.close)
    assert not a.conn.closed
    pool.release(a)  # the in-flight request ends: the waiting one gets the connection
    waiter.join(30)
    assert got["value"][0] is a and not a.conn.closed and closer.is_alive()
    pool.release(a)  # the waiting one ends: close() closes the connection and returns
    closer.join(30)
    assert closed["value"] is True and a.conn.closed
    with pytest.raises(chpool.PoolClosed):
        pool.acquire()


def test_close_with_a_timeout_closes_a_busy_connection_when_released():
    connect, _ = fake_connect()
    pool = chpool.Pool(connect, 2)
    a, _ = pool.acquire()
    b, _ = pool.acquire()
    pool.release(b)
    assert pool.close(timeout=0) is False
    assert b.conn.closed and not a.conn.closed
    pool.release(a)
    assert a.conn.closed and pool.stats()[0] == 0


def test_size_must_be_positive():
    with pytest.raises(ValueError):
        chpool.Pool(lambda: None, 0)
