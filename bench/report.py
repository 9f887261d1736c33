"""BENCHMARKS.md and the latency-percentile chart, written from one run's results.

Longer than most modules because most of it is the report's own text: one function per section,
each with the prose that explains its table, kept together so the report reads in one place.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path

from . import fixed_rate, observability
from .hey import PERCENTILES
from .plan import SECTIONS
from .results import MB, SPEED_LOOP, Results, ms

FINDINGS = Path(__file__).with_name("findings.md")
CPU_ORDER = (
    "gateway",
    "bids",
    "bid-worker",
    "bare-proxy",
    "bare-intake",
    "bare-pipeline-proxy",
    "bare-pipeline",
    "bare-pipeline-consumer",
    "hey",
    "rabbitmq*",
    "postgres*",
    "postgres (own db)",
)


def _yes(met: bool | None) -> str:
    return "—" if met is None else "**met**" if met else "**missed**"


def _num(value: float, digits: int = 0) -> str:
    return (
        "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"
    )


def _statuses(statuses: dict[int, int], errors: dict[str, int]) -> str:
    parts = [f"{code}: {n:,}" for code, n in sorted(statuses.items())]
    parts += [f"{kind}: {n:,}" for kind, n in errors.items()]
    return ", ".join(parts) or "—"


def _cpu(row: dict[str, float]) -> str:
    kinds = [k for k in CPU_ORDER if k in row] + sorted(k for k in row if k not in CPU_ORDER)
    return ", ".join(f"{k} {row[k]:.0f}" for k in kinds)


def _ends(results: Results, add: Callable[[str], None]) -> None:
    add("### The end of auctions: lateness after `ends_at`\n")
    add(
        f"{results.plan.ending_offers:,} offers (inserted with SQL, no bids) all end in the same whole "
        "second; every running worker's closer finds them due once the database clock passes `ends_at` + "
        "END_GRACE_SECONDS and sends a close into each offer's shard. Lateness = `ended_at` (the closing "
        "transaction's database clock) − `ends_at`; docs/API.md wants every end within 5 s.\n"
    )
    run = results.ends
    if run is None:
        add("Not run.\n")
        return
    add("| offers | p50 late | p99 late | max late | check |")
    add("|---|---|---|---|---|")
    worst = max(run.lateness, default=float("nan"))
    check = "ok" if run.ok else "**FAILED**: " + "; ".join(run.problems)
    add(f"| {run.offers:,} | {run.p50:.2f} s | {run.p99:.2f} s | {worst:.2f} s | {check} |")
    add("")
    add("Reproduce: `BENCH_ONLY=ends make bench`.\n")


def _host_speed(results: Results) -> str:
    """The host's speed before and after the run, where it was taken (older runs did not)."""
    before, after = results.speed_before, results.speed_after
    if math.isnan(before):
        return ""
    return (
        f" A plain Python loop of {SPEED_LOOP:,} additions took {before:.2f} s before the run and"
        f" {after:.2f} s after: µs figures move with the host's speed, ratios much less."
    )


