"""A real headless Debian chromium for the web console's test and bench (selenium with
Debian's chromedriver; nothing is downloaded). `screen_text()` reads what the page's
terminal shows, row by row, from xterm.js's own buffer (textual.js hands it to
`window.monostackTerminals`), so a check needs no OCR."""
from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]

SCREEN_JS = """
const t = (window.monostackTerminals || [])[0];
if (!t) return null;
const b = t.buffer.active, out = [];
for (let i = 0; i < t.rows; i++) {
  const line = b.getLine(b.viewportY + i);
  out.push(line ? line.translateToString(true) : "");
}
return out.join("\\n");
"""

#: Installed before any page script: when the terminal first shows `window.__paintNeedle`,
#: note performance.now() (ms since navigation started) in `window.__firstPaint`.
FIRST_PAINT_JS = """
window.__paintNeedle = "Log in";
const timer = setInterval(() => {
  const t = (window.monostackTerminals || [])[0];
  if (!t) return;
  const b = t.buffer.active;
  for (let i = 0; i < t.rows; i++) {
    const line = b.getLine(b.viewportY + i);
    if (line && line.translateToString(true).includes(window.__paintNeedle)) {
      window.__firstPaint = performance.now(); clearInterval(timer); return;
    }
  }
}, 5);
"""


def available() -> bool:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def spki_pin(cert_pem: bytes) -> str:
    """Chromium's --ignore-certificate-errors-spki-list value for one certificate: trust
    exactly the appliance's key, not any certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


class Browser:
    def __init__(self, *, width: int = 1280, height: int = 800,
                 trust_cert: bytes | None = None) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.profile = Path(tempfile.mkdtemp(prefix="monostack-chromium-"))
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.add_argument(f"--window-size={width},{height}")
        if trust_cert is not None:
            options.add_argument(f"--ignore-certificate-errors-spki-list={spki_pin(trust_cert)}")
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                    {"source": FIRST_PAINT_JS})

    def open(self, url: str) -> None:
        self.driver.get(url)

    def screen_text(self) -> str:
        return self.driver.execute_script(SCREEN_JS) or ""

    def first_paint_ms(self) -> float | None:
        return self.driver.execute_script("return window.__firstPaint || null;")

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen_text()
            if predicate(text):
                return text
            time.sleep(0.05)
        raise AssertionError(f"the browser's terminal never showed it; it shows:\n{text}")

    def focus_terminal(self) -> None:
        self.driver.execute_script("document.querySelector('.xterm-helper-textarea').focus();")

    def type(self, *keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains
        chain = ActionChains(self.driver)
        for k in keys:
            chain.send_keys(k)
        chain.perform()

    def screenshot(self, path: Path) -> bytes:
        self.driver.save_screenshot(str(path))
        return path.read_bytes()

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
