"""The benchmark runner: every server, every scenario, interleaved rounds, one Markdown report and chart.

For each scenario the servers start side by side (one worker each, pinned to the server core), get a
warm-up, then take turns: round 1 runs wrk against A, B, C, ...; round 2 again A, B, C, ... so the
machine's speed swings hit them alike. Each figure is a median over the rounds; the ratio to gunicorn
sync is the median of the per-round ratios (both measured within seconds of each other). The report
goes to ``benchmarks/results/<time>.md`` with a PNG chart beside it (when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import THREADS, Nginx, Server, WrkResult, available, run_wrk

APP = "examples.bench_app:app"
REFERENCE = "gunicorn sync"
ALL = ("prefork sync", "prefork threaded", "gunicorn sync", "gunicorn gthread", "waitress", "granian")
POST_64K = (
    'wrk.method = "POST"\nwrk.body = string.rep("x", 65536)\nwrk.headers["Content-Type"] = "application/octet-stream"\n'
)


@dataclass
class Scenario:
    name: str
    what: str
    path: str = "/"
    connections: int = 10
    close: bool = False
    script: str | None = None
    nginx: str | None = None  # "keepalive" (upstream keepalive) or "close" (nginx's default HTTP/1.0)
    servers: tuple[str, ...] = ALL
    ideal_rps: float | None = None


SCENARIOS = {
    s.name: s
    for s in [
        Scenario("hello", "13-byte hello, keep-alive"),
        Scenario("close", "13-byte hello, `Connection: close`", close=True),
        Scenario("json", "1 KiB JSON built per request", path="/json"),
        Scenario("mib", "1 MiB body from memory", path="/mib"),
        Scenario("file", "1 MiB file through wsgi.file_wrapper", path="/file"),
        Scenario("post64k", "64 KiB POST read fully", path="/post", script=POST_64K),
        Scenario(
            "sleep10ms",
            f"app sleeps 10 ms, 32 connections (ideal {THREADS} threads x 100 req/s)",
            path="/sleep",
            connections=32,
            ideal_rps=THREADS * 100.0,
        ),
        Scenario("nginx-keepalive", "hello behind nginx, upstream keepalive", nginx="keepalive"),
        Scenario("nginx-close", "hello behind nginx, no upstream keepalive", nginx="close"),
    ]
}


@dataclass
class Sample:
    wrk: WrkResult
    cpu_us: float


@dataclass
class Outcome:
    scenario: Scenario
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    floor: list[float] = field(default_factory=list)  # req/s of bare sleeping threads, per round


FLOOR = """
import threading, time
count = [0]
def sleeper(end):
    while time.monotonic() < end:
        time.sleep(0.010)
        count[0] += 1
