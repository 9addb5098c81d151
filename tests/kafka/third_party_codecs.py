#!/usr/bin/env python3
"""A third-party Kafka producer (Python confluent-kafka, idempotent) writes 100 records with
each compression codec to the embedded broker, and a confluent-kafka consumer reads them
back; then a record is produced to a topic that does not exist. Prints one JSON line
prefixed `RESULT ` for tests/tests/kafka_broker.rs, which decides what is expected.

    third_party_codecs.py BOOTSTRAP
"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

b = sys.argv[1]
admin = AdminClient({"bootstrap.servers": b})
result = {"codecs": {}}
for codec in ["none", "gzip", "lz4", "snappy", "zstd"]:
    topic = f"codec-{codec}-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    errors = []
    p = Producer({"bootstrap.servers": b, "compression.type": codec,
                  "enable.idempotence": True, "message.timeout.ms": 10000})
    for i in range(100):
        p.produce(topic, key=b"k", value=f"{codec}-{i}".encode(),
                  on_delivery=lambda e, m: errors.append(str(e)) if e else None)
    p.flush(15)
    c = Consumer({"bootstrap.servers": b, "group.id": topic, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    values, consume_errors = [], []
    deadline = time.time() + 10
    while time.time() < deadline and len(values) < 100:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            consume_errors.append(str(m.error()))
            continue
        values.append(m.value().decode())
    c.close()
    result["codecs"][codec] = {
        "produce_errors": errors[:3],
        "read_back": len(values),
        "in_order": values == [f"{codec}-{i}" for i in range(len(values))],
        "consume_errors": consume_errors[:3],
    }
missing = f"missing-{uuid.uuid4().hex[:8]}"
errors = []
p = Producer({"bootstrap.servers": b, "message.timeout.ms": 5000})
p.produce(missing, value=b"x", on_delivery=lambda e, m: errors.append(str(e)) if e else None)
p.flush(10)
result["missing_topic"] = {
    "produce_errors": errors[:1],
    "created": missing in admin.list_topics(timeout=5).topics,
}
print("RESULT " + json.dumps(result), flush=True)
