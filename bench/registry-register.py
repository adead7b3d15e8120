"""Registers BENCH_INSTANCES instances of app BENCH on one keepalive
connection, as fast as the registry answers. Usage: registry-register.py HOST PORT N"""

import http.client
import json
import sys


def body(n):
    return json.dumps({"instance": {
        "instanceId": f"bench-{n}",
        "hostName": f"10.0.{n // 250}.{n % 250}",
        "app": "BENCH",
        "ipAddr": f"10.0.{n // 250}.{n % 250}",
        "status": "UP",
        "port": {"$": 8080, "@enabled": "true"},
        "securePort": {"$": 443, "@enabled": "false"},
        "dataCenterInfo": {
            "@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
            "name": "MyOwn",
        },
        "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
        "metadata": {"management.port": "8081", "zone": "a"},
        "homePageUrl": f"http://10.0.{n // 250}.{n % 250}:8080/",
        "statusPageUrl": f"http://10.0.{n // 250}.{n % 250}:8080/actuator/info",
        "healthCheckUrl": f"http://10.0.{n // 250}.{n % 250}:8080/actuator/health",
        "vipAddress": "bench",
        "secureVipAddress": "bench",
        "lastDirtyTimestamp": "1700000000000",
    }}).encode()


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    conn = http.client.HTTPConnection(host, port)
    headers = {"Content-Type": "application/json"}
    for n in range(count):
        conn.request("POST", "/eureka/apps/BENCH", body(n), headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 204:
            sys.exit(f"register bench-{n}: HTTP {resp.status}")


if __name__ == "__main__":
    main()