end = time.monotonic() + {seconds}
threads = [threading.Thread(target=sleeper, args=(end,)) for _ in range({threads})]
for t in threads: t.start()
for t in threads: t.join()
print(count[0] / {seconds})
"""


def sleep_floor(core: str, seconds: int) -> float:
    """req/s of THREADS bare Python threads doing nothing but time.sleep(0.010) on the server core:
    the most any server can reach in the sleep10ms scenario on this machine at this moment."""
    code = FLOOR.format(seconds=seconds, threads=THREADS)
    out = subprocess.run(
        ["taskset", "-c", core, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    return float(out)


def run_scenario(scenario: Scenario, names: list[str], args: argparse.Namespace) -> Outcome:
    servers = [Server(name, APP, args.server_core) for name in names]
    fronts: list[Nginx] = []
    try:
        for server in servers:
            server.wait_ready()
        targets = [server.port for server in servers]
        if scenario.nginx:
            fronts = [Nginx(server.port, args.client_core, scenario.nginx == "keepalive") for server in servers]
            targets = [front.port for front in fronts]
        for port in targets:  # warm-up: imports, caches, TCP, branch predictors
            run_wrk(port, args.client_core, scenario.connections, 1, scenario.path, scenario.close, scenario.script)
        outcome = Outcome(scenario, {name: [] for name in names})
        for round_no in range(1, args.rounds + 1):
            for server, port in zip(servers, targets, strict=True):
                cpu_before = server.cpu_seconds()
                result = run_wrk(
                    port,
                    args.client_core,
                    scenario.connections,
                    args.duration,
                    scenario.path,
                    scenario.close,
                    scenario.script,
                )
                cpu_us = (server.cpu_seconds() - cpu_before) / max(result.requests, 1) * 1e6
                outcome.samples[server.name].append(Sample(result, cpu_us))
                print(
                    f"{scenario.name:16s} round {round_no} {server.name:17s} {result.rps:9.0f} req/s "
                    f"{cpu_us:7.1f} us CPU/req  p99 {result.p99_ms:7.2f} ms  errors {result.errors}",
                    flush=True,
                )
            if scenario.ideal_rps:
                outcome.floor.append(sleep_floor(args.server_core, args.duration))
                print(
                    f"{scenario.name:16s} round {round_no} bare threads      {outcome.floor[-1]:9.0f} req/s", flush=True
                )
        return outcome
    finally:
        for front in fronts:
            front.stop()
        for server in servers:
            server.stop()


def ratio_to_reference(outcome: Outcome, name: str) -> float | None:
    reference = outcome.samples.get(REFERENCE)
    if not reference:
        return None
    return statistics.median(a.wrk.rps / b.wrk.rps for a, b in zip(outcome.samples[name], reference, strict=True))


def scenario_table(outcome: Outcome) -> list[str]:
    s = outcome.scenario
    header = (
        "| server | req/s (median) | req/s (min-max) | p50 ms | p99 ms | errors | server CPU us/req "
        f"| vs {REFERENCE} |" + (" of ideal |" if s.ideal_rps else "")
    )
    lines = [
        f"### {s.name}: {s.what}" + (" (nginx on the load generator's core)" if s.nginx else ""),
        "",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]
    for name, samples in outcome.samples.items():
        rps = [x.wrk.rps for x in samples]
        ratio = ratio_to_reference(outcome, name)
        row = (
            f"| {name} | {statistics.median(rps):.0f} | {min(rps):.0f}-{max(rps):.0f} | "
            f"{statistics.median(x.wrk.p50_ms for x in samples):.2f} | "
            f"{statistics.median(x.wrk.p99_ms for x in samples):.2f} | {sum(x.wrk.errors for x in samples)} | "
            f"{statistics.median(x.cpu_us for x in samples):.1f} | "
            f"{'-' if ratio is None else f'{ratio:.2f}x'} |"
        )
        if s.ideal_rps:
            row += f" {statistics.median(rps) / s.ideal_rps * 100:.1f}% |"
        lines.append(row)
    if outcome.floor:
        floor = statistics.median(outcome.floor)
        lines += [
            "",
            f"Floor in the same run: {THREADS} bare Python threads doing nothing but time.sleep(0.010) "
            f"on the server core reach {floor:.0f} req/s, {floor / s.ideal_rps:.1%} of the ideal "
            f"(min-max {min(outcome.floor):.0f}-{max(outcome.floor):.0f}). Against that floor: "
            + ", ".join(
                f"{name} {statistics.median(x.wrk.rps for x in samples) / floor:.1%}"
                for name, samples in outcome.samples.items()
            )
            + ".",
        ]
    return [*lines, ""]


def summary_table(outcomes: list[Outcome], names: list[str]) -> list[str]:
    lines = [
        f"### Summary: req/s ratio to {REFERENCE} (median of per-round ratios)",
        "",
        "| scenario | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for outcome in outcomes:
        cells = []
        for name in names:
            ratio = ratio_to_reference(outcome, name) if name in outcome.samples else None
            cells.append("-" if ratio is None else f"{ratio:.2f}x")
        lines.append(f"| {outcome.scenario.name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def footprint(names: list[str], args: argparse.Namespace) -> list[str]:
    """Time to first response and PSS (master + 1 worker), idle and after 3 s of load; alternating runs."""
    rows: dict[str, list[tuple[float, int, int]]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            server = Server(name, APP, args.server_core)
            try:
                startup = server.wait_ready()
                time.sleep(1.0)
                idle = server.pss_kib()
                run_wrk(server.port, args.client_core, 10, 3)
                rows[name].append((startup, idle, server.pss_kib()))
            finally:
                server.stop()
            print(f"footprint {name:17s} first response {startup * 1000:5.0f} ms  PSS idle {idle} KiB", flush=True)
    lines = [
        "### Start-up and memory (master + 1 worker)",
        "",
        "| server | first response ms | PSS idle MiB | PSS after load MiB |",
        "|---|---|---|---|",
    ]
    for name, values in rows.items():
        lines.append(
            f"| {name} | {statistics.median(v[0] for v in values) * 1000:.0f} | "
            f"{statistics.median(v[1] for v in values) / 1024:.1f} | "
            f"{statistics.median(v[2] for v in values) / 1024:.1f} |"
        )
    return [*lines, ""]


def chart(outcomes: list[Outcome], names: list[str], path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(10, 1 + 0.9 * len(outcomes)))
    height = 0.8 / len(names)
    for i, name in enumerate(names):
        ys, values = [], []
        for j, outcome in enumerate(outcomes):
            ratio = ratio_to_reference(outcome, name) if name in outcome.samples else None
            if ratio is not None:
                ys.append(len(outcomes) - 1 - j + (len(names) / 2 - i - 0.5) * height)
                values.append(ratio)
        ax.barh(ys, values, height=height, label=name)
    ax.set_yticks(range(len(outcomes)), [o.scenario.name for o in reversed(outcomes)])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f"req/s relative to {REFERENCE} (same run, 1 worker each; log scale)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated, from: " + ", ".join(SCENARIOS)
    )
    parser.add_argument("--servers", default=",".join(ALL), help="comma-separated, from: " + ", ".join(ALL))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk round")
    parser.add_argument("--no-footprint", action="store_true", help="skip start-up and memory")
    parser.add_argument("--server-core", default="1")
    parser.add_argument("--client-core", default="0")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()

    names = available(args.servers.split(","))
    outcomes = []
    for scenario_name in args.scenarios.split(","):
        scenario = SCENARIOS[scenario_name]
        if scenario.nginx and not Nginx.binary:
            print(f"skipping {scenario.name}: nginx is not installed")
            continue
        outcomes.append(run_scenario(scenario, [n for n in names if n in scenario.servers], args))

    stamp = time.strftime("%Y-%m-%d-%H%M")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"## Benchmark run {stamp}",
        "",
        f"`python benchmarks/run.py --rounds {args.rounds} --duration {args.duration}"
        f"{' --scenarios ' + args.scenarios if args.scenarios != ','.join(SCENARIOS) else ''}`: "
        f"1 worker per server ({THREADS} threads where threaded) pinned to core {args.server_core}; "
        f"wrk -t1 (and nginx) on core {args.client_core}; {args.rounds} interleaved rounds of "
        f"{args.duration} s after a 1 s warm-up.",
        "",
    ]
    lines += summary_table(outcomes, names)
    if chart(outcomes, names, out / f"{stamp}.png"):
        lines += [f"![req/s relative to {REFERENCE}]({stamp}.png)", ""]
    for outcome in outcomes:
        lines += scenario_table(outcome)
    if not args.no_footprint:
        lines += footprint(
            [n for n in ("prefork sync", "gunicorn sync", "prefork threaded", "gunicorn gthread") if n in names], args
        )
    report = "\n".join(lines)
    (out / f"{stamp}.md").write_text(report)
    print("\n" + report + f"\nwritten to {out / stamp}.md")


if __name__ == "__main__":
    main()
