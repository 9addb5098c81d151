#!/usr/bin/env python3
"""The Autoscaler page in headless Chromium (Debian's chromium + chromium-driver, selenium)
against a running `drover up` with a policy for APP: the policy is listed with its status;
its detail (#/autoscaler/NAME) draws the instances line and the load and target lines of its
chart, lists at least one decision with its winner and outcome, and shows the last decision in
words. Saves autoscaler.png and autoscaler-policy.png. Exits 1 with a message on a failure.

    autoscaler_page.py --url http://127.0.0.1:PORT --app /demo --screenshots DIR
"""
import argparse
import os
import pathlib
import sys

from selenium.webdriver.common.by import By

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import browser_common as common  # noqa: E402 - tests/ is on the path only from here

log = common.logger("autoscaler_page")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="the Drover server, e.g. http://127.0.0.1:8080")
    ap.add_argument("--app", required=True, help="the app (or service) a policy scales, e.g. /demo")
    ap.add_argument("--screenshots", required=True, help="directory for the screenshots")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each step")
    a = common.parse_args(ap, shots="screenshots")
    base = a.url.rstrip("/")
    d = common.chromium(window_size="1400,1200")

    def css(sel):
        return common.css(d, sel)

    failed_png = os.path.join(a.screenshots, "autoscaler-failed.png")
    wait = common.waiter(d, a.timeout, failed_png, poll=0.2,
                         message=lambda what, timeout, err: f"timed out after {timeout:.0f} s waiting for {what} "
                                                            f"(error banner: {err!r}; screenshot autoscaler-failed.png)")

    row_sel = f'#policies tr[data-target="{a.app}"]'
    try:
        d.get(base + "/#/autoscaler")
        wait("the Autoscaler nav link", lambda: any(x.is_displayed() for x in css('#nav a[data-page="autoscaler"]')))
        wait(f"a policy for {a.app} in the list", lambda: css(row_sel))
        row = css(row_sel)[0]
        name = row.get_attribute("data-policy")
        state = row.get_attribute("data-state")
        assert state in ("active", "paused"), f"policy {name}: state {state!r}"
        status = row.find_elements(By.CSS_SELECTOR, "[data-status]")
        assert status and status[0].text.strip() == state, f"policy {name}: no status badge for {state!r}"
        log(f"policy {name} for {a.app}: {state}; last: {row.find_element(By.CSS_SELECTOR, 'td.last').text!r}")
        common.shot(d, a.screenshots, "autoscaler", log)

        # The detail, through the policy's link.
        row.find_element(By.CSS_SELECTOR, "a.policy-link").click()
        wait("the policy's detail", lambda: css(f'#policy-detail[data-policy="{name}"]') and css("#policy-detail")[0].is_displayed())
        wait("the instances line on the chart", lambda: css('#chart-instances svg path.series[data-name="instances"]'))
        wait("the load line on the chart", lambda: css('#chart-load svg path.series[data-name="load"]'))
        wait("the target line on the chart", lambda: css('#chart-load svg path.series[data-name="target"]'))
        marks = css("#chart-instances svg line.decision")
        log(f"chart: {len(marks)} change(s) marked")
        wait("a decision in the table", lambda: css("#decisions tbody tr[data-outcome]"))
        dec = css("#decisions tbody tr[data-outcome]")[0]
        winner = dec.get_attribute("data-winner")
        outcome = dec.get_attribute("data-outcome")
        assert winner, "the newest decision has no winner"
        assert outcome, "the newest decision has no outcome"
        assert winner in dec.find_element(By.CSS_SELECTOR, "td.winner").text, f"winner {winner!r} not shown"
        assert dec.find_element(By.CSS_SELECTOR, "td.outcome").text.strip(), "outcome not shown"
        log(f"decisions: {len(css('#decisions tbody tr[data-outcome]'))}; newest: winner {winner}, outcome {outcome}")
        wait("the explain text", lambda: css('#explain[data-state="ready"]') and "→" in css("#explain")[0].text)
        text = css("#explain")[0].text
        assert a.app in text, f"explain text does not name {a.app}: {text!r}"
        log("explain:", text.splitlines()[0])
        common.shot(d, a.screenshots, "autoscaler-policy", log)
        print("RESULT ok", flush=True)
    except AssertionError as e:
        common.fail("autoscaler_page", e)
    except Exception as e:  # selenium's own (no such element, a crashed browser, …)
        common.try_shot(d, failed_png)
        common.fail("autoscaler_page", f"{type(e).__name__}: {e}")
    finally:
        d.quit()


if __name__ == "__main__":
    main()
