#!/usr/bin/env python3
"""MQTT test client on paho-mqtt (the PyPI package).

    mqtt_client.py pub PORT --topic T --qos Q [--count N] [--rate R] [--v5] [--traceparent TP] [--retain]
    mqtt_client.py sub PORT --topic FILTER --qos Q [--count N]   prints "ready" once subscribed
    mqtt_client.py idle PORT --keepalive K --seconds S          connected and silent: keep-alive pings only
    mqtt_client.py die PORT --topic FILTER [--will TOPIC]       subscribes, then exits without DISCONNECT

--cafile CERT connects over TLS (Python's ssl module: OpenSSL).
"""
import argparse
import os
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["pub", "sub", "idle", "die"])
    ap.add_argument("port", type=int)
    ap.add_argument("--id", default="")
    ap.add_argument("--topic", default="t")
    ap.add_argument("--qos", type=int, default=0)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0, help="messages per second (0: as fast as possible)")
    ap.add_argument("--v5", action="store_true")
    ap.add_argument("--traceparent", default="")
    ap.add_argument("--retain", action="store_true")
    ap.add_argument("--keepalive", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--will", default="")
    ap.add_argument("--cafile", default="", help="connect over TLS, trusting this certificate")
    ap.add_argument("--wait-ms", type=int, default=800, help="lets the agent instrument us before we connect")
    a = ap.parse_args()
    time.sleep(a.wait_ms / 1000)

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=a.id, protocol=mqtt.MQTTv5 if a.v5 else mqtt.MQTTv311)
    c.max_inflight_messages_set(0)
    c.max_queued_messages_set(0)
    if a.will:
        c.will_set(a.will, b"gone", qos=1)
    if a.cafile:
        c.tls_set(ca_certs=a.cafile)
    got = []
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(_c, _u, msg):
        got.append(msg)
        if len(got) >= a.count:
            done.set()

    c.on_message = on_message
    c.on_subscribe = lambda *_: subscribed.set()
    c.connect("127.0.0.1", a.port, keepalive=a.keepalive)
    c.loop_start()

    if a.mode == "pub":
        props = None
        if a.traceparent:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = ("traceparent", a.traceparent)
        start = time.monotonic()
        infos = []
        for i in range(a.count):
            if a.rate:
                delay = start + i / a.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            infos.append(c.publish(a.topic, f"m{i}".encode(), qos=a.qos, retain=a.retain, properties=props))
        for info in infos:
            info.wait_for_publish(60)
        print(f"published {a.count} in {time.monotonic() - start:.2f}s", flush=True)
        c.disconnect()
    elif a.mode == "sub":
        c.subscribe(a.topic, qos=a.qos)
        subscribed.wait(10)
        print("ready", flush=True)
        done.wait(a.seconds)
        for m in got[:50]:
            print(f"got {m.topic} {len(m.payload)} qos={m.qos} retain={int(m.retain)}", flush=True)
        print(f"received {len(got)}", flush=True)
        c.disconnect()
    elif a.mode == "idle":
        time.sleep(a.seconds)
        c.disconnect()
    elif a.mode == "die":
        c.subscribe(a.topic, qos=1)
        subscribed.wait(10)
        print("ready", flush=True)
        os._exit(3)  # no DISCONNECT: the broker sees the connection drop
    c.loop_stop()


if __name__ == "__main__":
    main()
