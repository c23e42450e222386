#!/usr/bin/env python3
"""Prints the tables of bench/proxy/run.sh from its raw measurements.

Usage: report.py --runs RUNS.tsv [--idle IDLE.tsv] [--portico-ran]

RUNS.tsv has one line per wrk run (header: conns round target rps p50_us
p90_us p99_us requests errors cpu_us_per_req rss_kb new_upstream_conns);
IDLE.tsv one line per proxy of the idle-connection test (header: target
count opened answered still_open before_kb after_kb). Figures across rounds
are medians; ratios are taken within a round first (the host drifts between
rounds, not within one) and their median printed.
Standard library only.
"""
import argparse
import csv
import statistics
import sys

TARGETS = ["direct", "portico", "nginx", "haproxy"]
PEERS = ["nginx", "haproxy"]
TARGET_RPS_RATIO = 1.2  # portico req/s at least this times each peer's
TARGET_CPU_RATIO = 0.8  # portico CPU per request at most this times each peer's
TARGET_P99_RATIO = 1.0  # portico p99 no worse than each peer's


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def fmt_latency(us):
    if us < 1000:
        return f"{us:.0f}us"
    if us < 1_000_000:
        return f"{us / 1000:.2f}ms"
    return f"{us / 1_000_000:.2f}s"


def fmt_ratio(value):
    return "n/a" if value is None else f"{value:.2f}"


class Runs:
    """The runs of one connection count, indexed by target and round."""

    def __init__(self, rows):
        self.by_target = {}
        for row in rows:
            self.by_target.setdefault(row["target"], {})[int(row["round"])] = row

    def has(self, target):
        return target in self.by_target

    def median(self, target, field):
        values = [float(r[field]) for r in self.by_target[target].values() if r[field] != "-"]
        return statistics.median(values) if values else None

    def total(self, target, field):
        return sum(int(r[field]) for r in self.by_target[target].values() if r[field] != "-")

    def same_round_ratio(self, a, b, field):
        """Median over rounds of a's figure divided by b's in the same round."""
        if not (self.has(a) and self.has(b)):
            return None
        ratios = []
        for rnd, row_a in self.by_target[a].items():
            row_b = self.by_target[b].get(rnd)
            if row_b is None or "-" in (row_a[field], row_b[field]) or float(row_b[field]) == 0:
                continue
            ratios.append(float(row_a[field]) / float(row_b[field]))
        return statistics.median(ratios) if ratios else None


def upstream_reuse(runs, target):
    """Requests per new upstream connection over all rounds (a sum, not a
    median: a warm proxy opens none in most runs)."""
    requests = runs.total(target, "requests")
    new_conns = runs.total(target, "new_upstream_conns")
    if new_conns == 0:
        return f">{requests}"
    return f"{requests / new_conns:.0f}"


def print_table(conns, runs, portico_ran):
    rounds = max(len(r) for r in runs.by_target.values())
    print(f"\n== {conns} connections: medians of {rounds} round(s) ==")
    header = f"{'target':<9}{'req/s':>10}{'p50':>10}{'p90':>10}{'p99':>10}{'CPU us/req':>12}{'RSS MiB':>9}"
    print(header + f"{'req/new-upstream-conn':>23}{'errors':>8}")
    for target in TARGETS:
        if not runs.has(target):
            if target == "portico" and not portico_ran:
                print(f"{target:<9}skipped (no --portico command)")
            continue
        cpu = runs.median(target, "cpu_us_per_req")
        rss = runs.median(target, "rss_kb")
        print(
            f"{target:<9}{runs.median(target, 'rps'):>10.0f}"
            f"{fmt_latency(runs.median(target, 'p50_us')):>10}"
            f"{fmt_latency(runs.median(target, 'p90_us')):>10}"
            f"{fmt_latency(runs.median(target, 'p99_us')):>10}"
            f"{'-' if cpu is None else f'{cpu:.1f}':>12}"
            f"{'-' if rss is None else f'{rss / 1024:.1f}':>9}"
            f"{upstream_reuse(runs, target):>23}{runs.total(target, 'errors'):>8}"
        )
    pairs = [("portico", "nginx"), ("portico", "haproxy"), ("portico", "direct")] if portico_ran else []
    pairs += [("nginx", "direct"), ("haproxy", "direct"), ("haproxy", "nginx")]
    for a, b in pairs:
        if not (runs.has(a) and runs.has(b)):
            continue
        line = f"  {a + '/' + b:<16} req/s {fmt_ratio(runs.same_round_ratio(a, b, 'rps'))}"
        if b != "direct":
            line += f"  CPU/req {fmt_ratio(runs.same_round_ratio(a, b, 'cpu_us_per_req'))}"
        line += f"  p99 {fmt_ratio(runs.same_round_ratio(a, b, 'p99_us'))}  (same-round median)"
        print(line)


