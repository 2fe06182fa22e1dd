"""Writes bench/run.sh's report from the run's JSON lines (paths and settings in the environment).

A full run replaces its layout's section of bench/RESULTS.md ("## Layout pinned ..." up to the
next "## " heading) and leaves the rest alone, so one full run per layout sits in one file;
QUICK=1 or OUT=FILE write a file of their own instead. To write it again from a run's data:
    (set -a; . bench/target/run-pinned/env; OUT=/tmp/r.md python3 bench/report.py)
"""

import datetime
import json
import os
import platform
import statistics
import subprocess

E = os.environ
NAN = float("nan")
rows = [json.loads(line) for line in open(E["RESULTS"])]
memory = {r["target"]: r for r in map(json.loads, open(E["MEMORY"]))}
streams = [json.loads(line) for line in open(E["STREAMS"])]
targets = E["TARGETS"].split()
conns = [int(c) for c in E["CONNS"].split()]
layout = E["LAYOUT"]


def kv(s):
    return dict(p.split("=", 1) for p in s.split(";") if p)


upstream_proto = kv(E.get("UPSTREAM_PROTOS", ""))
settled = kv(E.get("SETTLED_RSS", ""))


def med(target, c, key):
    v = [r["wrk"][key] for r in rows if r["target"] == target and r["conns"] == c]
    return statistics.median(v) if v else NAN


def cpu(target, c):
    if target.startswith("direct"):
        return NAN
    v = [r["cpu_s"] * 1e6 / r["wrk"]["requests"] for r in rows
         if r["target"] == target and r["conns"] == c and r["wrk"]["requests"]]
    return statistics.median(v) if v else NAN


def tot(target, c, key):
    return sum(r["wrk"][key] for r in rows if r["target"] == target and r["conns"] == c)


def h2_share(target, c):
    v = [r["upstream_h2"] for r in rows if r["target"] == target and r["conns"] == c and r.get("upstream_h2") is not None]
    return f"{min(v):.0%}" + ("" if min(v) == max(v) else f"–{max(v):.0%}") if v else ""


def ratio(a, b):
    return a / b if b == b and b else NAN


def ver(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, shell=True)
        return (p.stdout.strip() or p.stderr.strip()).splitlines()[0]
    except Exception:
        return "?"


def mib(kib):
    return f"{int(kib) / 1024:.1f} MiB"


# Name in the tables: the HTTP/1.1 server path of ims-proxy said in words.
NAMES = {"ims-proxy": "ims-proxy (hyper)", "ims-proxy-lean": "ims-proxy lean", "baseline": "baseline"}
CASES = (
    ("", "HTTP upstream"),
    ("-tls", "HTTPS upstream (HTTP/1.1)"),
    ("-alpn", "HTTPS upstream offering h2"),
    ("-h2", "HTTP/2 client, HTTP upstream"),
    ("-alpn-h2", "HTTP/2 client, HTTPS upstream offering h2"),
)

