"""An MQTT 3.1.1 device written with paho-mqtt (a client we did not write),
talking to certbound's embedded MQTT server over mutual TLS.

usage: paho_device.py HOST PORT CA_PEM CERT_PEM KEY_PEM DEVICE_ID

Prints one JSON object per line as things happen:
  {"event": "connected", "reason": 0}
  {"event": "subscribed", "filter": ..., "codes": [...]}   (own response topic, then a foreign one)
  {"event": "published", "topic": ...}                        (after the PUBACK)
  {"event": "message", "topic": ..., "payload": ...}          (the answer on its response topic)
Exits 0 after the message, 1 on a timeout or error.
"""

import json
import queue
import ssl
import sys

import paho.mqtt.client as mqtt

TIMEOUT = 20


def say(**event):
    print(json.dumps(event), flush=True)


def main():
    host, port, ca, cert, key, device = sys.argv[1:7]
    inbox = queue.Queue()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv311
    )
    client.tls_set(ca_certs=ca, certfile=cert, keyfile=key, cert_reqs=ssl.CERT_REQUIRED)
    client.on_connect = lambda c, u, flags, rc, props: inbox.put(("connected", rc.value))
    client.on_subscribe = lambda c, u, mid, codes, props: inbox.put(
        ("subscribed", [code.value for code in codes])
    )
    client.on_message = lambda c, u, msg: inbox.put(
        ("message", (msg.topic, msg.payload.decode("utf-8", "replace")))
    )

    def expect(kind):
        got, value = inbox.get(timeout=TIMEOUT)
        if got != kind:
            raise RuntimeError(f"expected {kind}, got {got} {value}")
        return value

    client.connect(host, int(port), keepalive=30)
    client.loop_start()
    try:
        say(event="connected", reason=expect("connected"))
        for topic in (f"cb/v1/{device}/token/res", "cb/v1/someone-else/#"):
            client.subscribe(topic, qos=1)
            say(event="subscribed", filter=topic, codes=expect("subscribed"))
        telemetry = f"cb/v1/{device}/telemetry"
        info = client.publish(telemetry, b"hello from paho", qos=1)
        info.wait_for_publish(timeout=TIMEOUT)
        if not info.is_published():
            raise RuntimeError("no PUBACK")
        say(event="published", topic=telemetry)
        topic, payload = expect("message")
        say(event="message", topic=topic, payload=payload)
        client.disconnect()
    except Exception as e:  # report, then fail
        say(event="error", error=repr(e))
        sys.exit(1)
    finally:
        client.loop_stop()


if __name__ == "__main__":
    main()