def idle_bytes_per_conn(row):
    opened = int(row["answered"])
    if opened == 0:
        return None
    return (int(row["after_kb"]) - int(row["before_kb"])) * 1024 / opened


def print_idle(idle_rows, portico_ran):
    if not idle_rows:
        return {}
    print(f"\n== idle keep-alive connections: {idle_rows[0]['count']} per proxy, fresh processes ==")
    print(f"{'target':<9}{'RSS before MiB':>16}{'RSS after MiB':>15}{'bytes/conn':>12}{'still open':>14}")
    if not portico_ran:
        print(f"{'portico':<9}skipped (no --portico command)")
    per_conn = {}
    for row in idle_rows:
        growth = idle_bytes_per_conn(row)
        per_conn[row["target"]] = growth
        print(
            f"{row['target']:<9}{int(row['before_kb']) / 1024:>16.1f}{int(row['after_kb']) / 1024:>15.1f}"
            f"{'-' if growth is None else f'{growth:.0f}':>12}"
            f"{row['still_open'] + '/' + row['count']:>14}"
        )
        if int(row["answered"]) < int(row["count"]):
            print(f"  {row['target']}: only {row['answered']} of {row['count']} connections were answered")
    return per_conn


def verdict(ok, text):
    print(f"{'PASS' if ok else 'MISSED':<7}{text}")


def print_targets(by_conns, idle_per_conn):
    print("\n== Portico targets ==")
    for conns, runs in by_conns.items():
        for peer in PEERS:
            if not runs.has(peer) or not runs.has("portico"):
                continue
            rps = runs.same_round_ratio("portico", peer, "rps")
            cpu = runs.same_round_ratio("portico", peer, "cpu_us_per_req")
            p99 = runs.same_round_ratio("portico", peer, "p99_us")
            verdict(rps is not None and rps >= TARGET_RPS_RATIO,
                    f"{conns} conns: req/s >= {TARGET_RPS_RATIO}x {peer} ({fmt_ratio(rps)}x)")
            verdict(cpu is not None and cpu <= TARGET_CPU_RATIO,
                    f"{conns} conns: CPU/req <= {TARGET_CPU_RATIO}x {peer} ({fmt_ratio(cpu)}x)")
            verdict(p99 is not None and p99 <= TARGET_P99_RATIO,
                    f"{conns} conns: p99 no worse than {peer} ({fmt_ratio(p99)}x)")
    portico, nginx = idle_per_conn.get("portico"), idle_per_conn.get("nginx")
    if portico is None or nginx is None:
        print("idle memory: not measured (--quick or --idle 0)")
    else:
        verdict(portico <= nginx, f"idle: bytes per idle connection <= nginx ({portico:.0f} vs {nginx:.0f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True)
    parser.add_argument("--idle")
    parser.add_argument("--portico-ran", action="store_true")
    args = parser.parse_args()

    rows = read_tsv(args.runs)
    by_conns = {}
    for conns in dict.fromkeys(int(r["conns"]) for r in rows):
        by_conns[conns] = Runs([r for r in rows if int(r["conns"]) == conns])
        print_table(conns, by_conns[conns], args.portico_ran)
    idle_per_conn = print_idle(read_tsv(args.idle) if args.idle else [], args.portico_ran)
    if args.portico_ran:
        print_targets(by_conns, idle_per_conn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
