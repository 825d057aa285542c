"""A real browser for the tests: Debian's headless Chromium driven by selenium through the
system chromedriver (nothing downloaded at run time), and what an annotator does in Label
Studio with it: log in through the form, open the label stream or one annotation in the Data
Manager, read the regions of the annotation on screen, submit or update."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
WAIT = 180.0  # seconds for Label Studio's front end to load a task (90 s failed once on 2
# cores shared with a bench and two test runs)


class BrowserMissing(RuntimeError):
    """No Chromium, chromedriver or selenium here."""


def chromium(width: int = 1400, height: int = 1000):
    """A headless Chromium that keeps the page's console log; raises BrowserMissing when
    ``chromium``/``chromedriver`` or selenium are not installed (``.ci/run`` installs them:
    ``apt-get install chromium chromium-driver``)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        raise BrowserMissing("selenium is not installed: pip install -e '.[dev]'") from exc
    binary = next((shutil.which(name) for name in CHROMIUM if shutil.which(name)), None)
    driver = os.environ.get("LOOP_CHROMEDRIVER") or shutil.which("chromedriver")
    if binary is None or driver is None:
        raise BrowserMissing(
            "chromium and chromedriver are not installed: "
            "apt-get install -y chromium chromium-driver"
        )
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    options.binary_location = binary
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the system driver given by path: selenium-manager is never asked to download one
    return webdriver.Chrome(service=Service(driver), options=options)


def wait_for(what: str, probe, timeout: float = WAIT, every: float = 0.5):
    """``probe()`` until it returns something truthy; AssertionError naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: nothing after {timeout:.0f} s (last: {value!r})")
        time.sleep(every)


def log_in(driver, url: str, email: str, password: str) -> None:
    """Log in through Label Studio's login form, as a person does."""
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/logout")  # end the session the page had, if any
    driver.delete_all_cookies()
    for _ in range(3):  # the previous page's front end may still be navigating
        driver.get(f"{url}/user/login/")
        try:
            form = wait_for("the login form", lambda: driver.find_elements(By.NAME, "email"), 20)
            break
        except AssertionError:
            driver.delete_all_cookies()
    else:
        raise AssertionError(f"no login form at {url}/user/login/ (at {driver.current_url})")
    form[0].send_keys(email)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
    wait_for("the page after logging in", lambda: "/user/login" not in driver.current_url)


_ANNOTATION = """
try {
  const store = window.Htx.annotationStore, a = store.selected;
  if (!a || a.regions.length === 0) return null;
  return {
    pk: a.pk || null,
    author: a.user ? a.user.email : null,
    shown: store.annotations.map(x => x.pk || null),
    regions: a.regions.map(r => ({id: r.id, type: r.type, labels: r.labels})),
  };
} catch (e) { return null; }
"""


def on_screen(driver, timeout: float = WAIT) -> dict:
    """The annotation the labeling view shows once its regions are drawn: its id in Label
    Studio (None for a new one), author, the annotations the page holds, and its regions
    (id, type, label names), read from the front end's own store."""
    return wait_for("the labeling view's regions", lambda: driver.execute_script(_ANNOTATION))


def close_instructions(driver) -> None:
    """Close the instructions that Label Studio shows when a task opens."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, '.lsf-modal-ls [aria-label="Close modal"]'):
        button.click()


def delete_region(driver, index: int) -> str:
    """Select the ``index``-th region in the region list and delete it with the keyboard;
    returns the region's id."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    close_instructions(driver)
    regions = on_screen(driver)["regions"]
    before, kind = len(regions), regions[index]["type"]  # brushregion, rectangleregion
    driver.find_elements(By.CSS_SELECTOR, f".lsf-tree__node_type_{kind}")[index].click()
    region = wait_for(
        "a selected region",
        lambda: driver.execute_script(
            "const n = window.Htx.annotationStore.selected.highlightedNode; return n && n.id"
        ),
    )
    ActionChains(driver).send_keys(Keys.BACKSPACE).perform()
    wait_for("the region deleted", lambda: len(on_screen(driver)["regions"]) == before - 1)
    return region


def press(driver, testid: str) -> None:
    """Click a button of the labeling view's bottom bar by its test id
    (``bottombar-submit-button``, ``bottombar-update-button``)."""
    from selenium.webdriver.common.by import By

    close_instructions(driver)
    driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]').click()


def console_errors(driver, ignore: tuple[str, ...] = ()) -> list[str]:
    """The page's SEVERE console messages, less those containing any of ``ignore``."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in ignore)
    ]


def screenshot(driver, path: Path, *, full_page: bool = False, limit: int = 8000) -> Path:
    """Save what the browser shows as a PNG; ``full_page``: the whole page's height (up to
    ``limit`` pixels), not only the window."""
    if full_page:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(driver.get_window_size()["width"], min(int(height), limit))
    driver.save_screenshot(str(path))
    return path


BROKEN_IMAGES = """
return Array.from(document.images)
  .filter(i => !(i.complete && i.naturalWidth > 0))
  .map(i => (i.alt || i.src).slice(0, 80));
"""


def broken_images(driver) -> list[str]:
    """The page's images that did not load (alt text or the start of their source)."""
    return driver.execute_script(BROKEN_IMAGES)
