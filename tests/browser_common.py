"""What the selenium scripts under tests/ share: headless Chromium (Debian's chromium +
chromium-driver, or DROVER_CHROMIUM / DROVER_CHROMEDRIVER), waits that save a screenshot and
name the page's error banner when they time out, screenshots, logging to stderr, and the
exit on a failure.

The scripts are run as `python3 tests/<dir>/<script>.py ...` and import this module after
putting tests/ on sys.path.
"""
import os
import sys

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("DROVER_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DROVER_CHROMEDRIVER", "/usr/bin/chromedriver")


def logger(prog):
    """A log(*args) that prints `PROG: args...` to stderr."""
    def log(*a):
        print(f"{prog}:", *a, file=sys.stderr, flush=True)
    return log


def parse_args(ap, shots="shots"):
    """Parses the command line with `ap` and makes the screenshot directory (the argument
    named `shots`)."""
    a = ap.parse_args()
    os.makedirs(getattr(a, shots), exist_ok=True)
    return a


def chromium(window_size="1400,1000"):
    """Headless Chromium through chromedriver, with a 30 s page-load timeout."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={window_size}", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(30)
    return d


def css(d, sel):
    return d.find_elements(By.CSS_SELECTOR, sel)


def error_banner(d):
    """The text of the page's #error banner when it is shown, else ""."""
    banner = d.find_elements(By.ID, "error")
    return banner[0].text if banner and banner[0].is_displayed() else ""


def timed_out(what, timeout, banner):
    return f"timed out waiting for {what} (error banner: {banner!r})"


def wait(d, what, cond, timeout, poll=0.1, on_timeout=None, message=timed_out):
    """Polls cond() until it returns something true, and returns that. On a timeout, calls
    on_timeout(what) (to save a screenshot), then raises AssertionError(message(what,
    timeout, the error banner's text))."""
    try:
        return WebDriverWait(d, timeout, poll_frequency=poll,
                             ignored_exceptions=(StaleElementReferenceException,)).until(lambda _: cond())
    except TimeoutException:
        if on_timeout is not None:
            on_timeout(what)
        raise AssertionError(message(what, timeout, error_banner(d)))


def waiter(d, timeout, failed_png, poll=0.1, message=timed_out):
    """wait(what, cond, timeout=None) on `d`: `timeout` seconds unless told, saving
    `failed_png` when it times out."""
    default = timeout

    def wait_on(what, cond, timeout=None):
        return wait(d, what, cond, default if timeout is None else timeout, poll=poll,
                    on_timeout=lambda _what: d.save_screenshot(failed_png), message=message)
    return wait_on


def shot(d, directory, name, log=None):
    """Saves a screenshot as DIRECTORY/NAME.png (and logs its path when given a log)."""
    path = os.path.join(directory, name + ".png")
    d.save_screenshot(path)
    if log is not None:
        log("screenshot", path)
    return path


def try_shot(d, path):
    """Saves a screenshot if the browser still can."""
    try:
        d.save_screenshot(path)
    except Exception:  # noqa: BLE001 - a crashed browser takes none
        pass


def fail(prog, message):
    """Prints `PROG: FAILED: MESSAGE` to stderr and exits 1."""
    print(f"{prog}: FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)
