"""Baseline for `drover bench collector`: `docker logs -f CONTAINER | python3 THIS BROKERS TOPIC KEY`.
Produces every stdin line as one message (key = the container ID, like the collector), with the
same settings as the collector (idempotent, acks=all, uncompressed), and prints how many lines and bytes were acknowledged."""
import sys

from confluent_kafka import Producer

brokers, topic, key = sys.argv[1], sys.argv[2], sys.argv[3].encode()
delivered = 0
delivered_bytes = 0
errors = {}


def on_delivery(err, msg):
    global delivered, delivered_bytes
    if err is not None:
        errors[str(err)] = errors.get(str(err), 0) + 1
    if err is None:
        delivered += 1
        delivered_bytes += len(msg.value())


p = Producer({
    "bootstrap.servers": brokers,
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "none",
    "linger.ms": 20,
})
for line in sys.stdin.buffer:
    # `docker logs --timestamps` prefixes each line; ship the text after it, as the collector does.
    text = line.rstrip(b"\n").split(b" ", 1)[-1]
    while True:
        try:
            p.produce(topic, text, key=key, on_delivery=on_delivery)
            break
        except BufferError:
            p.poll(0.001)
    p.poll(0)
left = p.flush(120)
print(delivered, delivered_bytes)
if errors or left:
    print(f"delivery errors: {errors}; {left} still queued", file=sys.stderr)
