"""A parse worker: ``python -m polisum.ingest.parse_worker MEMORY_MB`` (started by
polisum.ingest.workers). It loads the loaders and Kiwi's model, caps its data segment at that
footprint plus MEMORY_MB, says it is ready, then parses the files it is sent, one at a time."""

from __future__ import annotations

import contextlib
import resource
import signal
import sys


def _data_segment() -> int:
    """Bytes in this process's data segment (what RLIMIT_DATA counts), from /proc."""
    with contextlib.suppress(OSError), open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the driver, which stops us
    memory_mb = int(sys.argv[1])
    from polisum.ingest.stages import parse_file
    from polisum.ingest.workers import READY, read_frame, write_frame
    from polisum.text import warm_kiwi

    warm_kiwi()
    base = _data_segment()
    if memory_mb and base:  # Linux: cap what a file may add to the resting footprint
        cap = base + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library's print() must not corrupt the frames
    write_frame(stdout, READY)
    while True:
        try:
            settings, job = read_frame(stdin)
        except EOFError:
            return
        write_frame(stdout, parse_file(settings, job))


if __name__ == "__main__":
    main()
