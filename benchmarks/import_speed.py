"""Import speed against a bare stdlib parse loop over the same files, in the same run.

    python benchmarks/import_speed.py [MAILDIR] [--repeat 3] [--workers N]

Baseline: for each file, ``mailbox.Message(fh)`` (stdlib email parser, compat32) and the decoded
payload of every leaf part: parsing only, nothing stored, one process. Tiller: the full import
(MIME decoding, own-words splitting, de-duplication, identity inference, SQLite writes in WAL mode)
into a fresh database, as the app runs it: on several CPUs, decoding in worker processes and in
the importer itself whenever it would wait for them (``--workers`` overrides; the single-process import is always measured and printed
too, for comparison). Each phase runs in its own process so its peak RSS is its own (workers'
peak is reported apart). Runs are interleaved and the fastest of each counts. Target ratio >= 0.5.
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def phase_baseline(root: Path) -> dict:
    from app.mail.sources import _walk_files  # the same file list the importer walks

    files = list(_walk_files(root))
    start = time.perf_counter()
    n = 0
    for path in files:
        with open(path, "rb") as fh:
            msg = mailbox.Message(fh)
        for part in msg.walk():
            if not part.is_multipart():
                part.get_payload(decode=True)
        n += 1
    elapsed = time.perf_counter() - start
    return {"messages": n, "seconds": elapsed, "peak_rss_mb": _peak_rss_mb()}


def phase_import(root: Path, workers: int | None) -> dict:
    from app.mail.importer import MailImport
    from app.mail.sources import open_source
    from app.store import open_database

    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(Path(tmp) / "bench.db")
        start = time.perf_counter()
        job = MailImport(db, open_source(root), workers=workers)
        for _ in job.run():
            pass
        elapsed = time.perf_counter() - start
        counts = job.result.counts
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "messages": counts.seen,
        "stored": counts.stored,
        "seconds": elapsed,
        "peak_rss_mb": _peak_rss_mb(),
        "worker_peak_rss_mb": workers_rss,
    }


def _run_phase(name: str, root: Path, workers: int | None = None) -> dict:
    command = [sys.executable, __file__, str(root), "--phase", name]
    if workers is not None:
        command += ["--workers", str(workers)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("maildir", nargs="?", default=str(REPO.parent / "shared/data/enron/maildir"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of each phase; the fastest counts")
    parser.add_argument("--workers", type=int, help="decoding processes (default: what the app picks; 0 inline)")
    parser.add_argument("--phase", choices=["baseline", "import"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = Path(args.maildir)
    if args.phase:
        print(json.dumps(phase_baseline(root) if args.phase == "baseline" else phase_import(root, args.workers)))
        return
    from app.mail.decode_workers import default_workers
    from app.mail.sources import open_source

    workers = default_workers(open_source(root).estimate()) if args.workers is None else args.workers
    _run_phase("baseline", root)  # warm the page cache so neither phase pays for cold reads
    runs: dict[str, list[dict]] = {"baseline": [], "inline": [], "app": []}
    for _ in range(args.repeat):  # interleaved, so a noisy neighbour hits every phase alike
        runs["baseline"].append(_run_phase("baseline", root))
        runs["inline"].append(_run_phase("import", root, 0))
        if workers:
            runs["app"].append(_run_phase("import", root, workers))
    best = {name: min(r, key=lambda r: r["seconds"]) for name, r in runs.items() if r}
    base = best["baseline"]
    base_rate = base["messages"] / base["seconds"]
    print(f"maildir: {root} ({base['messages']} files; cpu count {os.cpu_count()})")
    print(f"stdlib mailbox parse loop      : {base_rate:8.0f} msg/s   peak RSS {base['peak_rss_mb']:.0f} MB")
    inline = best["inline"]
    inline_rate = inline["messages"] / inline["seconds"]
    print(
        f"tiller import, one process     : {inline_rate:8.0f} msg/s   peak RSS {inline['peak_rss_mb']:.0f} MB"
        f"   ({inline['stored']} stored)   ratio {inline_rate / base_rate:.2f}"
    )
    app = best.get("app", inline)
    rate = app["messages"] / app["seconds"]
    if workers:
        print(
            f"tiller import, {workers} worker(s) + own : {rate:8.0f} msg/s   peak RSS {app['peak_rss_mb']:.0f} MB"
            f" + {app['worker_peak_rss_mb']:.0f} MB per worker   ({app['stored']} stored)"
        )
    ratio = rate / base_rate
    print(f"ratio={ratio:.2f} (target >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
