"""Drives py-eureka-client, unmodified, for lameduck registry's tests.

Usage: python py_client.py EUREKA_URL APP INSTANCE_ID

Registers, heartbeats and fetches (full, then delta) every second, as
py-eureka-client does by itself. Reads commands on stdin, one per line,
"SEQ COMMAND", and answers each with one JSON line carrying the same "seq":

  apps  -> {"instances": [{"app", "id", "status"}, ...]}  the client's own copy
  down  -> the client reports itself DOWN (status_update)
  stop  -> the client stops: it deregisters (cancel) and the script exits
"""

import json
import sys

import py_eureka_client.eureka_client as eureka_client


def view(client):
    return [
        {"app": app.name, "id": i.instanceId, "status": i.status}
        for app in client.applications.applications
        for i in app.instances
    ]


def main():
    url, app, instance_id = sys.argv[1:4]
    client = eureka_client.init(
        eureka_server=url,
        app_name=app,
        instance_id=instance_id,
        instance_host="127.0.0.1",
        instance_ip="127.0.0.1",
        instance_port=8080,
        renewal_interval_in_secs=1,
        duration_in_secs=10,
    )
    loop = eureka_client.get_event_loop()
    for line in sys.stdin:
        seq, _, cmd = line.strip().partition(" ")
        reply = {"seq": int(seq)}
        if cmd == "apps":
            reply["instances"] = view(client)
        elif cmd == "down":
            loop.run_until_complete(client.status_update("DOWN"))
        elif cmd == "stop":
            eureka_client.stop()
            print(json.dumps(reply), flush=True)
            return
        else:
            reply["error"] = f"unknown command {cmd!r}"
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
