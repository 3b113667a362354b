"""Run the juhe sandbox, or write a roster CSV for its dataset.

    python -m juhe_sandbox --port 8765 --size 200 --seed 7 [--ready-file PATH]
    python -m juhe_sandbox --write-roster roster.csv --size 200 --seed 7 [--demo-rejects]

Serving runs in the foreground until SIGTERM or SIGINT and exits 0; once listening it prints one
line with the endpoint URL (never the key) and, with --ready-file, writes the URL to that file.
The committed demo roster is `--write-roster juhe_sandbox/data/sample_roster.csv --demo-rejects`.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from random import Random
from types import FrameType

from juhe_sandbox import identifiers as ids
from juhe_sandbox.dataset import Dataset
from juhe_sandbox.server import FAULT_KINDS, SandboxConfig, SandboxServer

ROSTER_HEADER = ("企业名称", "统一社会信用代码", "注册号")
SAMPLE_ROSTER = Path(__file__).parent / "data" / "sample_roster.csv"


def demo_reject_rows(dataset: Dataset) -> list[tuple[str, str, str]]:
    """Rows a roster loader must reject or merge, appended to the demo roster:
    a USCC with a wrong check character; a row of whitespace only; a 300-character name; the
    same company again with half-width brackets (a duplicate to merge, not a reject); and one
    name given with two different valid USCCs (a conflict)."""
    rng = Random(dataset.seed)
    bracketed = next(c for c in dataset.companies if "（" in c.name and c.uscc)
    long_name = ("河南省宏远建设工程有限公司" * 25)[:300]
    conflicting = "新乡瑞禾建设工程有限公司"
    assert (
        dataset.lookup(conflicting) is None and dataset.lookup("郑州恒通建设工程有限公司") is None
    )
    return [
        ("郑州恒通建设工程有限公司", ids.corrupt_check_char(ids.make_uscc(rng, "410100")), ""),
        ("   ", " ", "\u3000"),
        (long_name, "", ""),
        (bracketed.name.replace("（", "(").replace("）", ")"), bracketed.uscc or "", ""),
        (conflicting, ids.make_uscc(rng, "410700"), ""),
        (conflicting, ids.make_uscc(rng, "410700"), ""),
    ]


def write_roster(path: Path, dataset: Dataset, *, demo_rejects: bool = False) -> None:
    """UTF-8 CSV with header 企业名称,统一社会信用代码,注册号: one row per company (known and
    unknown, some name-only, some with a 注册号 only), then optionally the demo reject rows."""
    rows = dataset.roster_rows() + (demo_reject_rows(dataset) if demo_rejects else [])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(ROSTER_HEADER)
        writer.writerows(rows)


def _fault(text: str) -> tuple[str, float]:
    kind, _, probability = text.partition("=")
    if kind not in FAULT_KINDS or not probability:
        raise argparse.ArgumentTypeError(f"expected KIND=P with KIND in {', '.join(FAULT_KINDS)}")
    return kind, float(probability)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m juhe_sandbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--day", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--qps", type=float, default=0.0, help="per-key limit; 0 = unlimited")
    parser.add_argument("--daily-quota", type=int, default=0, help="0 = unlimited")
    parser.add_argument("--api-key", default="sandbox-key")
    parser.add_argument("--maintenance", action="store_true")
    parser.add_argument("--fault", type=_fault, action="append", default=[], metavar="KIND=P")
    parser.add_argument("--ready-file", type=Path, help="write the URL here once listening")
    parser.add_argument("--verbose", action="store_true", help="log each request (no key)")
    parser.add_argument(
        "--write-roster",
        type=Path,
        metavar="PATH",
        help="write a roster CSV for the dataset and exit",
    )
    parser.add_argument(
        "--demo-rejects",
        action="store_true",
        help="with --write-roster: append the demo's bad rows",
    )
    return parser.parse_args(argv)


def serve(args: argparse.Namespace) -> None:
    config = SandboxConfig(
        api_key=args.api_key,
        seed=args.seed,
        size=args.size,
        day=args.day,
        latency_ms=args.latency_ms,
        qps_limit=args.qps or None,
        daily_quota=args.daily_quota or None,
        maintenance=args.maintenance,
        faults=dict(args.fault),
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with SandboxServer(config, port=args.port, host=args.host) as server:
        print(f"juhe sandbox listening on {server.url}", flush=True)
        if args.ready_file:
            temporary = args.ready_file.with_name(args.ready_file.name + ".tmp")
            temporary.write_text(server.url + "\n", encoding="utf-8")
            os.replace(temporary, args.ready_file)
        while not stop.wait(0.5):
            pass
    print("juhe sandbox stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_roster:
        write_roster(
            args.write_roster, Dataset(args.seed, args.size), demo_rejects=args.demo_rejects
        )
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
