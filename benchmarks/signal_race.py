"""Signals sent to `rocksynth synthesize` the moment its temporary output appears: how often
does each end as it should (exit 128 + N, nothing left) and how often is the signal lost (exit 0)?

Each run writes a 256^3 volume into a fresh folder; this process polls every 5 ms for the
temporary file and sends SIGINT, SIGTERM and SIGHUP in turn. Run it beside another job: the race
shows more often under load (docs/notes/2026-12-06-lost-signal.md).

    python benchmarks/signal_race.py --runs 45
"""

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _default_signals() -> None:  # a loop started under nohup passes SIGHUP ignored to its children
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def one_run(folder: Path, signum: int, size: int) -> str:
    """The outcome of one signalled run: 'ok', 'lost', 'left files', 'finished first' or 'exit N'."""
    command = [shutil.which("rocksynth") or str(Path(sys.executable).with_name("rocksynth")),
               "synthesize", "--texture", "berea", "--size", str(size), "--out", "x.tif"]
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               preexec_fn=_default_signals)
    while not list(folder.glob(".rocksynth-*")) and process.poll() is None:
        time.sleep(0.005)
    if process.poll() is not None:
        return "finished first"
    process.send_signal(signum)
    process.communicate(timeout=300)
    if process.returncode == 0:
        return "lost"
    if process.returncode != 128 + signum:
        return f"exit {process.returncode}"
    return "left files" if any(folder.iterdir()) else "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=45)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    outcomes = collections.Counter()
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            outcome = one_run(Path(folder), SIGNALS[run % len(SIGNALS)], args.size)
        outcomes[outcome] += 1
        print(f"run {run}: {signal.Signals(SIGNALS[run % len(SIGNALS)]).name} -> {outcome}", flush=True)
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))


if __name__ == "__main__":
    main()
