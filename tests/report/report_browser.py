"""A page opened in real headless Chromium (Debian's `chromium`), driven over the DevTools protocol.

Chromium speaks the protocol on file descriptors 3 (commands in) and 4 (replies and
events out) when started with --remote-debugging-pipe: NUL-terminated JSON messages,
no websocket library needed (https://chromedevtools.github.io/devtools-protocol/).

    python tests/report/report_browser.py page.html shot.png   # a screenshot of a page
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = ("--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                  "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                  "--disable-extensions", "--hide-scrollbars", "--mute-audio")


@dataclass
class Rendered:
    title: str
    text: str  # document.body.innerText
    images: list[dict[str, Any]]  # complete, naturalWidth, naturalHeight, alt of each <img>
    console_errors: list[str] = field(default_factory=list)
    screenshot: bytes = b""


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("chromium is not installed: run `make setup` (apt: chromium)")
    return path


class _Pipe:
    def __init__(self, proc: subprocess.Popen[bytes], to_browser: int, from_browser: int) -> None:
        self.proc, self.to_browser, self.from_browser = proc, to_browser, from_browser
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return dict(json.loads(raw))

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event


def _console_errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            errors.append(str(params.get("exceptionDetails", {}).get("text")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
    return errors


_IMAGES_JS = ("JSON.stringify(Array.from(document.images).map(i => ({complete: i.complete, "
              "naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight, alt: i.alt})))")


def _above_nine(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


def render(page: Path, width: int = 1280, max_height: int = 6000) -> Rendered:
    """Open `page` (a file) in headless Chromium; wait for its load event; report and photograph it."""
    # the child's ends are moved above fd 9, so that putting them on 3 and 4 cannot overwrite each other
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    to_r, from_w = _above_nine(to_r), _above_nine(from_w)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        # fd 3 is what chromium reads, fd 4 what it writes
        script = f'exec "$@" 3<&{to_r} 4>&{from_w} {to_r}<&- {from_w}>&-'
        proc = subprocess.Popen(["bash", "-c", script, "chromium", chromium(), *CHROMIUM_FLAGS,
                                 f"--user-data-dir={profile}", "about:blank"],
                                pass_fds=(to_r, from_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        pipe = _Pipe(proc, to_w, from_r)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Page"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
            pipe.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
            pipe.wait_event("Page.loadEventFired")

            def evaluate(expression: str) -> Any:
                return pipe.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                 session=session)["result"].get("value")

            height = min(int(evaluate("document.documentElement.scrollHeight")), max_height)
            pipe.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
            shot = pipe.call("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
            rendered = Rendered(title=str(evaluate("document.title")), text=str(evaluate("document.body.innerText")),
                                images=json.loads(evaluate(_IMAGES_JS)), screenshot=base64.b64decode(shot))
            rendered.console_errors = _console_errors(pipe.events)
            pipe.call("Browser.close")
        finally:
            os.close(to_w)
            os.close(from_r)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return rendered


if __name__ == "__main__":
    result = render(Path(sys.argv[1]))
    Path(sys.argv[2]).write_bytes(result.screenshot)
    print(f"{sys.argv[2]}: {len(result.images)} image(s), console errors: {result.console_errors or 'none'}")
