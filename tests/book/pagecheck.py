"""Load rendered book pages in headless Chromium (Debian's chromium and chromium-driver, driven by
selenium) and list what a reader would see wrong: math left as TeX, a figure that does not load, a
traceback or warning, a resource fetched from anywhere but the local server.

The browser gets no network: every host but 127.0.0.1 resolves to nothing, background services are
off, and each page's loaded resources are checked to come from the local server.
"""
import contextlib
import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

# Waits for MathJax to finish, then reports on the page's main content.
INSPECT = r"""
const done = arguments[arguments.length - 1];
const ready = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
ready.then(() => {
  const main = document.querySelector('main') || document.body;
  // the whole page, navigation included
  const prose = document.body.cloneNode(true);
  prose.querySelectorAll('pre, code, script, style, mjx-container').forEach(e => e.remove());
  const outputs = [...main.querySelectorAll('.cell_output')].map(e => e.textContent).join('\n');
  const math = [...main.querySelectorAll('.math')];
  done({
    math: math.length,
    untypeset: math.filter(e => !e.querySelector('mjx-container')).length,
    raw_tex: ['$$', '\\(', '\\['].filter(s => prose.textContent.includes(s)),
    images: [...main.querySelectorAll('img')].map(
        i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0})),
    traceback: main.querySelectorAll('.traceback, .output.error').length
               + (/Traceback \(most recent call last\)|\b[A-Z]\w*Error: /.test(outputs) ? 1 : 0),
    warnings: main.querySelectorAll('.admonition.warning, .admonition.danger, .admonition.error, '
                                    + '.output.stderr').length
              + (/\b[A-Z]\w*Warning: /.test(outputs) ? 1 : 0),
    links: [...main.querySelectorAll('a[href]')].map(a => a.href),
    resources: performance.getEntriesByType('resource').map(r => r.name),
    height: document.documentElement.scrollHeight,
  });
});
"""


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 (a free port) for the duration; yields the base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a fresh profile in the folder ``profile`` (emptied first, removed after)
    and no network beyond 127.0.0.1."""
    shutil.rmtree(profile, ignore_errors=True)
    profile.mkdir(parents=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1024", f"--user-data-dir={profile}",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def inspect(driver: webdriver.Chrome, url: str, screenshot: Path | None = None) -> dict:
    """Load ``url``, wait for MathJax, and return the page report (see INSPECT); optionally save a
    screenshot of the whole page (capped at 16000 px tall)."""
    driver.set_window_size(1280, 1024)
    driver.get(url)
    report = driver.execute_async_script(INSPECT)
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.set_window_size(1280, min(max(report["height"], 1024), 16000))
        driver.save_screenshot(str(screenshot))
    return report


def problems(report: dict, base: str, *, needs_figure: bool) -> list[str]:
    """What is wrong with a page report, as readable lines (empty: the page is fine)."""
    found = []
    if report["untypeset"]:
        found.append(f"{report['untypeset']} of {report['math']} math elements not typeset by MathJax")
    if report["raw_tex"]:
        found.append(f"raw TeX delimiters in the text: {report['raw_tex']}")
    broken = [img["src"] for img in report["images"] if not img["ok"]]
    if broken:
        found.append(f"figures that did not load: {broken}")
    if needs_figure and not report["images"]:
        found.append("no figure on a chapter page")
    if report["traceback"]:
        found.append("a Python traceback is shown")
    if report["warnings"]:
        found.append("a warning box or warning output is shown")
    remote = [r for r in report["resources"] if not r.startswith(base)]
    if remote:
        found.append(f"resources from outside the local server: {remote[:5]}")
    return found
