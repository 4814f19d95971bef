"""An MQTT 5 device written with paho-mqtt (a client we did not write) asks
certbound's broker for a token over the embedded MQTT server, with mutual TLS,
a Response Topic inside its own namespace and Correlation Data.

usage: paho_v5_token.py HOST PORT CA_PEM CERT_PEM KEY_PEM DEVICE_ID REQUEST_FILE

REQUEST_FILE holds the signed token request (COSE_Sign1) to publish. Prints
one JSON object: the topic the answer came on, the correlation data sent and
received (hex), the CONNACK and SUBACK reason codes and the answer (hex).
Exits 1 on a timeout or error.
"""

import json
import os
import queue
import ssl
import sys

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TIMEOUT = 20


def main():
    host, port, ca, cert, key, device, request_file = sys.argv[1:8]
    with open(request_file, "rb") as f:
        request = f.read()
    inbox = queue.Queue()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"{device}-paho5", protocol=mqtt.MQTTv5
    )
    client.tls_set(ca_certs=ca, certfile=cert, keyfile=key, cert_reqs=ssl.CERT_REQUIRED)
    client.on_connect = lambda c, u, flags, rc, props: inbox.put(("connected", rc.value))
    client.on_subscribe = lambda c, u, mid, codes, props: inbox.put(
        ("subscribed", [code.value for code in codes])
    )
    client.on_message = lambda c, u, msg: inbox.put(("message", msg))

    def expect(kind):
        got, value = inbox.get(timeout=TIMEOUT)
        if got != kind:
            raise RuntimeError(f"expected {kind}, got {got} {value}")
        return value

    reply_topic = f"cb/v1/{device}/inbox/paho"
    correlation = os.urandom(8)
    client.connect(host, int(port), keepalive=30)
    client.loop_start()
    try:
        connack = expect("connected")
        client.subscribe(reply_topic, qos=1)
        suback = expect("subscribed")
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        props.CorrelationData = correlation
        info = client.publish(f"cb/v1/{device}/token/req", request, qos=1, properties=props)
        info.wait_for_publish(timeout=TIMEOUT)
        msg = expect("message")
        got = getattr(msg.properties, "CorrelationData", b"") if msg.properties else b""
        print(
            json.dumps(
                {
                    "connack": connack,
                    "suback": suback,
                    "topic": msg.topic,
                    "sent_correlation": correlation.hex(),
                    "correlation": got.hex(),
                    "payload": msg.payload.hex(),
                }
            ),
            flush=True,
        )
        client.disconnect()
    except Exception as e:  # report, then fail
        print(json.dumps({"error": repr(e)}), flush=True)
        sys.exit(1)
    finally:
        client.loop_stop()


if __name__ == "__main__":
    main()
