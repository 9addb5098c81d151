#!/usr/bin/env python3
"""Side by side: Alertmanager 0.25 and Drover's Alertman on one recorded alert stream.

Starts a real Alertmanager (Debian's prometheus-alertmanager) and a real `drover alertman`,
each with the same route (group_by, group_wait, group_interval, repeat_interval, resolved
notifications), the same inhibition rule and a webhook receiver pointing at a local HTTP
server in this script; replays the stream (tests/alertman/alert_stream.json) to both through
`POST /api/v2/alerts` (and `POST /api/v2/silences`) at the same instants; records every
webhook notification each sends (arrival time since the start, group labels, status, alerts
and their statuses); prints them side by side, then totals and the differences.

    tests/alertman/side_by_side.py [--drover target/debug/drover] [--json] [--out FILE]

Only the Python standard library. Exit status 0 when both sent the same notifications (same
groups, same alerts with the same statuses, in the same order per group), 1 otherwise.
"""
import argparse
import datetime as dt
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SYSTEMS = ("alertmanager", "drover")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def now_iso():
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_json(method, url, body=None, timeout=5):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        text = r.read().decode() or "null"
        return r.status, json.loads(text) if text.strip() not in ("", "ok") else None


# === the webhook server: both systems' receiver ===

class Hooks:
    def __init__(self):
        self.t0 = None
        self.got = {s: [] for s in SYSTEMS}
        self.lock = threading.Lock()
        hooks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"null")
                arrived = time.monotonic()
                system = self.path.strip("/")
                with hooks.lock:
                    if system in hooks.got and hooks.t0 is not None:
                        hooks.got[system].append((arrived - hooks.t0, body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, system):
        return f"http://127.0.0.1:{self.port}/{system}"


# === configuration of both, from the stream's route ===

def yaml_list(xs):
    return "[" + ", ".join(json.dumps(x) for x in xs) + "]"


def alertmanager_config(stream, hook_url):
    r = stream["route"]
    inhibit = "".join(
        f"  - source_matchers: {yaml_list(i['source_matchers'])}\n"
        f"    target_matchers: {yaml_list(i['target_matchers'])}\n"
        f"    equal: {yaml_list(i['equal'])}\n"
        for i in stream.get("inhibit_rules", [])
    )
    return (
        "route:\n"
        "  receiver: hook\n"
        f"  group_by: {yaml_list(r['group_by'])}\n"
        f"  group_wait: {r['group_wait']}\n"
        f"  group_interval: {r['group_interval']}\n"
        f"  repeat_interval: {r['repeat_interval']}\n"
        "receivers:\n"
        "  - name: hook\n"
        "    webhook_configs:\n"
        f"      - url: {json.dumps(hook_url)}\n"
        "        send_resolved: true\n"
        + ("inhibit_rules:\n" + inhibit if inhibit else "")
    )


def drover_rules(stream, hook_url):
    r = stream["route"]
    inhibit = "".join(
        f"  - source_matchers: {yaml_list(i['source_matchers'])}\n"
        f"    target_matchers: {yaml_list(i['target_matchers'])}\n"
        f"    equal: {yaml_list(i['equal'])}\n"
        for i in stream.get("inhibit_rules", [])
    )
    return (
        "version: 1\n"
        "receivers:\n"
        "  - name: hook\n"
        "    type: webhook\n"
        f"    url: {json.dumps(hook_url)}\n"
        "route:\n"
        f"  group_by: {yaml_list(r['group_by'])}\n"
        f"  group_wait: {r['group_wait']}\n"
        f"  group_interval: {r['group_interval']}\n"
        f"  repeat_interval: {r['repeat_interval']}\n"
        "  send_resolved: true\n"
        "  receivers: [hook]\n"
        + ("inhibit_rules:\n" + inhibit if inhibit else "")
        + "rules: []\n"
    )


# === the two processes ===

class Proc:
    def __init__(self, name, argv, ready_url, logdir):
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.log = open(self.log_path, "wb")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            if self.p.poll() is not None:
                raise SystemExit(f"{name} exited ({self.p.returncode}):\n{self.logs()}")
            try:
                with urllib.request.urlopen(ready_url, timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"{name} not ready within 60 s:\n{self.logs()}")
            time.sleep(0.1)

    def logs(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def find_alertmanager(arg):
    for c in [arg, "prometheus-alertmanager", "/usr/bin/prometheus-alertmanager", "alertmanager"]:
        if c and (os.path.isfile(c) or shutil.which(c)):
            return shutil.which(c) or c
    raise SystemExit("Alertmanager not found: install Debian's prometheus-alertmanager (scripts/setup.sh does)")


def find_drover(arg):
    if arg:
        return arg
    if os.environ.get("DROVER_BIN"):
        return os.environ["DROVER_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "debug", "drover")


# === the replay ===

def alert_body(labels, resolve):
    a = {"labels": labels, "annotations": {"summary": f"{labels['alertname']} on {labels.get('instance', '')}"}}
    if resolve:
        a["endsAt"] = now_iso()
    return a


def silence_body(s):
    start = dt.datetime.now(dt.timezone.utc)
    end = start + dt.timedelta(seconds=s["for_s"])
    return {
        "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in s["matchers"]],
        "startsAt": start.isoformat().replace("+00:00", "Z"),
        "endsAt": end.isoformat().replace("+00:00", "Z"),
        "createdBy": "side_by_side.py",
        "comment": s.get("comment", ""),
    }


def replay(stream, bases, hooks, log):
    t0 = time.monotonic()
    hooks.t0 = t0
    for ev in sorted(stream["events"], key=lambda e: e["at"]):
        delay = t0 + ev["at"] - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        calls = []
        if "fire" in ev or "resolve" in ev:
            body = [alert_body(l, False) for l in ev.get("fire", [])] + [
                alert_body(l, True) for l in ev.get("resolve", [])
            ]
            calls.append(("POST", "/api/v2/alerts", body))
        if "silence" in ev:
            calls.append(("POST", "/api/v2/silences", silence_body(ev["silence"])))
        # Both systems at the same instant: one thread each.
        errors = []

        def post(base):
            for method, path, body in calls:
                try:
                    http_json(method, base + path, body)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(f"{base}{path}: {e}")

        threads = [threading.Thread(target=post, args=(b,)) for b in bases.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise SystemExit("replay failed: " + "; ".join(errors))
        log(f"t={time.monotonic() - t0:6.2f}s  {ev.get('note', '')}")
    delay = t0 + stream["duration"] - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# === comparing ===

def alert_id(labels):
    return f"{labels.get('alertname')}{labels.get('app', '')}:{labels.get('instance', '')}"


def group_name(n):
    gl = n["groupLabels"]
    return ",".join(f"{k}={gl[k]}" for k in sorted(gl))


def summarize(t, n):
    alerts = sorted((alert_id(a["labels"]), a["status"]) for a in n["alerts"])
    return {
        "t": round(t, 2),
        "group": group_name(n),
        "status": n["status"],
        "firing": sorted(a for a, s in alerts if s == "firing"),
        "resolved": sorted(a for a, s in alerts if s == "resolved"),
        "groupKey": n.get("groupKey"),
    }


def pair(got):
    """Rows: the k-th notification of a group in each system side by side."""
    per = {s: {} for s in SYSTEMS}
    for s in SYSTEMS:
        for n in got[s]:
            per[s].setdefault(n["group"], []).append(n)
    rows = []
    for g in sorted(set(per["alertmanager"]) | set(per["drover"])):
        a, d = per["alertmanager"].get(g, []), per["drover"].get(g, [])
        for k in range(max(len(a), len(d))):
            x = a[k] if k < len(a) else None
            y = d[k] if k < len(d) else None
            same = (
                x is not None
                and y is not None
                and (x["status"], x["firing"], x["resolved"]) == (y["status"], y["firing"], y["resolved"])
            )
            rows.append({"group": g, "n": k + 1, "alertmanager": x, "drover": y, "same": same})
    rows.sort(key=lambda r: min(v["t"] for v in (r["alertmanager"], r["drover"]) if v))
    return rows


def fire_times(stream):
    """Group name → the instants alerts of the group were posted firing."""
    out = {}
    for ev in stream["events"]:
        for labels in ev.get("fire", []):
            g = ",".join(f"{k}={labels[k]}" for k in sorted(stream["route"]["group_by"]) if k in labels)
            out.setdefault(g, []).append(ev["at"])
    return out


def timings(ns, fired):
    """First-notification delays (from the first alert of each group episode: the group's
    first, or its first after a resolved notification ended it) and repeats (a notification
    with the same firing alerts as the one before and nothing resolved: the gap)."""
    delays, repeats = [], []
    per = {}
    for n in ns:
        per.setdefault(n["group"], []).append(n)
    for g, lst in per.items():
        ended = -1.0
        fresh = True
        prev = None
        for n in lst:
            if fresh:
                starts = [t for t in fired.get(g, []) if t > ended]
                if starts:
                    delays.append(round(n["t"] - min(starts), 2))
                fresh = False
            elif prev and n["status"] == "firing" and not n["resolved"] and n["firing"] == prev["firing"]:
                repeats.append({"group": g, "after_s": round(n["t"] - prev["t"], 2)})
            if n["status"] == "resolved":
                ended, fresh = n["t"], True
            prev = n
    return delays, repeats


def totals(got, rows, stream):
    out = {}
    fired = fire_times(stream)
    for s in SYSTEMS:
        ns = got[s]
        groups = sorted({n["group"] for n in ns})
        delays, repeats = timings(ns, fired)
        out[s] = {
            "notifications": len(ns),
            "groups": len(groups),
            "firing_notifications": sum(1 for n in ns if n["status"] == "firing"),
            "resolved_notifications": sum(1 for n in ns if n["status"] == "resolved"),
            "first_notification_delays_s": sorted(delays),
            "repeats": repeats,
        }
    deltas = [
        r["drover"]["t"] - r["alertmanager"]["t"] for r in rows if r["alertmanager"] and r["drover"]
    ]
    out["time_difference_s"] = {
        "mean": round(sum(deltas) / len(deltas), 2) if deltas else None,
        "min": round(min(deltas), 2) if deltas else None,
        "max": round(max(deltas), 2) if deltas else None,
    }
    out["same_notifications"] = all(r["same"] for r in rows) and bool(rows)
    out["differences"] = [r for r in rows if not r["same"]]
    return out


def fmt_alerts(v):
    if v is None:
        return "—"
    f = ", ".join(x.split(":")[1] or x for x in v["firing"])
    r = ", ".join(x.split(":")[1] or x for x in v["resolved"])
    parts = []
    if v["firing"]:
        parts.append(f"{len(v['firing'])} firing ({f})")
    if v["resolved"]:
        parts.append(f"{len(v['resolved'])} resolved ({r})")
    return "; ".join(parts)


def table(rows, tot):
    lines = [
        "| # | group | Alertmanager 0.25: t | alerts | Drover: t | alerts | same |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        a, d = r["alertmanager"], r["drover"]
        lines.append(
            f"| {i} | {r['group']} | {a['t']:.1f} s | {fmt_alerts(a)} | " if a else f"| {i} | {r['group']} | — | — | "
        )
        lines[-1] += (f"{d['t']:.1f} s | {fmt_alerts(d)} | " if d else "— | — | ") + ("yes" if r["same"] else "**no**") + " |"
    lines.append("")
    lines.append("| totals | Alertmanager 0.25 | Drover |")
    lines.append("|---|---|---|")
    a, d = tot["alertmanager"], tot["drover"]
    for k, name in (
        ("notifications", "notifications"),
        ("firing_notifications", "firing notifications"),
        ("resolved_notifications", "resolved notifications"),
        ("groups", "groups notified"),
    ):
        lines.append(f"| {name} | {a[k]} | {d[k]} |")
    def delays(x):
        d = x["first_notification_delays_s"]
        return f"{len(d)} group starts: {min(d):.2f}–{max(d):.2f} s" if d else "—"

    def reps(x):
        r = x["repeats"]
        return f"{len(r)}: after " + ", ".join(f"{v['after_s']:.1f} s" for v in r) if r else "0"

    lines.append(f"| first notification after the group's first alert | {delays(a)} | {delays(d)} |")
    lines.append(f"| repeats of an unchanged group | {reps(a)} | {reps(d)} |")
    td = tot["time_difference_s"]
    lines.append(
        f"| Drover's time − Alertmanager's, per notification | | mean {td['mean']} s (min {td['min']}, max {td['max']}) |"
    )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stream", default=os.path.join(HERE, "alert_stream.json"))
    ap.add_argument("--drover", help="the drover binary (default: $DROVER_BIN, else $CARGO_TARGET_DIR/debug/drover)")
    ap.add_argument("--alertmanager", help="the Alertmanager binary (default: prometheus-alertmanager)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()

    stream = json.load(open(args.stream))
    am_bin = find_alertmanager(args.alertmanager)
    drover_bin = find_drover(args.drover)
    if not os.path.isfile(drover_bin):
        raise SystemExit(f"{drover_bin} not found: cargo build -p drover (or --drover PATH)")
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print

    hooks = Hooks()
    work = tempfile.mkdtemp(prefix="side-by-side-")
    procs = []
    try:
        am_port, dr_port = free_port(), free_port()
        am_yml = os.path.join(work, "alertmanager.yml")
        with open(am_yml, "w") as f:
            f.write(alertmanager_config(stream, hooks.url("alertmanager")))
        rules = os.path.join(work, "rules.yaml")
        with open(rules, "w") as f:
            f.write(drover_rules(stream, hooks.url("drover")))
        procs.append(Proc("alertmanager", [
            am_bin, f"--config.file={am_yml}", f"--storage.path={work}/am",
            f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
            "--log.level=debug",
        ], f"http://127.0.0.1:{am_port}/-/ready", work))
        procs.append(Proc("drover", [
            drover_bin, "alertman", "--http", f"127.0.0.1:{dr_port}", "--data-dir", f"{work}/drover",
            "--rules", rules, "--eval-interval", "1h",
        ], f"http://127.0.0.1:{dr_port}/healthz", work))
        version = subprocess.run([am_bin, "--version"], capture_output=True, text=True)
        log((version.stdout or version.stderr).splitlines()[0])
        log(f"replaying {os.path.relpath(args.stream, ROOT)} ({stream['duration']} s) to both")
        replay(stream, {
            "alertmanager": f"http://127.0.0.1:{am_port}",
            "drover": f"http://127.0.0.1:{dr_port}",
        }, hooks, log)
    finally:
        for p in procs:
            p.stop()
    with hooks.lock:
        got = {s: [summarize(t, n) for t, n in hooks.got[s]] for s in SYSTEMS}
    rows = pair(got)
    tot = totals(got, rows, stream)
    result = {
        "stream": os.path.relpath(args.stream, ROOT),
        "route": stream["route"],
        "notifications": got,
        "rows": rows,
        "totals": tot,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(table(rows, tot))
        print("same notifications (groups, alerts, statuses, order):", "yes" if tot["same_notifications"] else "NO")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if tot["same_notifications"] else 1


if __name__ == "__main__":
    sys.exit(main())
