#!/usr/bin/env python3
"""Summarise a `cargo bench -p checklist-benches` run as a Markdown table.

Reads criterion's output, `<criterion dir>/<group>/<function>/new/estimates.json` (the
median point estimate, in ns) and the `benchmark.json` next to it (the id and the
document size the benchmark declared as its throughput in bytes), and prints one row per
benchmark: its median, and its ratio to the floor it is bound by (the `pipeline/*` stages
have none):

- `*/save_*` against the `floor/durable_replace_*` benchmark of the nearest byte size;
- `*/load_*` against the `floor/read_*` benchmark of the nearest byte size;
- `lock/file_*` (benches/benches/locks.rs) against `floor/excl_create_remove`, the
  exclusive create + remove that DESIGN §4 gives as the floor of taking a lock file;
- `tx/*` and `sqlite/*` (benches/benches/transactions.rs: one durable transaction) against
  the `txfloor/durable_replace_*` benchmark of the nearest byte size, measured in the same
  run (the `floor/durable_replace_*` ones if there are none).

"Nearest" is by the ratio of the sizes (log scale), so a 3.5 KB document is paired with
the 4 KiB floor and a 435 KB JSON document with the floor of the 1000-step YAML
document (~320 KB).

If `<criterion dir>/contention.json` exists (written by the `contention` bench target,
benches/benches/contention.rs), a second table follows: commits per second of N
processes committing M steps each against one store.

If `<criterion dir>/transactions.json` exists (written by the `transactions` bench
target), its tables follow: p50 and p99 of one durable transaction per backend and size,
with the ratios of p50 to the floor and to SQLite, and the stage profile of
`tx/yaml_100`.

If `<criterion dir>/cold.json` exists (written by the `cold` bench target, the real
binary at 10 to 10,000 steps), its table follows; with `--plot FILE` (and matplotlib
installed) the cost of each command against the document size, one line per command
and backend on log-log axes, is drawn into FILE (docs/cold-commands.png).

Usage: python3 benches/report.py [--plot FILE] [CRITERION_DIR]
CRITERION_DIR defaults to $CARGO_TARGET_DIR/criterion, else target/criterion at the
workspace root (the parent of this script's directory).
"""

import json
import math
import os
import sys
from pathlib import Path

GROUP_ORDER = {
    "floor": 0,
    "yaml": 1,
    "json": 2,
    "memory": 3,
    "lock": 4,
    "pipeline": 5,
    "txfloor": 6,
    "tx": 7,
    "sqlite": 8,
}
FLOOR_GROUP = "floor"
TX_FLOOR_GROUP = "txfloor"
TX_GROUPS = ("tx", "sqlite")
SAVE_FLOOR_PREFIX = "durable_replace_"
LOAD_FLOOR_PREFIX = "read_"
LOCK_GROUP = "lock"
LOCK_FLOOR_PREFIX = "file_"
LOCK_FLOOR_ID = "floor/excl_create_remove"
CONTENTION_FILE = "contention.json"
COLD_FILE = "cold.json"
TRANSACTIONS_FILE = "transactions.json"


def default_criterion_dir() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return Path(target) / "criterion"
    return Path(__file__).resolve().parent.parent / "target" / "criterion"


def load_results(criterion_dir: Path) -> list:
    """One dict per benchmark: id, group, function, bytes (or None), median_ns."""
    results = []
    for estimates_path in sorted(criterion_dir.glob("*/*/new/estimates.json")):
        new_dir = estimates_path.parent
        with open(estimates_path, encoding="utf-8") as f:
            median_ns = json.load(f)["median"]["point_estimate"]
        group, function = new_dir.parent.parent.name, new_dir.parent.name
        bench_id, size = f"{group}/{function}", None
        meta_path = new_dir / "benchmark.json"
        if meta_path.exists():
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
            bench_id = meta.get("full_id", bench_id)
            group = meta.get("group_id", group)
            function = meta.get("function_id") or function
            throughput = meta.get("throughput") or {}
            size = throughput.get("Bytes", throughput.get("BytesDecimal"))
        results.append(
            {"id": bench_id, "group": group, "function": function, "bytes": size, "median_ns": median_ns}
        )
    return results


