"""Python <-> C through the examples-c demos (built by `make -C examples-c`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shmio import Queue

from conftest import C_BUILD, consumers_attached, queue_exists, wait_until

RECORD = 80  # sizeof(struct data { char name[80]; })

pytestmark = pytest.mark.skipif(
    not (C_BUILD / "consumer").exists(), reason="run `make -C examples-c` first"
)


def record(i: int) -> bytes:
    return (b"write Data : %d" % i).ljust(RECORD, b"\0")


def test_python_producer_read_by_c_consumer(qname: str) -> None:
    with Queue.create(qname, slots=16, slot_size=RECORD, policy="backpressure") as tx:
        proc = subprocess.Popen(
            [str(C_BUILD / "consumer"), "-q", qname, "-n", "50", "--from", "oldest"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            wait_until(consumers_attached(qname), "the C consumer to attach")
            for i in range(50):
                if i % 2:
                    tx.send(record(i))
                else:
                    mv = tx.reserve(RECORD)
                    mv[:] = record(i)
                    tx.commit()
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines() == [f"write Data : {i}" for i in range(50)]


def test_c_consumer_sees_a_python_producer_die(qname: str) -> None:
    script = (
        "import sys, time, shmio\n"
        "tx = shmio.Queue.create(sys.argv[1], slot_size=80)\n"
        "tx.send(b'write Data : 0'.ljust(80, b'\\0'))\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    producer = subprocess.Popen([sys.executable, "-c", script, qname], stdout=subprocess.PIPE)
    consumer = None
    try:
        assert producer.stdout is not None
        assert producer.stdout.readline() == b"ready\n"
        consumer = subprocess.Popen(
            [str(C_BUILD / "consumer"), "-q", qname, "--from", "oldest"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_until(consumers_attached(qname), "the C consumer to attach")
        producer.kill()
        out, _ = consumer.communicate(timeout=60)
    finally:
        producer.kill()
        if consumer is not None:
            consumer.kill()
    assert consumer.returncode == 3  # producer died
    assert out.decode().splitlines() == ["write Data : 0"]


def test_c_producer_read_by_python(qname: str) -> None:
    n = 200
    proc = subprocess.Popen(
        [str(C_BUILD / "producer"), "-q", qname, "-b", "-n", str(n), "-i", "0", "-w", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(queue_exists(qname), "the C producer's queue")
        with Queue.open(qname, start="oldest") as rx:
            assert rx.info["slot_size"] == RECORD
            recs = list(rx)  # ends when the C producer closes the queue
            assert rx.lost == 0
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert len(recs) == n
    assert all(len(r) == RECORD for r in recs)
    assert [r.rstrip(b"\0").decode() for r in recs] == [f"write Data : {i}" for i in range(n)]