def markdown(results: Results, chart: Path | None, report_dir: Path) -> str:
    p = results.plan
    out: list[str] = []
    add = out.append
    add("# Benchmarks\n")
    add(
        f"Written by `{'BENCH_QUICK=1 ' if p.quick else ''}make bench` ({p.mode} run"
        f"{'' if set(p.sections) == set(SECTIONS) else ', sections: ' + ', '.join(p.sections)})"
        f" on {results.started_at}, commit `{results.commit}`, in {results.seconds / 60:.1f} min. "
        f"{results.machine}. Load average before: {results.load_before}; after: {results.load_after}."
        f"{_host_speed(results)}\n"
    )
    add(
        "Every figure is compared with a baseline measured in the same run on the same machine, "
        "because the two cores are shared with the load generator, RabbitMQ, PostgreSQL and "
        "whatever else runs: absolute numbers move 20–30 % between runs, ratios much less. "
        "The stack runs on its own database and broker prefix, started and removed by the harness; "
        "all traffic is on 127.0.0.1.\n"
    )
    if p.quick:
        add(
            "> **Quick mode**: tiny sizes that prove the harness works; these figures say nothing "
            "about speed. `make bench` gives the real ones.\n"
        )

    checks = results.checks()
    add("## Correctness\n")
    if all(c.ok for c in checks):
        add(f"All {len(checks)} correctness checks passed.\n")
    else:
        bad = [c for c in checks if not c.ok]
        add(f"**{len(bad)} of {len(checks)} correctness checks FAILED** — this is a bug, not a slow run.\n")
    for c in checks:
        add(f"- {'ok' if c.ok else '**FAILED**'}: {c.what}{' — ' + c.detail if c.detail else ''}")
    add("")

    add("## Targets (ratios to the same run's baselines)\n")
    add("| target | this run | wanted | |")
    add("|---|---|---|---|")
    for t in results.targets():
        add(f"| {t.what} | {t.figure} | {t.wanted} | {_yes(t.met)} |")
    add("")

    add("## 1. Bid intake: the original's `hey` run\n")
    add(
        "`hey -m POST` with a real token and a bid body against `POST /v1/bid` through the gateway "
        "(gateway → bids service → RabbitMQ with a publisher confirm, before the 202). Baseline: the "
        "same command against a bare aiohttp app answering 202 behind a bare one-hop aiohttp proxy "
        "(`bench/baselines/bare_intake.py`, `bare_proxy.py`). That baseline does none of the work the "
        "stack does for a bid after its hop, so a second one does it barely: the *bare pipeline*, the "
        "same bare proxy in front of a bare handler that publishes each bid with plain aio-pika "
        "(persistent, mandatory, confirmed before the 202) through a topic and a consistent-hash "
        "exchange to quorum shard queues like the real ones, and the bare consumer "
        "(`bare_consumer.py`) applying them to PostgreSQL in batches "
        "(`bench/baselines/bare_pipeline.py`). Its CPU is counted until every bid is applied.\n"
    )
    if results.intake:
        rounds = max(len(runs) for runs in results.intake_rounds().values())
        add(
            f"Each concurrency ran in {rounds} round{'s' if rounds > 1 else ''}: the baseline, the bare "
            "pipeline and the stack back to back, the order turned round in every other round (the "
            "stack first), so a machine that speeds up or slows down favours neither side. The "
            "targets above take the median of the rounds' ratios and show their spread.\n"
        )
        add(
            "| -c | round | path | requests | rps | p50 | p99 | answers | rps ratio | p99 ratio | vs pipeline |"
        )
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results.intake:
            add(
                f"| {r.concurrency} | {r.round} | gateway → bids | {r.requests:,} | {_num(r.stack.rps)} | {ms(r.stack.p50)} | "
                f"{ms(r.stack.p99)} | {_statuses(r.stack.statuses, r.stack.errors)} | {r.rps_ratio:.2f}× | "
                f"{r.p99_ratio:.2f}× | {_num(r.pipeline_rps_ratio, 2)}× rps, {_num(r.pipeline_p99_ratio, 2)}× p99 |"
            )
            add(
                f"| {r.concurrency} | {r.round} | bare proxy → bare app | {r.requests:,} | {_num(r.baseline.rps)} | "
                f"{ms(r.baseline.p50)} | {ms(r.baseline.p99)} | "
                f"{_statuses(r.baseline.statuses, r.baseline.errors)} | 1 | 1 | |"
            )
            if r.pipeline is not None:
                q = r.pipeline
                add(
                    f"| {r.concurrency} | {r.round} | bare pipeline | {r.requests:,} | {_num(q.rps)} | {ms(q.p50)} | "
                    f"{ms(q.p99)} | {_statuses(q.statuses, q.errors)} | {r.bare_pipeline_ratio:.2f}× | "
                    f"{q.p99 / r.baseline.p99:.2f}× | 1 |"
                )
        add("")
        add(
            "CPU per request (µs, by process; the stack's includes the workers applying the bids; "
            "`*` = machine-wide, other users' load included):\n"
        )
        for r in results.intake:
            add(f"- `-c {r.concurrency}` round {r.round}, stack: {_cpu(r.stack_cpu)}")
            add(f"- `-c {r.concurrency}` round {r.round}, baseline: {_cpu(r.baseline_cpu)}")
            if r.pipeline is not None:
                add(f"- `-c {r.concurrency}` round {r.round}, bare pipeline: {_cpu(r.pipeline_cpu)}")
        add("")
        out.extend(fixed_rate.markdown(results.fixed_rate))
        add(
            "Reproduce (`make run` listens on :8000; `bid.json` is "
            '`{"bid_price": 4321.5, "offer_id": "<an offer of another user>"}`):\n'
        )
        add("```sh")
        for command in dict.fromkeys(_portable(r.stack.command) for r in results.intake):
            add(command)
        add("# baseline: BARE_PORT=9101 python -m bench.baselines.bare_intake &")
        add(
            "#           BARE_PORT=9102 BARE_UPSTREAM=http://127.0.0.1:9101 python -m bench.baselines.bare_proxy &"
        )
        for command in dict.fromkeys(_portable(r.baseline.command, baseline=True) for r in results.intake):
            add(command)
        add(
            "# bare pipeline: AMQP_PREFIX=bare BID_SHARDS=8 BARE_PORT=9103 python -m bench.baselines.bare_pipeline &"
        )
        add("#   BARE_PORT=9104 BARE_UPSTREAM=http://127.0.0.1:9103 python -m bench.baselines.bare_proxy &")
        add(
            "#   AMQP_PREFIX=bare BID_SHARDS=8 python -m bench.baselines.bare_consumer &   (then hey on :9104)"
        )
        add("BENCH_ONLY=intake make bench   # the whole section, with its baselines and the fixed rate")
        add("```\n")
    else:
        add("Not run.\n")

    add("## 2. Bid processing\n")
    add("### After each hey run\n")
    add(
        "Time from hey's end until the offer's `bid_count` equals the number of 202s, then a check that "
        "each bid is a row once, exactly one leads and the price is the one sent (every hey request "
        "carries the same price, so the first bid processed leads and the rest are too low). A bid "
        "answered 503 may or may not have been queued (docs/API.md), so the count may exceed the 202s "
        "by at most the 503s; the 503s themselves are the non-2xx target's.\n"
    )
    if results.intake:
        add(
            "| -c | round | 202s | applied (bid_count) | bid rows | leading | final price | max sent | "
            "applied after hey | end to end | check |"
        )
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results.intake:
            s = r.settle
            add(
                f"| {r.concurrency} | {r.round} | {s.accepted:,} | {s.applied:,} | {s.rows:,} | {s.leading} | {s.final_price} | "
                f"{s.max_sent} | {_num(s.seconds_after_hey, 1)} s | {_num(s.end_to_end_bids_per_s)} bids/s | "
                f"{'ok' if s.ok else '**FAILED**: ' + '; '.join(s.problems)} |"
            )
        add("")
    add("### The worker alone: draining full shards\n")
    add(
        f"With the workers stopped, {p.drain_bids:,} `bid.placed` events over {p.drain_offers:,} offers "
        "(inserted with SQL) are published as the bids service does (persistent, mandatory, confirmed, "
        "header `offer_id`, body `BidPlaced.to_event().encode()`); then one consumer is started and the "
        "offers' `bid_count` polled until all are applied. The same is done, on fresh offers, with two "
        "workers and with the bare consumer (`bench/baselines/bare_consumer.py`: aio-pika, prefetch "
        "1000, ack multiple, one set-based statement per batch, none of the worker's rules or events). "
        "Rate = bids / time from the last poll that saw nothing applied to the poll that saw all.\n"
    )
    if results.drain:
        bare = results.drain_run("bare consumer")
        add(
            "| consumer | bids | offers | fill (publish) | drain time | bids/s | vs bare | from process start | check |"
        )
        add("|---|---|---|---|---|---|---|---|---|")
        for r in results.drain:
            ratio = r.bids_per_s / bare.bids_per_s if bare and bare.bids_per_s else float("nan")
            add(
                f"| {r.label} | {r.bids:,} | {r.offers:,} | {r.fill_seconds:.1f} s | {_num(r.active_seconds, 1)} s | "
                f"{_num(r.bids_per_s)} | {_num(ratio, 2)}× | {_num(r.wall_seconds, 1)} s | "
                f"{'ok' if r.ok else '**FAILED**: ' + '; '.join(r.problems)} |"
            )
        add("")
        add(
            "CPU per bid (µs, by process, from starting the consumer (its start-up included) until all were applied; `*` = "
            "machine-wide):\n"
        )
        for r in results.drain:
            add(f"- {r.label}: {_cpu(r.cpu)}")
        add("")
        add("Reproduce: `BENCH_ONLY=drain make bench`.\n")
    else:
        add("Not run.\n")
    _ends(results, add)

    add("## 3. Live fan-out\n")
    add(
        "Authenticated WebSocket clients on `/v1/stream` (split over client processes of at most 2,500 "
        "sockets, `bench/listeners.py`); latency from `POST /v1/offer` returning to `offerCreated` "
        "received, which includes the offers service's outbox relay, RabbitMQ and the gateway's feed. "
        f"Paced: {p.fanout_paced_offers} offers one at a time, the next when every client has the last. "
        f"Burst: {p.fanout_burst_offers} offers posted at once; deliveries/s = deliveries / (last "
        "receipt − first post). Baseline: a bare aiohttp broadcast of the same payload to the same "
        "clients (`bench/baselines/bare_broadcast.py`, no compression like the gateway).\n"
    )
    if results.fanout:
        add(
            "| clients | server | connected | p50 | p99 | paced deliveries/s | burst deliveries/s | p99 ratio | deliveries ratio | check |"
        )
        add("|---|---|---|---|---|---|---|---|---|---|")
        for pair in results.fanout:
            for run, label in ((pair.hub, "gateway hub"), (pair.bare, "bare broadcast")):
                is_hub = run is pair.hub
                add(
                    f"| {pair.clients:,} | {label} | {run.connected:,} | {ms(run.p50)} | {ms(run.p99)} | "
                    f"{_num(run.paced_deliveries_per_s)} | {_num(run.burst_deliveries_per_s)} | "
                    f"{f'{pair.p99_ratio:.2f}×' if is_hub else '1'} | "
                    f"{f'{pair.deliveries_ratio:.2f}×' if is_hub else '1'} | "
                    f"{'ok' if run.ok else '**FAILED**: ' + '; '.join(run.problems)} |"
                )
        add("")
        add("Reproduce: `BENCH_ONLY=fanout make bench`.\n")
    else:
        add("Not run.\n")

    add("## 4. Memory\n")
    if results.peaks:
        add(
            "Peak resident memory (the kernel's VmHWM) of every service process over the whole run; "
            "bid-worker is the largest of all worker processes.\n"
        )
        add("| service | peak RSS | limit |")
        add("|---|---|---|")
        for kind in sorted(results.peaks):
            add(f"| {kind} | {results.peaks[kind] / MB:.0f} MB | 200 MB |")
        add("")
    soak = results.soak
    if soak is not None and soak.result is not None:
        runs = (
            f"`hey -z {soak.seconds:g}s`"
            if soak.parts == 1
            # hey reports at most a million answers (bench/hey.py): a longer soak is hey runs in a row.
            else f"{soak.parts} runs of `hey -z {soak.seconds / soak.parts:g}s` in a row"
        )
        add(
            f"Steady load: {runs} at {soak.target_rps:.0f} requests/s ("
            + (
                "half the best intake rate measured above"
                if results.intake
                else "no intake run to take half of"
            )
            + f") against `POST /v1/bid`; it achieved {soak.result.rps:.0f} rps "
            f"({_statuses(soak.result.statuses, soak.result.errors)}). RSS after {soak.warmup_seconds:.0f} s "
            "of warm-up against the mean of the last three readings:\n"
        )
        add("| process | RSS after warm-up | RSS at end | growth |")
        add("|---|---|---|---|")
        for name in soak.services:
            add(
                f"| {name} | {soak.rss_after_warmup(name) / MB:.1f} MB | {soak.rss_at_end(name) / MB:.1f} MB | "
                f"{soak.growth(name) * 100:+.1f} % |"
            )
        add("")
        add("```sh")
        add(_portable(soak.result.command))
        add("BENCH_ONLY=intake,memory make bench   # the soak rate comes from the intake run")
        add("```\n")
    elif "memory" in p.sections:
        add("The steady-load run did not complete.\n")

    out.extend(observability.markdown(results.observability, p.quick))

    add("## Chart\n")
    if chart is not None:
        add(f"![latency percentiles]({os.path.relpath(chart, report_dir)})\n")
    else:
        add("No chart (nothing measured).\n")

    add("## What the profiles found\n")
    add(FINDINGS.read_text().strip() + "\n" if FINDINGS.exists() else "Nothing recorded.\n")
    return "\n".join(out)


