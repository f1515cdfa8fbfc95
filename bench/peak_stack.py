"""Run the `iss` command and tell where its RSS peaked: every thread's stack at the highest VmRSS seen
(sampled every 20 ms), written to the file named by ISS_PEAK_REPORT (default: standard error).

    .venv/bin/python bench/peak_stack.py [iss arguments ...]

A tool for the memory questions of bench/online.py and bench/online_pulp.py (--peak-stacks); the
sampler thread itself adds well under 1 MiB."""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import traceback


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class PeakStacks:
    def __init__(self) -> None:
        self.peak = 0
        self.stacks: dict[str, traceback.StackSummary] = {}
        threading.Thread(target=self._sample, name="peak-sampler", daemon=True).start()

    def _sample(self) -> None:
        me = threading.get_ident()
        while True:
            rss = _rss_kib()
            if rss > self.peak:
                frames = sys._current_frames()
                self.stacks = {
                    t.name: traceback.extract_stack(frames[t.ident])
                    for t in threading.enumerate()
                    if t.ident in frames and t.ident != me
                }
                self.peak = rss
            time.sleep(0.02)

    def report(self) -> None:
        lines = [f"peak VmRSS {self.peak / 1024:.1f} MiB; the threads' stacks then:"]
        for name, stack in self.stacks.items():
            lines.append(f"--- {name}")
            lines += [s.rstrip() for s in traceback.format_list(stack[-12:])]
        text = "\n".join(lines) + "\n"
        target = os.environ.get("ISS_PEAK_REPORT")
        if target:
            with open(target, "a") as f:
                f.write(text)
        else:
            sys.stderr.write(text)


if __name__ == "__main__":
    atexit.register(PeakStacks().report)
    from iss_plugin.cli import main

    sys.argv = ["iss", *sys.argv[1:]]
    main()
