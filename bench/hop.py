"""Where one exactly-once hop's milliseconds go, with raw librdkafka clients (no streams code).

``python -m bench.hop [--messages 200] [--variants "name:key=value,...;..."]``

A hop, as a worker does it: a source producer sends one message to ``in``; a read_committed group
consumer receives it; a transactional producer begins a transaction, produces one output to ``out``,
adds the input offset (``send_offsets_to_transaction``) and commits; an observer, a read_committed
consumer of ``out``, sees the output. One message at a time, on topics of one partition. Printed per
phase: median and p90 ms.

Each variant runs on topics of its own, one after another. Keys: ``linger`` (the transactional
producer's ``linger.ms``, 5), ``backoff`` (its ``retry.backoff.ms``, 100), ``fetch_wait`` (both
consumers' ``fetch.wait.max.ms``, 500), ``nodelay`` (1: every client sets ``socket.nagle.disable``),
``alo`` (1: an at-least-once hop instead: the output produced without a transaction, then the offset
committed by the consumer). The default compares librdkafka's defaults with the worker's settings
(streams/transport/clients.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


def _ms(a: float, b: float) -> float:
    return (b - a) * 1000


def _topics(admin: AdminClient, names: list[str]) -> None:
    for future in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        future.result()
    time.sleep(1.0)


def run_variant(
    name: str, messages: int, linger: int, fetch_wait: int, alo: bool, nodelay: bool, backoff: int
) -> dict[str, list[float]]:
    tag = uuid.uuid4().hex[:8]
    src, dst = f"hop-in-{tag}", f"hop-out-{tag}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    _topics(admin, [src, dst])
    common: dict[str, Any] = {"bootstrap.servers": BOOTSTRAP, "socket.nagle.disable": nodelay}
    source = Producer({**common, "enable.idempotence": True, "acks": "all", "linger.ms": 0})
    out_conf: dict[str, Any] = {
        **common,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": linger,
        "compression.type": "lz4",
    }
    if not alo:
        out_conf |= {
            "transactional.id": f"hop-{tag}",
            "transaction.timeout.ms": 10_000,
            "retry.backoff.ms": backoff,
        }
    out = Producer(out_conf)
    if not alo:
        out.init_transactions(30)
    consumer_conf = {
        **common,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": fetch_wait,
    }
    worker = Consumer({**consumer_conf, "group.id": f"hop-{tag}", "enable.auto.offset.store": False})
    worker.assign([TopicPartition(src, 0, 0)])
    observer = Consumer({**consumer_conf, "group.id": f"hop-obs-{tag}"})
    observer.assign([TopicPartition(dst, 0, 0)])
    seen: dict[int, float] = {}
    stop = threading.Event()

    def observe() -> None:
        while not stop.is_set():
            message = observer.poll(0.1)
            if message is not None and message.error() is None:
                seen[int(message.value())] = time.perf_counter()

    thread = threading.Thread(target=observe, daemon=True)
    thread.start()
    phases: dict[str, list[float]] = {
        k: []
        for k in (
            "src ack",
            "src->worker sees",
            "begin",
            "produce",
            "send_offsets",
            "commit",
            "commit->observer sees",
            "hop total",
        )
    }
    warm = 10
    for i in range(messages + warm):
        t0 = time.perf_counter()
        source.produce(src, str(i).encode())
        source.flush(10)
        t_ack = time.perf_counter()
        while True:
            message = worker.poll(0.1)
            if message is not None and message.error() is None:
                break
        t1 = time.perf_counter()
        offsets = [TopicPartition(src, 0, message.offset() + 1)]
        if alo:
            out.produce(dst, message.value())
            out.flush(10)
            t3 = t4 = time.perf_counter()
            worker.commit(offsets=offsets, asynchronous=False)
            t5 = time.perf_counter()
            t2 = t1
        else:
            out.begin_transaction()
            t2 = time.perf_counter()
            out.produce(dst, message.value())
            t3 = time.perf_counter()
            out.send_offsets_to_transaction(offsets, worker.consumer_group_metadata(), 30)
            t4 = time.perf_counter()
            out.commit_transaction(30)
            t5 = time.perf_counter()
        while i not in seen:
            time.sleep(0.0002)
        t6 = seen[i]
        if i < warm:
            continue
        for key, value in (
            ("src ack", _ms(t0, t_ack)),
            ("src->worker sees", _ms(t0, t1)),
            ("begin", _ms(t1, t2)),
            ("produce", _ms(t2, t3)),
            ("send_offsets", _ms(t3, t4)),
            ("commit", _ms(t4, t5)),
            ("commit->observer sees", _ms(t5, t6)),
            ("hop total", _ms(t0, t6)),
        ):
            phases[key].append(value)
    stop.set()
    thread.join()
    for client in (worker, observer):
        client.close()
    admin.delete_topics([src, dst])
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument(
        "--variants", default="librdkafka-defaults:linger=5,backoff=100;worker:linger=0,backoff=2"
    )
    args = parser.parse_args()
    for spec in args.variants.split(";"):
        name, _, rest = spec.partition(":")
        opts = dict(kv.split("=") for kv in rest.split(",") if kv)
        phases = run_variant(
            name,
            args.messages,
            int(opts.get("linger", 5)),
            int(opts.get("fetch_wait", 500)),
            opts.get("alo", "0") == "1",
            opts.get("nodelay", "0") == "1",
            int(opts.get("backoff", 100)),
        )
        print(f"{name} ({rest}), {args.messages} messages: median / p90 ms")
        for key, values in phases.items():
            values.sort()
            p90 = values[int(len(values) * 0.9)]
            print(f"  {key:24s} {statistics.median(values):7.2f} {p90:7.2f}")


if __name__ == "__main__":
    main()
