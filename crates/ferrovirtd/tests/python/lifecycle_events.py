#!/usr/bin/python3
"""Registers lifecycle callbacks with libvirt-python and drives one domain
through define/start/suspend/resume/destroy/undefine, then checks that the
events arrived in that order.

Usage: lifecycle_events.py URI DOMAIN_XML_FILE
Exit 0 on success; prints what it saw either way.
"""
import sys
import threading
import time

import libvirt

EXPECTED = [
    ("DEFINED", 0),
    ("STARTED", 0),
    ("SUSPENDED", 0),
    ("RESUMED", 0),
    ("STOPPED", 1),  # destroyed
    ("UNDEFINED", 0),
]
NAMES = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "DEFINED",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "UNDEFINED",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "STARTED",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "SUSPENDED",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "RESUMED",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "STOPPED",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "SHUTDOWN",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "CRASHED",
}


def main():
    uri, xml_path = sys.argv[1], sys.argv[2]
    xml = open(xml_path).read()
    libvirt.virEventRegisterDefaultImpl()
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=loop, daemon=True).start()
    conn = libvirt.open(uri)
    seen = []
    cond = threading.Condition()

    def on_lifecycle(_conn, dom, event, detail, _opaque):
        with cond:
            seen.append((NAMES.get(event, str(event)), detail, dom.name()))
            cond.notify_all()

    cb = conn.domainEventRegisterAny(
        None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None
    )
    dom = conn.defineXML(xml)
    name = dom.name()
    dom.create()
    dom.suspend()
    dom.resume()
    dom.destroy()
    dom.undefine()

    deadline = time.monotonic() + 30
    with cond:
        while len(seen) < len(EXPECTED) and time.monotonic() < deadline:
            cond.wait(timeout=0.5)
    conn.domainEventDeregisterAny(cb)
    conn.close()
    stop.set()
    got = [(e, d) for (e, d, n) in seen if n == name]
    print("events:", got)
    if got != EXPECTED:
        print("expected:", EXPECTED)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