out = []
p = out.append
quick = E.get("QUICK") == "1"
ncpu, workers = E["NCPU"], E["WORKERS"]
p(f"## Layout {layout} ({'QUICK=1 harness check, not a measurement' if quick else 'full run'})\n")
cpu_model = ver("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
p(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
  f"{ncpu} cores ({cpu_model}), {ver('uname -r')}")
p(f"- versions: {ver(E['PROXY'] + ' --version')}; {ver(E['NGINX'] + ' -v 2>&1')}; {ver(E['HAPROXY'] + ' -v')}; "
  f"{ver('wrk -v 2>&1')}; {ver('h2load --version')}; {ver('rustc --version')}")
if layout == "shared":
    lay = (f"nothing pinned: proxies, load generator and upstream share all {ncpu} cores; {workers} workers each "
           "(nginx worker_processes, HAProxy nbthread, ims-proxy TOKIO_WORKER_THREADS)")
else:
    lay = (f"proxies pinned to core {E['PROXY_CPU']} with one worker each (nginx worker_processes 1, HAProxy "
           f"nbthread 1, ims-proxy TOKIO_WORKER_THREADS=1), load generator and upstream on core {E['LOAD_CPU']}")
p(f"- method: wrk -t1 (HTTP/1.1 clients) and h2load -t1 -m8 (HTTP/2 clients), {E['DURATION']} s per point, "
  f"median of {E['RUNS']} runs, targets interleaved; layout {layout}: {lay}; keep-alive (and TLS session "
  "reuse) to the upstream in every proxy; every proxy writes an access log.")
p("- targets: `X` = plain-HTTP upstream; `X-tls` = the same upstream over HTTPS offering HTTP/1.1 only "
  "(self-signed, verified); `X-alpn` = HTTPS upstream offering h2 and HTTP/1.1 by ALPN, as Adobe's API hosts "
  "do; `X-h2` / `X-alpn-h2` = HTTP/2 client (h2c; `direct-alpn-h2`: h2 by ALPN) to the plain / h2-offering "
  "upstream; `direct*` = no proxy. `ims-proxy` serves HTTP/1.1 callers with hyper, `ims-proxy-lean` with "
  "`[server] http1 = \"lean\"`; HTTP/2 callers are hyper's on both paths, so `-h2` rows are one build's.")
if upstream_proto:
    said = ", ".join(f"{t} {v}" for t, v in sorted(upstream_proto.items()))
    p(f"- protocol each proxy spoke to the upstream offering h2 (its `/version`): {said}")
if E.get("HTTP1") != "hyper" and E.get("LEAN") != "1":
    p("- ims-proxy lean: not measured: this build refuses `[server] http1 = \"lean\"`")
p("- CPU µs/req: user + system time of the proxy's process(es) during the point (/proc/PID/stat), divided by "
  "the requests answered. p99 for HTTP/2 clients: from h2load's per-request log (time to the response's end).")
if E.get("BASELINE"):
    p(f"- baseline: `{E['BASELINE']}` (another ims-proxy build, same config), measured in the same runs")
oauth_refreshes = E.get("REFRESHES", "?")
p(f"- ims-proxy-oauth: an oauth credential whose tokens (from the sandbox's IMS, 4 s lifetime) are refreshed "
  f"about every 3 s during each run: {oauth_refreshes} refreshes in all")
p(f"- reproduce: `LAYOUT={layout} HTTP1={E['HTTP1']} DURATION={E['DURATION']} RUNS={E['RUNS']} "
  f"CONNS=\"{E['CONNS']}\" bench/run.sh`\n")

p("### The goal (issue 23), same run\n")
p("Goal: req/s ≥ 1.2× nginx, CPU per request below HAProxy's, p99 added over direct no worse than nginx's.\n")
p("| case | conns | ims-proxy | ims-proxy / nginx req/s | ims-proxy / HAProxy req/s | CPU µs/request "
  "ims-proxy · nginx · HAProxy | p99 added over direct µs ims-proxy · nginx · HAProxy | short of the goal |")
p("|---|---:|---|---:|---:|---|---|---|")
for suffix, case in CASES:
    n, h, d = "nginx" + suffix, "haproxy" + suffix, "direct" + suffix
    for c in conns:
        for v in ("ims-proxy", "ims-proxy-lean", "baseline"):
            i = v + suffix
            if i not in targets:
                continue
            r = ratio(med(i, c, "rps"), med(n, c, "rps"))
            added = [med(t, c, "p99") - med(d, c, "p99") for t in (i, n, h)]
            short = []
            if not r >= 1.2:
                short.append("req/s")
            if not cpu(i, c) < cpu(h, c):
                short.append("CPU")
            if not added[0] <= added[1]:
                short.append("p99")
            p(f"| {case} | {c} | {NAMES[v]} | {r:.2f} | {ratio(med(i, c, 'rps'), med(h, c, 'rps')):.2f} | "
              f"{cpu(i, c):.1f} · {cpu(n, c):.1f} · {cpu(h, c):.1f} | "
              f"{added[0]:.0f} · {added[1]:.0f} · {added[2]:.0f} | {', '.join(short) or 'met'} |")

p("\n### Every point\n")
p("`upstream h2`: the share of the point's requests the upstream offering h2 received in h2 (its counters).\n")
p("| target | conns | req/s | CPU µs/req | p50 µs | p99 µs | p99.9 µs | non-2xx + socket errors | upstream h2 |")
p("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in conns:
    for t in targets:
        p(f"| {t} | {c} | {med(t, c, 'rps'):,.0f} | {'–' if t.startswith('direct') else f'{cpu(t, c):.1f}'} | {med(t, c, 'p50'):.0f} | {med(t, c, 'p99'):.0f} | "
          f"{med(t, c, 'p999'):.0f} | {tot(t, c, 'non2xx') + tot(t, c, 'socket_errors')} | {h2_share(t, c)} |")

if "ims-proxy-oauth" in targets:
    p("\n| conns | oauth / static req/s | oauth max µs / static p99.9 µs |")
    p("|---:|---:|---:|")
    for c in conns:
        p(f"| {c} | {ratio(med('ims-proxy-oauth', c, 'rps'), med('ims-proxy', c, 'rps')):.2f} | "
          f"{med('ims-proxy-oauth', c, 'max'):.0f} / {med('ims-proxy', c, 'p999'):.0f} |")

gb = int(E["STREAM_BYTES"]) / 1e9
p(f"\n### Streaming, {gb:.2f} GB each way, plain-HTTP upstream, one curl\n")
p("Goal: ims-proxy at least nginx's throughput.\n")
p("| target | upload GB/s | download GB/s | CPU s/GB up · down | RSS growth up · down |")
p("|---|---:|---:|---|---|")


def stream_rate(t, d):
    s = next((s for s in streams if s["target"] == t and s["dir"] == d), None)
    return gb / s["secs"] if s and s["secs"] == s["secs"] and s["secs"] else NAN


for t in dict.fromkeys(s["target"] for s in streams):
    up = next(s for s in streams if s["target"] == t and s["dir"] == "up")
    dn = next(s for s in streams if s["target"] == t and s["dir"] == "down")
    if t == "direct":
        p(f"| {t} | {stream_rate(t, 'up'):.2f} | {stream_rate(t, 'down'):.2f} | | |")
    else:
        p(f"| {t} | {stream_rate(t, 'up'):.2f} | {stream_rate(t, 'down'):.2f} | "
          f"{up['cpu_s'] / gb:.2f} · {dn['cpu_s'] / gb:.2f} | +{mib(up['rss_kib'])} · +{mib(dn['rss_kib'])} |")
p("")
for v in ("ims-proxy", "ims-proxy-lean"):
    if any(s["target"] == v for s in streams):
        up, dn = (ratio(stream_rate(v, d), stream_rate("nginx", d)) for d in ("up", "down"))
        short = [d for d, r in (("upload", up), ("download", dn)) if not r >= 1]
        p(f"- {NAMES[v]}: upload {up:.2f}× nginx's, download {dn:.2f}× nginx's: "
          f"{'short of the goal on ' + ' and '.join(short) if short else 'goal met'}")

mem_targets = [t for t in ("ims-proxy", "ims-proxy-lean") if t in memory]
p("\n### Memory and start-up\n")
p("In a fresh proxy of its own per path; 1,000 connections from one address, each served a request and "
  "held open (`server.limits.max_connections_per_peer = 0`, `max_connections = 2048`: the defaults would "
  "serve 256 of them).\n")
p("| measure | " + " | ".join(NAMES[t] for t in mem_targets) + " | goal |")
p("|---|" + "---:|" * len(mem_targets) + "---|")
p("| RSS idle | " + " | ".join(mib(memory[t]["idle"]) for t in mem_targets) + " | ≤ 15 MiB |")
p("| RSS peak with 1,000 connections served | " +
  " | ".join(f"{mib(memory[t]['peak'])} (`{memory[t]['conns']}`)" for t in mem_targets) + " | ≤ 64 MiB |")
p("| RSS 12 s after those connections closed | " +
  " | ".join(mib(settled.get(t, 0)) for t in mem_targets) +
  " | heap trimmed; pooled upstream connections idle out after client.pool_idle_timeout |")
p(f"| start-up to listening | {E.get('STARTUP', '?')} ms (hyper, median of 5, static credential) | " +
  " | " * (len(mem_targets) - 1) + " |")
section = "\n".join(out) + "\n"

dest = E.get("OUT") or E["DEST"]
if E.get("SPLICE") == "1" and not E.get("OUT"):
    old = open(dest).read().splitlines(keepends=True) if os.path.exists(dest) else ["# ims-proxy benchmark results\n", "\n"]
    head = f"## Layout {layout}"
    start = next((k for k, line in enumerate(old) if line.startswith(head)), None)
    if start is None:
        new = old + ["\n"] + [section]
    else:
        end = next((k for k in range(start + 1, len(old)) if old[k].startswith("## ")), len(old))
        new = old[:start] + [section, "\n"] + old[end:]
    open(dest, "w").write("".join(new))
else:
    open(dest, "w").write("# ims-proxy benchmark results\n\n" + section)
print(section)
