#!/usr/bin/env python3
"""The interactive REPL through a pseudo-terminal: TAB completion, history (up-arrow and the
history file), Ctrl-C while typing and during a long evaluation, Ctrl-D.

usage: pty_test.py PATH/TO/twinq
"""
import os
import pty
import re
import select
import shutil
import signal
import sys
import tempfile
import termios
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "data", "demo.ndjson")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]|\r|\x07|\x08")

failures = []


class Session:
    """twinq repl on a pty, with a transcript and pattern waits."""

    def __init__(self, twinq, home, extra_env=None, twins=DEMO):
        env = dict(os.environ)
        env.update({"HOME": home, "TERM": "xterm", "LC_ALL": "C.UTF-8", "COLUMNS": "100"})
        env.update(extra_env or {})
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(twinq, [twinq, "repl", "--twins", twins], env)
        self.raw = b""
        self.pos = 0  # start of the unread part of the cleaned transcript

    def text(self):
        return ANSI.sub(b"", self.raw).decode("utf-8", "replace")

    def pump(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return False
        if not data:
            return False
        self.raw += data
        return True

    def expect(self, pattern, timeout=20.0, what=None):
        """Waits for `pattern` (a regex) in the output after the last match; returns the match."""
        deadline = time.time() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.text(), self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.time()
            if left <= 0 or not self.pump(min(left, 0.2)) and not self.alive():
                if not self.alive():
                    m = rx.search(self.text(), self.pos)
                    if m:
                        self.pos = m.end()
                        return m
                fail(f"{what or pattern!r}: not seen; output since: {self.text()[self.pos:][-600:]!r}")
                return None

    def send(self, data, editing=True):
        """Types `data`. `editing`: first wait until libedit has the terminal in its raw mode, so
        that keys are not taken by the cooked terminal in between (a ^D there would be lost)."""
        if editing:
            deadline = time.time() + 10
            while time.time() < deadline:
                try:
                    if not termios.tcgetattr(self.fd)[3] & termios.ICANON:
                        break
                except termios.error:
                    break
                self.pump(0.01)
        os.write(self.fd, data.encode() if isinstance(data, str) else data)

    def alive(self):
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True
        self.status = _
        self.pid_done = True
        return False

    def wait_exit(self, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.pump(0.1)
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return getattr(self, "status", 0)
            if pid != 0:
                return status
        return None

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def fail(message):
    failures.append(message)
    print("FAIL: " + message, file=sys.stderr)


PROMPT = r"twinq> "


def main():
    twinq = os.path.abspath(sys.argv[1])
    home = tempfile.mkdtemp(prefix="twinq_pty.")
    try:
        s = Session(twinq, home)
        s.expect(r"12 device twins, 9 module twins", what="banner")
        s.expect(PROMPT, what="first prompt")

        # Completion: a path prefix + TAB completes to the next segment; the statement typed on
        # top of the completed text runs.
        s.send("tags.lo\t")
        s.expect(r"tags\.location\.", what="tags.lo<TAB> -> tags.location.")
        s.send("reg\t")
        s.expect(r"ion", what="tags.location.reg<TAB> -> region")
        s.send(" = 'EU';\r")
        s.expect(r"6 device twins match", what="completed statement runs")
        s.expect(PROMPT)
        # A keyword and a function name, letter case following the typed prefix.
        s.send("SEL\t")
        s.expect(r"SELECT", what="SEL<TAB> -> SELECT")
        s.send(" COUNT() AS n FROM devices WHERE starts\t")
        s.expect(r"startswith", what="starts<TAB> -> startswith")
        s.send("(deviceId, 'dev-00');\r")
        s.expect(r'\{"n":9\}', what="completed query runs")
        s.expect(PROMPT)
        # Ambiguous: a second TAB lists the candidates.
        s.send("tags.\t\t")
        s.expect(r"tags\.building[\s\S]*tags\.floor", what="tags.<TAB><TAB> lists candidates")
        s.send("\x03")  # and Ctrl-C abandons the line
        s.expect(r"\^C", what="^C after the listing")
        s.expect(PROMPT)

        # Ctrl-C while typing drops the line (and a pending multi-line statement).
        s.send("tags.floor = ")
        s.expect(r"tags\.floor = ")
        s.send("\x03")
        s.expect(r"\^C", what="^C echoed")
        s.expect(PROMPT, what="prompt after ^C")
        s.send("tags.floor =\r")
        s.expect(r"\.\.\.> ", what="continuation prompt")
        s.send("\x03")
        s.expect(PROMPT, what="prompt after ^C in a continuation")
        s.send("\x03")  # at an empty prompt: a new prompt
        s.expect(PROMPT, what="prompt after ^C at an empty prompt")
        s.send("*;\r")
        s.expect(r"12 device twins match", what="after ^C, the dropped text is gone")
        s.expect(PROMPT)

        # History: up-arrow recalls the previous statement.
        s.send("tags.building = '43';\r")
        s.expect(r"4 device twins match")
        s.expect(PROMPT)
        s.send(".mode count\r")
        s.expect(PROMPT)
        s.send("\x1b[A\x1b[A")  # up twice: past .mode count to the condition
        s.expect(r"tags\.building = '43';", what="up-arrow recalls the statement")
        s.send("\r")
        s.expect(r"\n4\n", what="recalled statement runs (count mode)")
        s.expect(PROMPT)

        # Ctrl-D at an empty prompt quits.
        s.send("\x04")
        status = s.wait_exit()
        if status is None:
            fail("Ctrl-D did not end the session")
            s.kill()
        elif not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            fail(f"Ctrl-D: exit status {status}")
        hist = os.path.join(home, ".twinq_history")
        if not os.path.exists(hist):
            fail("no history file in $HOME")
        else:
            with open(hist, "rb") as f:
                content = f.read().decode("utf-8", "replace")
            if "building" not in content or "count" not in content:
                fail(f"history file lacks the session's lines: {content[-300:]!r}")

        # A new session sees the saved history.
        s = Session(twinq, home)
        s.expect(PROMPT, what="prompt (second session)")
        s.send("\x1b[A")
        s.expect(r"tags\.building = '43';", what="history from the file")
        s.send("\x03")
        s.expect(PROMPT)
        s.send("\x04")
        if s.wait_exit() is None:
            fail("second session did not end")
            s.kill()

        # Ctrl-C during a long evaluation (every evaluation sleeps 4 s first, a test hook): back
        # at the prompt at once, and the REPL goes on working.
        s = Session(twinq, home, {"TWINQ_REPL_TEST_EVAL_DELAY_MS": "4000"})
        s.expect(PROMPT)
        s.send("*;\r")
        time.sleep(0.5)
        t0 = time.time()
        s.send("\x03", editing=False)
        s.expect(r"interrupted", timeout=3, what="evaluation interrupted")
        s.expect(PROMPT, timeout=3, what="prompt after interrupting")
        if time.time() - t0 > 2.5:
            fail(f"interrupting took {time.time() - t0:.1f} s")
        s.send("tags.floor = 3;\r")
        s.expect(r"3 device twins match", timeout=20, what="works after an interruption")
        s.expect(PROMPT)
        # Quit while an abandoned evaluation still runs: a clean exit.
        s.send("*;\r")
        time.sleep(0.3)
        s.send("\x03", editing=False)
        s.expect(r"interrupted", timeout=3)
        s.expect(PROMPT)
        s.send(".quit\r")
        status = s.wait_exit()
        if status is None or not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            fail(f".quit with a running worker: exit status {status}")
            s.kill()

        # Ctrl-C while a long result is being printed (4,000 twins, no limit; the terminal is
        # not read, so the REPL blocks writing): printing stops, the REPL goes on.
        big = os.path.join(home, "big.ndjson")
        os.spawnv(os.P_WAIT, twinq, [twinq, "gen", "--devices", "4000", "-o", big])
        s = Session(twinq, home, twins=big)
        s.expect(PROMPT)
        s.send(".limit 0\r")
        s.expect(PROMPT)
        s.send("SELECT * FROM devices;\r")
        s.expect(r"dev-0000000", what="printing started")
        time.sleep(1.0)
        s.send("\x03", editing=False)
        s.expect(r"interrupted", timeout=10, what="printing interrupted")
        s.expect(PROMPT, timeout=10)
        if "(4,000 rows)" in s.text():
            fail("printing was not interrupted (the whole result was printed)")
        s.send(".mode count\r")
        s.expect(PROMPT)
        s.send("*;\r")
        s.expect(r"\n4000\n", what="works after interrupting the printing")
        s.expect(PROMPT)
        s.send("\x04")
        if s.wait_exit() is None:
            fail("session did not end")
            s.kill()
    finally:
        shutil.rmtree(home, ignore_errors=True)

    if failures:
        print(f"pty_test: {len(failures)} failure(s)", file=sys.stderr)
        return 1
    print("pty_test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
