#!/usr/bin/env python3
"""Clicks through Drover's web UI in headless Chromium (Debian's chromium + chromium-driver)
against a running `drover up --demo`, asserting what a user would see, saving a screenshot
of each page, and printing the figures as one JSON line prefixed `RESULT `.

Run by tests/tests/dashboards.rs, which starts drover up, waits for the demo app, and
afterwards checks on the Docker engine that the scale click changed the running containers.

    browser.py --base http://127.0.0.1:PORT --app /demo --echo HOST:PORT \
               --token TOKEN --printed-ms EPOCH_MS --shots DIR
"""
import argparse
import json
import pathlib
import statistics
import sys
import time
import urllib.parse
import urllib.request

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import browser_common as common  # noqa: E402 - tests/ is on the path only from here
from browser_common import css  # noqa: E402

log = common.logger("browser")


def wait(d, what, cond, timeout=20.0):
    return common.wait(d, what, cond, timeout,
                       on_timeout=lambda what: shot(d, "failed-" + what.replace(" ", "-")[:40]),
                       message=lambda what, _timeout, err: f"timed out waiting for {what} (url {d.current_url}; error banner: {err!r})")


SHOTS = "."


def shot(d, name):
    return common.shot(d, SHOTS, name, log)


def echo(endpoint, line):
    urllib.request.urlopen(f"http://{endpoint}/echo?line={urllib.parse.quote(line)}", timeout=5).read()


def open_page(d, url):
    # A hash change alone does not reload the page: go through about:blank so each visit
    # is a fresh page load.
    d.get("about:blank")
    d.get(url)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


def check_histogram_geometry(d, base, app):
    """The histogram draws what its API answered: over a closed range in the past (so a second
    read of the API gives the same counts), every (bucket, level) count is one rect whose
    on-screen height is proportional to it, and each bucket's stack stands on the axis with no
    gaps."""
    # Lines are searchable about 2 s after they are printed: a range ending 5 s ago no longer
    # changes. Right after `drover up` starts there may be too little data in it, and a line
    # can still land between the page's read and ours: try again for a while.
    deadline = time.time() + 60
    while True:
        now = time.time()
        open_page(d, f"{base}/#/logs?app={urllib.parse.quote(app)}&from={iso(now - 120)}&to={iso(now - 5)}")
        wait(d, "the histogram over a closed range", lambda: css(d, "#histogram[data-state=ready] svg"))
        src = d.find_element(By.ID, "histogram").get_attribute("data-src")
        assert src and src.startswith("/api/logs/histogram?"), src
        api = json.load(urllib.request.urlopen(base + src, timeout=10))
        want = {(b["ts_ms"], lv, n) for b in api["buckets"] for lv, n in (b.get("levels") or {}).items() if n}
        geo = d.execute_script("""
            const svg = document.querySelector('#histogram svg');
            const axis = svg.querySelector('line.axis').getBoundingClientRect();
            return { axis: axis.top + axis.height / 2, bars: [...svg.querySelectorAll('rect.hist-bar')].map(r => {
                const b = r.getBoundingClientRect();
                return { ts: Number(r.dataset.ts), level: r.dataset.level, count: Number(r.dataset.count),
                         top: b.top, bottom: b.bottom, height: b.height };
            }) };""")
        bars = geo["bars"]
        drawn = {(b["ts"], b["level"], b["count"]) for b in bars}
        if (drawn == want and len(bars) >= 3) or time.time() > deadline:
            break
        time.sleep(2)
    assert drawn == want, f"drawn bars differ from the API's counts: extra {sorted(drawn - want)[:5]}, missing {sorted(want - drawn)[:5]}"
    assert len(bars) >= 3, f"too few bars to judge the geometry: {bars}"
    tallest = max(bars, key=lambda b: b["count"])
    px_per_line = tallest["height"] / tallest["count"]
    tol = 1.5  # sub-pixel rounding, and the 0.5-px minimum of a bar of a few lines
    worst = 0.0
    for b in bars:
        err = abs(b["height"] - b["count"] * px_per_line)
        worst = max(worst, err)
        assert err <= tol, f"bar {b} is {b['height']:.1f} px tall, {b['count'] * px_per_line:.1f} px expected ({px_per_line:.3f} px a line, from {tallest})"
    stacks = {}
    for b in bars:
        stacks.setdefault(b["ts"], []).append(b)
    for ts, stack in stacks.items():
        bottom = max(b["bottom"] for b in stack)
        assert abs(bottom - geo["axis"]) <= tol, f"the stack at {ts} ends at {bottom:.1f}, the axis is at {geo['axis']:.1f}: {stack}"
        stack.sort(key=lambda b: b["top"])
        for upper, lower in zip(stack, stack[1:]):
            assert abs(upper["bottom"] - lower["top"]) <= tol, f"a gap in the stack at {ts}: {stack}"
    shot(d, "logs-histogram")
    log(f"histogram geometry: {len(bars)} bars in {len(stacks)} stacks, {px_per_line:.3f} px a line, worst error {worst:.2f} px")
    return {"bars": len(bars), "stacks": len(stacks), "px_per_line": round(px_per_line, 4), "worst_error_px": round(worst, 2)}


