#!/usr/bin/env python3
"""The Alerts page in headless Chromium (Debian's chromium + chromium-driver, selenium)
against a running `drover up` whose rule ALERT fires: the alert row is shown firing, the rule
is listed with its health, the history timeline has entries; a silence added through the form
appears as active and marks the alert silenced; expiring it through its button (and the
dialog) shows it expired. Saves a screenshot. Run by tests/tests/alertman.rs.

    alerts_page.py --base http://127.0.0.1:PORT --alert HotCpu --shots DIR
"""
import argparse
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import browser_common as common  # noqa: E402 - tests/ is on the path only from here

log = common.logger("alerts_page")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--alert", required=True)
    ap.add_argument("--shots", required=True)
    a = common.parse_args(ap)
    d = common.chromium()

    def css(sel):
        return common.css(d, sel)

    wait = common.waiter(d, 20.0, os.path.join(a.shots, "alerts-failed.png"))

    try:
        d.get(a.base + "/#/alerts")
        wait("the Alerts nav link", lambda: any(x.is_displayed() for x in css('#nav a[data-page="alerts"]')))
        row = f'#alerts tr[data-alert="{a.alert}"][data-state="firing"]'
        wait("the firing alert", lambda: css(row))
        wait("the rules table", lambda: css(f'#rules tr[data-rule="{a.alert}"]'))
        health = css(f'#rules tr[data-rule="{a.alert}"]')[0].get_attribute("data-health")
        assert health == "firing", f"rule health {health!r}"
        wait("the history", lambda: css('#history .ev[data-state="firing"]'))
        # Silence it through the form.
        css(row + " button")[0].click()
        matchers = css("#silence-matchers")[0].get_attribute("value")
        assert f'alertname="{a.alert}"' in matchers, matchers
        css("#silence-by")[0].send_keys("browser")
        css("#silence-comment")[0].send_keys("silenced from the UI")
        css("#silence-add")[0].click()
        wait("the active silence", lambda: css('#silences tr[data-state="active"]'))
        wait("the alert marked silenced", lambda: css(f'#alerts tr[data-alert="{a.alert}"][data-muted="silenced"]'))
        common.shot(d, a.shots, "alerts", log)
        # Expire it.
        css('#silences tr[data-state="active"] button')[0].click()
        wait("the dialog", lambda: css("#dialog-ok") and css("#dialog-ok")[0].is_displayed())
        css("#dialog-ok")[0].click()
        wait("the expired silence", lambda: css('#silences tr[data-state="expired"]'))
        wait("the alert no longer silenced", lambda: css(f'#alerts tr[data-alert="{a.alert}"][data-muted=""]'))
        print("RESULT ok", flush=True)
    finally:
        d.quit()


if __name__ == "__main__":
    main()
