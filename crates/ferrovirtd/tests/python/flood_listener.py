#!/usr/bin/python3
"""A live libvirt-python event listener for the flood test.

Registers a lifecycle callback (default event loop implementation, like
`virsh event`), counts what arrives as fast as libvirt-python lets it, and
notices when the daemon closes the connection (a client that cannot keep
up with its bounded output queue is disconnected by design).

Usage: flood_listener.py URI
Prints "ready" once registered; then waits for a line (or EOF) on stdin and
prints one JSON object with the counts, and exits 0.
"""
import json
import sys
import threading
import time

import libvirt


def main():
    uri = sys.argv[1]
    libvirt.virEventRegisterDefaultImpl()
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=loop, daemon=True).start()
    conn = libvirt.open(uri)
    st = {
        "events": 0,
        "suspended": 0,
        "resumed": 0,
        "other": 0,
        "first_event_at": None,
        "last_event_at": None,
        "closed_at": None,
        "close_reason": None,
    }

    def on_lifecycle(_conn, dom, event, _detail, _opaque):
        now = time.time()
        if st["first_event_at"] is None:
            st["first_event_at"] = now
        st["last_event_at"] = now
        st["events"] += 1
        if event == libvirt.VIR_DOMAIN_EVENT_SUSPENDED:
            st["suspended"] += 1
        elif event == libvirt.VIR_DOMAIN_EVENT_RESUMED:
            st["resumed"] += 1
        else:
            st["other"] += 1

    def on_close(_conn, reason, _opaque):
        st["closed_at"] = time.time()
        st["close_reason"] = reason

    conn.registerCloseCallback(on_close, None)
    conn.domainEventRegisterAny(
        None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None
    )
    print("ready", flush=True)
    sys.stdin.readline()
    # Is the connection still usable? (A dropped client gets an error.)
    alive = False
    try:
        alive = conn.isAlive() == 1 and conn.getType() is not None
    except libvirt.libvirtError:
        alive = False
    st["alive_at_end"] = alive
    try:
        conn.close()
    except libvirt.libvirtError:
        pass
    stop.set()
    print(json.dumps(st), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