def main():
    global SHOTS
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--app", required=True)
    ap.add_argument("--echo", required=True, help="host:port of one demo instance")
    ap.add_argument("--token", required=True)
    ap.add_argument("--printed-ms", type=int, required=True)
    ap.add_argument("--shots", required=True)
    ap.add_argument("--scale-to", type=int, default=3)
    a = common.parse_args(ap)
    SHOTS = a.shots
    base = a.base.rstrip("/")
    result = {}
    d = common.chromium()
    try:
        # --- the logs page finds the token -----------------------------------------------
        found_after = None
        deadline = a.printed_ms / 1000 + 30
        while time.time() < deadline:
            open_page(d, f"{base}/#/logs?q={a.token}&since=15m")
            wait(d, "search results", lambda: css(d, "#results[data-state]"))
            rows = [r for r in css(d, "#results .log-row") if a.token in r.text]
            if rows:
                found_after = time.time() * 1000 - a.printed_ms
                break
            time.sleep(0.3)
        assert found_after is not None, f"token {a.token} not found within 30 s of being printed"
        result["token_found_after_ms"] = round(found_after)
        log(f"token found {found_after:.0f} ms after it was printed")
        marks = css(d, "#results .log-row mark")
        assert any(a.token.lower() in m.text.lower() for m in marks), "the token is highlighted"

        # --- page load: the logs page with 100 results -----------------------------------
        loads = []
        for _ in range(5):
            open_page(d, f"{base}/#/logs?since=1h")
            ready = wait(d, "logs ready", lambda: d.execute_script("return document.body.dataset.logsReadyMs"))
            n = len(css(d, "#results .log-row"))
            assert n >= 100, f"the first page shows 100 lines, not {n}"
            loads.append(float(ready))
        result["logs_page_load_ms"] = {"runs": loads, "median": statistics.median(loads)}
        # Endless scrolling: the next page arrives when the end of the list is reached.
        shown = len(css(d, "#results .log-row"))
        d.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        wait(d, "the next page on scrolling", lambda: len(css(d, "#results .log-row")) > shown)
        result["rows_after_scroll"] = len(css(d, "#results .log-row"))
        log(f"logs page with 100 results: median {statistics.median(loads):.0f} ms {loads}")

        # --- histogram, line details, filters, context ------------------------------------
        open_page(d, f"{base}/#/logs?app={a.app}&since=15m")
        wait(d, "histogram bars", lambda: css(d, "#histogram svg rect.hist-bar"))
        bars = len(css(d, "#histogram svg rect.hist-bar"))
        wait(d, "results", lambda: css(d, "#results .log-row"))
        summary = d.find_element(By.ID, "summary").text
        assert "lines" in summary, summary
        first = css(d, "#results .log-row")[0]
        first.click()
        wait(d, "line details", lambda: css(d, "#results .details tr[data-field]"))
        fields = [r.get_attribute("data-field") for r in css(d, "#results .details tr[data-field]")]
        for f in ("ts", "app", "host", "container_name", "stream", "seq"):
            assert f in fields, f"details show {f}: {fields}"
        result["detail_fields"] = len(fields)
        # Top values of a field among the results.
        level_row = [r for r in css(d, "#results .details tr[data-field]") if r.get_attribute("data-field") == "app"][0]
        level_row.find_element(By.CSS_SELECTOR, "button.top-btn").click()
        wait(d, "top values", lambda: css(d, "#results .details .top-values .top-value"))
        tops = [t.text for t in css(d, "#results .details .top-values .top-value")]
        assert any(a.app in t and "%" in t for t in tops), tops
        result["top_values"] = len(tops)
        css(d, "#results .details .show-context")[0].click()
        wait(d, "context lines", lambda: css(d, "#results .details .context .log-row.here"))
        result["context_lines"] = len(css(d, "#results .details .context .log-row"))
        shot(d, "logs")
        # Filter in by level: a filter chip, and every line shown has that level.
        row = [r for r in css(d, "#results .details tr[data-field]") if r.get_attribute("data-field") == "level"]
        if row:
            level = row[0].find_elements(By.CSS_SELECTOR, "td.v")[0].text
            row[0].find_element(By.CSS_SELECTOR, ".filter-in").click()
            wait(d, "the level filter chip", lambda: any(f"level: {level}" in c.text for c in css(d, "#filters .chip")))
            wait(d, "level-filtered results", lambda: css(d, "#results[data-state=ready] .log-row"))
            levels = {b.text for b in css(d, "#results .log-row .badge")}
            assert levels == {level}, f"only {level} lines: {levels}"
            d.back()
            wait(d, "back to the unfiltered view", lambda: not css(d, "#filters .chip") or all("level" not in c.text for c in css(d, "#filters .chip")))
            wait(d, "results", lambda: css(d, "#results[data-state=ready] .log-row"))
            css(d, "#results .log-row")[0].click()
            wait(d, "line details again", lambda: css(d, "#results .details tr[data-field]"))
        # Filter out by stream (a value every line has): the query gains -stream:"...".
        row = [r for r in css(d, "#results .details tr[data-field]") if r.get_attribute("data-field") == "stream"][0]
        stream = row.find_elements(By.CSS_SELECTOR, "td.v")[0].text
        row.find_element(By.CSS_SELECTOR, ".filter-out").click()
        wait(d, "filter-out in the URL", lambda: "stream%3A" in d.current_url or "stream:" in d.current_url)
        wait(d, "filtered results", lambda: css(d, "#results[data-state]"))
        assert d.find_element(By.ID, "q").get_attribute("value") == f'-stream:"{stream}"', d.find_element(By.ID, "q").get_attribute("value")
        # Drag across the histogram to zoom: the view gets an absolute from/to.
        open_page(d, f"{base}/#/logs?app={a.app}&since=15m")
        svg = wait(d, "histogram", lambda: css(d, "#histogram svg"))[0]
        w = svg.size["width"]
        ActionChains(d).move_to_element_with_offset(svg, int(-w * 0.2), 0).click_and_hold() \
            .move_by_offset(int(w * 0.3), 0).release().perform()
        wait(d, "zoomed URL", lambda: "from=" in d.current_url and "to=" in d.current_url)
        wait(d, "zoomed results", lambda: css(d, "#results[data-state]"))
        assert d.find_element(By.ID, "range").get_attribute("value") == "custom"
        result["histogram_bars"] = bars
        result["histogram_geometry"] = check_histogram_geometry(d, base, a.app)

        # --- live tail with pause/resume --------------------------------------------------
        open_page(d, f"{base}/#/logs?app={a.app}&since=15m")
        wait(d, "results", lambda: css(d, "#results[data-state]"))
        d.find_element(By.ID, "live").click()
        time.sleep(1.0)  # the stream is open
        live_token = a.token + "-live"
        echo(a.echo, live_token)
        wait(d, "the live line", lambda: any(live_token in r.text for r in css(d, "#tail .log-row")), 20)
        d.find_element(By.ID, "pause").click()
        paused_token = a.token + "-paused"
        echo(a.echo, paused_token)
        wait(d, "the paused counter", lambda: "new" in d.find_element(By.ID, "pause").text, 20)
        assert not any(paused_token in r.text for r in css(d, "#tail .log-row")), "paused: no new rows"
        d.find_element(By.ID, "pause").click()
        wait(d, "the held line after resume", lambda: any(paused_token in r.text for r in css(d, "#tail .log-row")))
        shot(d, "logs-live")
        d.find_element(By.ID, "live").click()

        # --- apps and an app ----------------------------------------------------------------
        open_page(d, f"{base}/#/apps")
        wait(d, "apps table", lambda: css(d, f'#apps tr[data-app="{a.app}"]'))
        shot(d, "apps")
        open_page(d, f"{base}/#/app{a.app}")
        # The rows, and the running count the page sets with them.
        wait(d, "tasks", lambda: len(css(d, "#tasks tr[data-task]")) >= 2
             and d.find_element(By.ID, "tasks").get_attribute("data-running") is not None)
        before = int(d.find_element(By.ID, "tasks").get_attribute("data-running"))
        # Charts with data (stats come every few seconds; the page refreshes them).
        wait(d, "a CPU chart with data",
             lambda: any(int(s.get_attribute("data-points") or 0) > 0
                         for s in css(d, '.chart-panel[data-metric="cpu_pct"] svg')), 60)
        wait(d, "an RSS chart with data",
             lambda: any(int(s.get_attribute("data-points") or 0) > 0
                         for s in css(d, '.chart-panel[data-metric="rss_pct"] svg')), 30)
        result["cpu_chart_points"] = int(css(d, '.chart-panel[data-metric="cpu_pct"] svg')[0].get_attribute("data-points"))
        wait(d, "recent logs", lambda: css(d, "#app-logs .log-row"))
        shot(d, "app")
        # Scale with the dialog.
        d.find_element(By.ID, "scale").click()
        box = wait(d, "scale dialog", lambda: [e for e in css(d, "#dialog #instances") if e.is_displayed()])[0]
        box.clear()
        box.send_keys(str(a.scale_to))
        shot(d, "app-scale-dialog")
        d.find_element(By.ID, "dialog-ok").click()
        wait(d, f"{a.scale_to} running tasks",
             lambda: d.find_element(By.ID, "tasks").get_attribute("data-running") == str(a.scale_to), 60)
        result["running_before_scale"] = before
        result["running_after_scale"] = a.scale_to
        shot(d, "app-scaled")

        # An app no node can take (a constraint no node meets): its page says why it waits.
        req = urllib.request.Request(
            f"{base}/v2/apps", method="POST",
            data=json.dumps({"id": "/too-big", "cmd": "sleep 600", "cpus": 0.1, "mem": 32, "instances": 1,
                             "constraints": [["hostname", "LIKE", "no-such-host"]]}).encode(),
            headers={"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        open_page(d, f"{base}/#/app/too-big")
        reason = wait(d, "the waiting reason",
                      lambda: [e for e in css(d, "#queue-reason") if e.is_displayed() and "waiting" in e.text])[0].text
        assert "hostname" in reason or "LIKE" in reason or "constraint" in reason.lower(), reason
        result["queue_reason"] = reason
        shot(d, "app-waiting")
        urllib.request.urlopen(urllib.request.Request(f"{base}/v2/apps/too-big?force=true", method="DELETE"), timeout=10).read()

        # --- nodes and events ---------------------------------------------------------------
        open_page(d, f"{base}/#/nodes")
        wait(d, "nodes", lambda: css(d, "#nodes tr[data-node]"))
        node_text = css(d, "#nodes tr[data-node]")[0].text
        assert "free" in node_text and "ACTIVE" in node_text, node_text
        shot(d, "nodes")
        # Cordon through the confirmation dialog, then uncordon.
        for button, status in (("Cordon", "CORDONED"), ("Uncordon", "ACTIVE")):
            def press(label=button):
                # The table re-renders every 3 s: find and click in one retried step.
                for b in css(d, "#nodes tr[data-node] button"):
                    if b.text == label:
                        b.click()
                        return True
                return False
            wait(d, f"the {button} button", press)
            wait(d, f"the {button} dialog", lambda: d.find_element(By.ID, "dialog").is_displayed())
            d.find_element(By.ID, "dialog-ok").click()
            wait(d, f"node {status}", lambda: css(d, f'#nodes tr[data-status="{status}"]'))
        result["node_cordoned_and_uncordoned"] = True
        open_page(d, f"{base}/#/events")
        wait(d, "events", lambda: css(d, '#events .ev[data-type="status_update_event"]'))
        result["events"] = len(css(d, "#events .ev"))
        shot(d, "events")
        # --- routes: the gateway routes the demo app (label drover.gateway.host) ---------
        gw = json.load(urllib.request.urlopen(f"{base}/v1/gateway/routes", timeout=5))
        want = sum(len(g["backends"]) for r in gw["routes"] for g in r["groups"] if g["app"] == a.app)
        open_page(d, f"{base}/#/routes")
        wait(d, "routes table", lambda: css(d, '#routes[data-state="ready"]'))
        wait(d, f"{a.app} on the routes page", lambda: css(d, f'#routes tr[data-app="{a.app}"]'))
        wait(d, "its backends", lambda: len(css(d, "#routes tr[data-backend]")) >= max(1, want))
        rows = css(d, "#routes tr[data-backend]")
        assert all(r.get_attribute("data-ejected") == "false" for r in rows), "no backend ejected"
        assert "demo.localhost" in d.find_element(By.ID, "routes").text
        result["routes_backends"] = len(rows)
        shot(d, "routes")
        # The browser reported no JavaScript errors.
        try:
            errors = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
        except Exception:  # noqa: BLE001 - not every driver keeps the log
            errors = []
        result["console_errors"] = [e.get("message") for e in errors]
    finally:
        d.quit()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
