"""Headless Chromium driven over the DevTools protocol: width, dark mode, measurements, screenshots.

`--dump-dom` and `--screenshot` cannot emulate `prefers-color-scheme` or read computed styles;
the DevTools protocol can, with nothing but Debian's chromium and a WebSocket. Remote requests
are blocked, so a page shows its images' alt text (as a mail client with images off does) and
no test waits on the network.
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from websockets.sync.client import connect

from tests.tools import _FLAGS, chromium_binary

__all__ = ["BrowserPage", "browser_page", "PAGE_CHECKS"]

# What a person checks, measured in the page: overflow, alt text, links told apart from text,
# and the why line's font against the font its template's `.why` rule asks for.
PAGE_CHECKS = r"""
(() => {
  const luminance = (rgb) => {
    const c = rgb.match(/[\d.]+/g).slice(0, 3).map(Number).map(v => v / 255)
      .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const contrast = (a, b) => {
    const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const transparent = (c) => c === 'rgba(0, 0, 0, 0)' || c === 'transparent';
  const plainLinks = [];
  for (const a of document.querySelectorAll('a[href]')) {
    if (!visible(a) || !a.textContent.trim()) continue;  // image links are checked by their alt text
    const style = getComputedStyle(a);
    if (!transparent(style.backgroundColor)) continue;  // a button
    const underlined = [a, ...a.querySelectorAll('*')].some(e => getComputedStyle(e).textDecorationLine.includes('underline'));
    const around = getComputedStyle(a.parentElement).color;
    if (!underlined && contrast(style.color, around) < 3) plainLinks.push(a.textContent.trim().slice(0, 60));
  }
  let whyRule = null;
  for (const sheet of document.styleSheets) {
    for (const rule of sheet.cssRules) {
      if (rule.selectorText === '.why div' && rule.style.fontFamily) whyRule = rule.style.fontFamily;
    }
  }
  const whyFonts = [...document.querySelectorAll('.why div')].map(d => getComputedStyle(d).fontFamily);
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    images: document.images.length,
    imagesWithoutAlt: [...document.images].filter(i => !(i.getAttribute('alt') || '').trim()).map(i => i.src),
    links: document.querySelectorAll('a[href]').length,
    plainLinks,
    whyRule,
    whyFonts: [...new Set(whyFonts)],
    whyLines: whyFonts.length,
    dark: matchMedia('(prefers-color-scheme: dark)').matches,
    height: document.documentElement.scrollHeight,
  };
})()
"""

# Two PNGs compared in a canvas: the share of pixels whose channels differ by more than `tolerance`.
_PIXEL_DIFF = r"""
(async ([a, b, tolerance]) => {
  const load = (src) => new Promise((ok, fail) => { const i = new Image(); i.onload = () => ok(i); i.onerror = fail; i.src = src; });
  const [x, y] = await Promise.all([load(a), load(b)]);
  const w = Math.max(x.width, y.width), h = Math.max(x.height, y.height);
  const pixels = (img) => { const c = document.createElement('canvas'); c.width = w; c.height = h;
    const g = c.getContext('2d'); g.fillStyle = '#ff00ff'; g.fillRect(0, 0, w, h); g.drawImage(img, 0, 0);
    return g.getImageData(0, 0, w, h).data; };
  const p = pixels(x), q = pixels(y);
  let differing = 0;
  for (let i = 0; i < p.length; i += 4) {
    if (Math.abs(p[i] - q[i]) > tolerance || Math.abs(p[i + 1] - q[i + 1]) > tolerance
        || Math.abs(p[i + 2] - q[i + 2]) > tolerance) differing++;
  }
  return {differing, total: w * h, share: differing / (w * h)};
})
"""


class BrowserPage:
    """One Chromium tab, driven by DevTools protocol commands."""

    def __init__(self, socket) -> None:
        self.socket = socket
        self.ids = itertools.count(1)

    def send(self, method: str, timeout: float = 60, **params) -> dict:
        """Run one DevTools command and return its result (events in between are skipped)."""
        call_id = next(self.ids)
        self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def _wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic()))).get("method") != event:
            pass

    def open(self, url: str, *, width: int, dark: bool, height: int = 900) -> None:
        """Load `url` in a viewport `width` px wide, in the light or dark colour scheme."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=width < 480)
        self.send("Emulation.setEmulatedMedia", media="screen",
                  features=[{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}])
        self.send("Page.navigate", url=url)
        self._wait_for("Page.loadEventFired")

    def evaluate(self, expression: str, *args: object):
        """The value of a JavaScript expression (a function when `args` are given), awaited."""
        if args:
            expression = f"({expression})({json.dumps(list(args))})"
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"].get("text", "script failed"))
        return result["result"].get("value")

    def checks(self) -> dict:
        """The page's measurements (see PAGE_CHECKS)."""
        return self.evaluate(PAGE_CHECKS)

    def screenshot(self, out: Path) -> Path:
        """A PNG of the whole page, as tall as its content."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        metrics = self.send("Page.getLayoutMetrics")["cssLayoutViewport"]
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": metrics["clientWidth"], "height": height, "scale": 1})["data"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out

    def pixel_difference(self, first: Path, second: Path, tolerance: int = 24) -> dict:
        """{differing, total, share} of pixels that differ between two PNG screenshots."""
        uris = [f"data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" for p in (first, second)]
        self.send("Page.navigate", url="about:blank")
        self._wait_for("Page.loadEventFired")
        return self.evaluate(_PIXEL_DIFF, *uris, tolerance)


@contextmanager
def browser_page(profile: Path) -> Iterator[BrowserPage]:
    """A fresh headless Chromium with one tab; remote requests blocked."""
    profile.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([chromium_binary(), *_FLAGS, "--remote-debugging-port=0", "--hide-scrollbars",
                                "--force-color-profile=srgb", "--font-render-hinting=none",
                                f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=30).json()
        target = next(t for t in targets if t.get("type") == "page")
        with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as socket:
            page = BrowserPage(socket)
            page.send("Page.enable")
            page.send("Network.enable")
            page.send("Network.setBlockedURLs", urls=["http://*", "https://*"])
            yield page
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