def nearest_floor(result: dict, floors: list):
    """The floor whose byte size is closest to the result's (log scale), if any."""
    if not floors:
        return None
    if result["bytes"] is None:
        return floors[0]
    return min(floors, key=lambda fl: abs(math.log(max(fl["bytes"] or 1, 1) / max(result["bytes"], 1))))


def floor_for(result: dict, save_floors: list, load_floors: list, lock_floor, tx_floors: list):
    if result["group"] in (FLOOR_GROUP, TX_FLOOR_GROUP):
        return None
    if result["group"] in TX_GROUPS:
        return nearest_floor(result, tx_floors or save_floors)
    if result["group"] == LOCK_GROUP:
        return lock_floor if result["function"].startswith(LOCK_FLOOR_PREFIX) else None
    if result["function"].startswith("save"):
        return nearest_floor(result, save_floors)
    if result["function"].startswith("load"):
        return nearest_floor(result, load_floors)
    return None


def format_time(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def format_bytes(size) -> str:
    if size is None:
        return "—"
    if size >= 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size} B"


def sort_key(result: dict):
    function = result["function"]
    steps = function.rsplit("_", 1)[-1]
    return (
        GROUP_ORDER.get(result["group"], len(GROUP_ORDER)),
        result["group"],
        int(steps) if steps.isdigit() else -1,
        result["bytes"] or 0,
        function,
    )


