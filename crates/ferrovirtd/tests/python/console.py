#!/usr/bin/python3
"""Drives `virsh console` through a pseudo-terminal, as a user at a
terminal does, on commands read from stdin, one per line:

  expect SECONDS REGEX   wait until the console printed REGEX (bytes, after
                         what earlier expects consumed); answers `ok`, or
                         `timeout`/`eof` with what was printed
  send TEXT              type TEXT (Python escapes: \\r, \\x1d for Ctrl-])
  exit SECONDS           wait for virsh to end; answers `exit CODE` and the
                         rest of what it printed

Usage: console.py URI DOMAIN [virsh console options...]
"""

import os
import pty
import re
import select
import signal
import sys
import time


def answer(*words):
    print(*words, flush=True)


class Console:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvp(argv[0], argv)
        self.buf = b""
        self.eof = False

    def read(self, timeout):
        """Reads what is there within `timeout`; False at end of file."""
        if self.eof:
            return False
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def expect(self, timeout, pattern):
        rx = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return answer("ok")
            left = deadline - time.monotonic()
            if left <= 0:
                return answer("timeout", repr(self.buf[-2000:]))
            if not self.read(left):
                return answer("eof", repr(self.buf[-2000:]))

    def send(self, text):
        os.write(self.fd, text.encode().decode("unicode_escape").encode("latin-1"))

    def exit(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while self.read(0.2):
                    pass
                code = os.waitstatus_to_exitcode(status)
                return answer("exit", code, repr(self.buf[-2000:]))
            self.read(0.1)
        os.kill(self.pid, signal.SIGKILL)
        return answer("timeout", repr(self.buf[-2000:]))


def main():
    uri, dom, *options = sys.argv[1:]
    c = Console(["virsh", "-c", uri, "console", *options, dom])
    for line in sys.stdin:
        cmd, _, arg = line.rstrip("\n").partition(" ")
        if cmd == "expect":
            secs, _, pattern = arg.partition(" ")
            c.expect(float(secs), pattern)
        elif cmd == "send":
            c.send(arg)
        elif cmd == "exit":
            c.exit(float(arg))
            return
        else:
            answer("unknown", cmd)


if __name__ == "__main__":
    main()
