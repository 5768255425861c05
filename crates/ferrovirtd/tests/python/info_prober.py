#!/usr/bin/python3
"""A libvirt-python client that keeps asking for domain info.

Usage: info_prober.py URI SECONDS RATE NAME...
Opens the connection, prints "ready", waits for a line on stdin, then for
SECONDS calls conn.lookupByName(NAME).info() round-robin over the names,
paced at RATE calls/s (a slow call delays the next; nothing is skipped).
Prints one JSON object: calls, errors, first error, p50/p99/max in ms.
"""
import json
import sys
import time

import libvirt


def pct(v, q):
    if not v:
        return 0.0
    v = sorted(v)
    i = max(1, min(len(v), int(-(-len(v) * q // 1))))
    return v[i - 1]


def main():
    uri, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    names = sys.argv[4:]
    conn = libvirt.open(uri)
    print("ready", flush=True)
    sys.stdin.readline()
    lat = []
    errors = 0
    first_error = None
    start = time.monotonic()
    end = start + seconds
    i = 0
    while True:
        due = start + i / rate
        now = time.monotonic()
        if due >= end:
            break
        if due > now:
            time.sleep(due - now)
        name = names[i % len(names)]
        t0 = time.monotonic()
        try:
            info = conn.lookupByName(name).info()
            if len(info) != 5:
                raise RuntimeError("bad info %r" % (info,))
        except Exception as e:  # noqa: BLE001 - any failure counts
            errors += 1
            if first_error is None:
                first_error = str(e)
        lat.append((time.monotonic() - t0) * 1e3)
        i += 1
    try:
        conn.close()
    except libvirt.libvirtError:
        pass
    print(
        json.dumps(
            {
                "calls": len(lat),
                "errors": errors,
                "first_error": first_error,
                "p50_ms": pct(lat, 0.50),
                "p99_ms": pct(lat, 0.99),
                "max_ms": max(lat) if lat else 0.0,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