def _portable(command: str, baseline: bool = False) -> str:
    """The command as run, with the run's random port replaced by the one `make run` (or the note) uses."""
    port = "9102" if baseline else "8000"
    command = re.sub(r"http://127\.0\.0\.1:\d+", f"http://127.0.0.1:{port}", command)
    return re.sub(r"-D \S+\.json", "-D bid.json", command)


def chart(results: Results, path: Path) -> Path | None:
    if not results.intake and not results.fanout:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=80)
    left, right = axes
    for r in results.intake:
        for result, label, style in (
            (r.stack, f"gateway -c {r.concurrency} ({r.round})", "-"),
            (r.baseline, f"bare proxy -c {r.concurrency} ({r.round})", "--"),
        ):
            xs = [q for q in PERCENTILES if q in result.latency]
            left.plot(
                xs, [result.latency[q] * 1000 for q in xs], style, marker="o", markersize=3, label=label
            )
    left.set_title("1. POST /v1/bid latency (hey)")
    left.set_xlabel("percentile")
    left.set_ylabel("ms")
    left.set_yscale("log")
    left.legend(fontsize=7)
    left.grid(True, which="both", alpha=0.3)
    qs = (10, 25, 50, 75, 90, 95, 99)
    for pair in results.fanout:
        for run, label, style in (
            (pair.hub, f"gateway hub x{pair.clients}", "-"),
            (pair.bare, f"bare broadcast x{pair.clients}", "--"),
        ):
            if run.latencies:
                right.plot(
                    qs,
                    [max(run.percentile(q), 1e-5) * 1000 for q in qs],
                    style,
                    marker="o",
                    markersize=3,
                    label=label,
                )
    right.set_title("3. POST /v1/offer → offerCreated latency")
    right.set_xlabel("percentile")
    right.set_ylabel("ms")
    right.set_yscale("log")
    right.legend(fontsize=7)
    right.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def write(results: Results, report_path: Path, chart_path: Path) -> None:
    drawn = chart(results, chart_path)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(markdown(results, drawn, report_path.parent))


def main() -> None:
    """`python -m bench.report RESULTS.pickle REPORT.md CHART.png`: write the report of a finished run
    again (after editing bench/findings.md, say) without measuring anew."""
    import pickle
    import sys

    source, report_path, chart_path = (Path(a) for a in sys.argv[1:4])
    write(pickle.loads(source.read_bytes()), report_path, chart_path)


if __name__ == "__main__":
    main()