def print_contention(path: Path) -> None:
    """The table of the `contention` bench target."""
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    print()
    print(
        "Contention: N processes × M commits each (`checklist step complete`) against one store "
        f"(load average before {report.get('loadavgBefore', '?')}, after {report.get('loadavgAfter', '?')})."
    )
    print()
    print("| N | M | commits | seconds | commits/s | max acquire wait |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in report.get("rows", []):
        wait = row.get("maxAcquireWaitSeconds")
        wait_text = "—" if wait is None else format_time(wait * 1e9)
        print(
            f"| {row['processes']} | {row['commitsEach']} | {row['commits']} | {row['seconds']:.3f} "
            f"| {row['commitsPerSecond']:.1f} | {wait_text} |"
        )


def print_transactions(path: Path) -> None:
    """The tables of the `transactions` bench target: p50/p99 per benchmark, then stages."""
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    rows = report.get("floors", []) + report.get("rows", [])
    iterations = max((row.get("iterations", 0) for row in rows), default=0)
    print()
    print(
        f"Transactions: one durable `step complete` transaction, {iterations} timed iterations each, "
        f"p50/p99 nearest rank (load average before {report.get('loadavgBefore', '?')}, "
        f"after {report.get('loadavgAfter', '?')})."
    )
    print()
    print("| benchmark | document | p50 | p99 | floor (p50) | p50 × floor | p50 × sqlite |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for row in rows:
        floor = row.get("floor")
        floor_text = "—" if floor is None else f"{floor} ({format_time(row['floorP50Ns'])})"
        over_floor = row.get("p50OverFloor")
        over_sqlite = row.get("p50OverSqlite")
        print(
            f"| {row['id']} | {format_bytes(row.get('bytes'))} | {format_time(row['p50Ns'])} "
            f"| {format_time(row['p99Ns'])} | {floor_text} "
            f"| {'—' if over_floor is None else f'{over_floor:.2f}'} "
            f"| {'—' if over_sqlite is None else f'{over_sqlite:.2f}'} |"
        )
    stages = report.get("stages")
    if not stages:
        return
    total = stages["totalP50Ns"]
    print()
    print(
        f"Stages of {stages['id']} ({stages['iterations']} iterations): transaction p50 "
        f"{format_time(total)}, p99 {format_time(stages['totalP99Ns'])}."
    )
    print()
    print("| stage | p50 | p99 | p50 share of the tx p50 |")
    print("|---|---:|---:|---:|")
    for stage in stages["stages"]:
        share = f"{100 * stage['p50Ns'] / total:.0f} %" if stage["inTransaction"] else "(on its own)"
        print(f"| {stage['name']} | {format_time(stage['p50Ns'])} | {format_time(stage['p99Ns'])} | {share} |")


COLD_COLUMNS = [
    ("statusNs", "status"),
    ("statusNoCacheNs", "status (no cache)"),
    ("verifyNs", "verify"),
    ("stepCompleteNs", "step complete"),
    ("versionNs", "--version (floor)"),
    ("sqlite3Ns", "sqlite3 update (floor)"),
]


def print_cold(path: Path) -> None:
    """The table of the `cold` bench target: each command's p50 per backend and size."""
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    print()
    print(f"Cold commands, one fresh process per run, p50 of {report['runs']} (load average {report['loadavg']}).")
    print()
    print("| backend | steps | state file | " + " | ".join(name for _, name in COLD_COLUMNS) + " | status peak RSS |")
    print("|---|---:|---:|" + "---:|" * (len(COLD_COLUMNS) + 1))
    for row in report["rows"]:
        cells = ["—" if row.get(key) is None else format_time(row[key]) for key, _ in COLD_COLUMNS]
        rss = row.get("statusPeakRssKib")
        rss_text = "—" if rss is None else f"{rss / 1024:.1f} MiB"
        print(f"| {row['backend']} | {row['steps']} | {format_bytes(row['bytes'])} | " + " | ".join(cells) + f" | {rss_text} |")


def plot_cold(path: Path, out: Path) -> None:
    """Cost against document size, one line per command and backend, log-log, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path, encoding="utf-8") as f:
        rows = json.load(f)["rows"]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    for backend in sorted({r["backend"] for r in rows}):
        of = sorted((r for r in rows if r["backend"] == backend), key=lambda r: r["steps"])
        for key, name in COLD_COLUMNS:
            points = [(r["steps"], r[key] / 1e6) for r in of if r.get(key) is not None]
            if not points or (key in ("versionNs", "sqlite3Ns") and backend != "yaml"):
                continue
            style = ":" if "floor" in name else ("-" if backend == "yaml" else "--")
            label = name if "floor" in name else f"{name}, {backend}"
            ax.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("completed steps in the state")
    ax.set_ylabel("p50 wall time of one process (ms)")
    ax.set_title("Cold checklist commands against document size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    print(f"\n(plot written to {out})")


def main(argv: list) -> int:
    args = argv[1:]
    plot_to = None
    if len(args) >= 2 and args[0] == "--plot":
        plot_to, args = Path(args[1]), args[2:]
    criterion_dir = Path(args[0]) if args else default_criterion_dir()
    results = load_results(criterion_dir)
    contention = criterion_dir / CONTENTION_FILE
    transactions = criterion_dir / TRANSACTIONS_FILE
    cold = criterion_dir / COLD_FILE
    if not results and not contention.exists() and not transactions.exists() and not cold.exists():
        print(f"no criterion results under {criterion_dir}", file=sys.stderr)
        return 1

    def floors_with(prefix: str, group: str = FLOOR_GROUP) -> list:
        return [r for r in results if r["group"] == group and r["function"].startswith(prefix)]

    save_floors, load_floors = floors_with(SAVE_FLOOR_PREFIX), floors_with(LOAD_FLOOR_PREFIX)
    tx_floors = floors_with(SAVE_FLOOR_PREFIX, TX_FLOOR_GROUP)
    lock_floor = next((r for r in results if r["id"] == LOCK_FLOOR_ID), None)

    if results:
        print_medians(results, save_floors, load_floors, lock_floor, tx_floors)
    if contention.exists():
        print_contention(contention)
    if transactions.exists():
        print_transactions(transactions)
    if cold.exists():
        print_cold(cold)
        if plot_to is not None:
            plot_cold(cold, plot_to)
    return 0


def print_medians(results: list, save_floors: list, load_floors: list, lock_floor, tx_floors: list) -> None:
    """The table of criterion medians with their floors."""
    print("| benchmark | document | median | floor | × floor |")
    print("|---|---:|---:|---|---:|")
    for result in sorted(results, key=sort_key):
        floor = floor_for(result, save_floors, load_floors, lock_floor, tx_floors)
        if floor is None:
            floor_name, ratio = "—", "—"
        else:
            floor_name = f"{floor['id']} ({format_time(floor['median_ns'])})"
            ratio = f"{result['median_ns'] / floor['median_ns']:.2f}"
        print(
            f"| {result['id']} | {format_bytes(result['bytes'])} | {format_time(result['median_ns'])} "
            f"| {floor_name} | {ratio} |"
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
