"""Baseline for `drover bench kafka`: the same produce/consume run with Python's
confluent-kafka (librdkafka bundled in the wheel). Prints one JSON object."""
import json
import sys
import time
import uuid

try:
    from confluent_kafka import Consumer, Producer
except ImportError:
    print(json.dumps({"error": "confluent-kafka is not installed: pip install confluent-kafka (scripts/setup.sh does)"}))
    sys.exit(0)

brokers, topic, n, size, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
payload = b"x" * size
delivered = 0
failed = 0


def on_delivery(err, _msg):
    global delivered, failed
    if err is None:
        delivered += 1
    else:
        failed += 1


p = Producer({
    "bootstrap.servers": brokers,
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "none",
    "linger.ms": 5,
})
start = time.perf_counter()
for i in range(n):
    key = str(i % partitions).encode()
    while True:
        try:
            p.produce(topic, payload, key=key, on_delivery=on_delivery)
            break
        except BufferError:
            p.poll(0.001)
    p.poll(0)
p.flush(120)
produce_s = time.perf_counter() - start

c = Consumer({
    "bootstrap.servers": brokers,
    "group.id": "bench-py-" + uuid.uuid4().hex,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
})
c.subscribe([topic])
got = 0
first = None
deadline = time.time() + 180
while got < n and time.time() < deadline:
    msgs = c.consume(num_messages=10000, timeout=1.0)
    for m in msgs:
        if m.error() is None:
            if first is None:
                first = time.perf_counter()
            got += 1
consume_s = (time.perf_counter() - first) if first else 0.0
c.close()
print(json.dumps({
    "produced": delivered,
    "failed": failed,
    "produce_secs": produce_s,
    "consumed": got,
    "consume_secs": consume_s,
}))
