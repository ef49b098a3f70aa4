"""Open every page of a built site in headless Chromium: a screenshot of each, and no errors.

Run it after ``docs/build_site.py``::

    apt-get install -y chromium                    # Debian/Ubuntu; any Chromium or Chrome
    python docs/build_site.py
    python docs/check_site_in_browser.py           # site/ -> site-screenshots/

Every page (``*.html`` under the site folder, the highlighted source files' pages left out
unless ``--all``) is loaded from the file system (``file://``, as a reader opens it) in one
headless Chromium, at ``--width`` x ``--height`` CSS pixels. Its screenshot is written to
``--shots`` as ``PATH.png`` (the page's path with ``/`` as ``__``), and for a notebook with
an inline figure also ``PATH__figure.png``, scrolled to its first figure. The check fails
(exit 1, naming page and message) when the browser's console reports an error on a page: a
script error, a resource that does not load (a missing image or stylesheet), a blocked
request. The site has no script and loads nothing from the network, so a clean page has an
empty console.

Chromium is driven through its DevTools protocol over a pipe (``--remote-debugging-pipe``:
Python's standard library only, no driver, no port). The flags: ``--headless --no-sandbox
--disable-gpu --disable-quic --no-first-run --disable-background-networking
--disable-component-update --disable-sync`` and a new, empty ``--user-data-dir``
(``--no-sandbox`` is what lets it run as root, e.g. in a container). ``--chromium`` names
the browser when it is not ``chromium``, ``chromium-browser`` or ``google-chrome`` on the
PATH.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SOURCE_DIRS = ("ff_numpy/", "tests/", "benchmarks/")  # highlighted copies of source files


class Browser:
    """One headless Chromium and one page (tab), spoken to over the DevTools pipe."""

    def __init__(self, executable: str, width: int, height: int, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="chromium_profile_")  # new and empty
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds():  # in the child: the pipe is fds 3 (commands in) and 4 (messages out)
            r, w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_r, from_browser_w))
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=fds,
            pass_fds=(3, 4),
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _send(self, message: dict) -> None:
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (did it start?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: bool = False, **params) -> dict:
        """Send one DevTools command and return its result; events that arrive meanwhile
        are kept in :attr:`events`."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self._send(message)
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._receive(deadline))

    def open(self, url: str) -> list[str]:
        """Load ``url`` and wait for it (images included); the console's errors."""
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")
        self.call("Runtime.evaluate", session=True, expression="1")  # flush pending events
        return errors(self.events)

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression)
        return result.get("result", {}).get("value")

    def close(self) -> None:
        try:
            self._send({"id": self._id + 1, "method": "Browser.close", "params": {}})
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self.profile, ignore_errors=True)


def errors(events: list[dict]) -> list[str]:
    """The console's errors among DevTools events: uncaught exceptions, ``console.error``,
    and the browser's own error entries (failed loads, blocked requests)."""
    found = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            found.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            found.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            found.append(f"{entry.get('text')} {entry.get('url', '')}".strip())
    return found


FIGURE = "document.querySelector('.output_png img')"
SCROLL_TO_FIGURE = f"""(() => {{
  const img = {FIGURE};
  if (!img) return false;
  img.scrollIntoView({{block: 'end'}});  // the figure at the bottom, its cell's code above
  window.scrollBy(0, 16);
  return true;
}})()"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("site", nargs="?", type=Path, default=ROOT / "site", help="site folder")
    p.add_argument(
        "--shots",
        type=Path,
        default=ROOT / "site-screenshots",
        help="folder for the screenshots (site-screenshots/)",
    )
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=900)
    p.add_argument("--all", action="store_true", help="also the source files' pages")
    p.add_argument("--chromium", help="the browser's executable")
    args = p.parse_args(argv)

    executable = args.chromium or next(filter(None, map(shutil.which, BROWSERS)), None)
    if executable is None:
        print("no Chromium found: apt-get install -y chromium, or --chromium PATH", file=sys.stderr)
        return 2
    site = args.site.resolve()
    pages = sorted(
        path.relative_to(site).as_posix()
        for path in site.rglob("*.html")
        if args.all or not path.relative_to(site).as_posix().startswith(SOURCE_DIRS)
    )
    if not pages:
        print(f"no pages under {site}: build the site first (docs/build_site.py)", file=sys.stderr)
        return 2
    args.shots.mkdir(parents=True, exist_ok=True)
    browser = Browser(executable, args.width, args.height)
    failed = 0
    try:
        for page in pages:
            name = page[: -len(".html")].replace("/", "__")
            t0 = time.perf_counter()
            found = browser.open((site / page).as_uri())
            browser.screenshot(args.shots / f"{name}.png")
            figure = ""
            if browser.evaluate(SCROLL_TO_FIGURE):
                browser.screenshot(args.shots / f"{name}__figure.png")
                figure = ", figure"
            status = "ok" if not found else f"{len(found)} console error(s)"
            print(f"{page}: {status} ({time.perf_counter() - t0:.1f} s{figure})")
            for message in found:
                print(f"    {message}")
            failed += bool(found)
    finally:
        browser.close()
    print(f"{len(pages)} pages, {failed} with console errors; screenshots in {args.shots}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
