#!/usr/bin/python3
# Runs a command with fd 1 and fd 2 on one pipe, as qmail-rspawn wires qmail-remote: the pipe
# is shrunk to --size bytes (F_SETPIPE_SZ), its write end is made non-blocking (O_NONBLOCK),
# and the reader waits --pause seconds before it reads anything, then reads --chunk bytes at a
# time. Everything read is written to this program's stdout. The exit status is the command's,
# 128+N if signal N ended it, or 99 if it had not ended --bound seconds after it started (it is
# then killed): a hang.
#
#   report-pipe.py [--stdin MODE] [--size N] [--pause S] [--chunk N] [--bound S] -- command args...
#   MODE: closed | file:PATH (read-only) | write:PATH (open for writing only) | dir:PATH
import argparse
import fcntl
import os
import select
import subprocess
import sys
import time

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
HUNG = 99


def open_stdin(mode):
    if mode == "closed":
        return None
    kind, _, path = mode.partition(":")
    if kind == "file":
        return os.open(path, os.O_RDONLY)
    if kind == "write":
        return os.open(path, os.O_WRONLY | os.O_APPEND)
    if kind == "dir":
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    raise SystemExit("bad --stdin " + mode)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stdin", default="closed")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--pause", type=float, default=0.5)
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--bound", type=float, default=90)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, args.size)
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    stdin = open_stdin(args.stdin)

    def wire():
        if stdin is None:
            os.close(0)
        else:
            os.dup2(stdin, 0)
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)

    started = time.monotonic()
    child = subprocess.Popen(args.command, preexec_fn=wire, close_fds=True, stdin=None, stdout=None, stderr=None)
    os.close(write_end)
    if stdin is not None:
        os.close(stdin)
    time.sleep(args.pause)

    out = bytearray()
    while True:
        left = args.bound - (time.monotonic() - started)
        if left <= 0:
            child.kill()
            child.wait()
            sys.stdout.buffer.write(bytes(out))
            return HUNG
        ready, _, _ = select.select([read_end], [], [], left)
        if not ready:
            continue
        data = os.read(read_end, args.chunk)
        if not data:
            break
        out += data
    # EOF: every holder of the write end has closed it; the process must end now too.
    try:
        status = child.wait(timeout=max(1.0, args.bound - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        sys.stdout.buffer.write(bytes(out))
        return HUNG
    sys.stdout.buffer.write(bytes(out))
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
