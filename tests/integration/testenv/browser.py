"""Debian's chromium, headless, driven over the DevTools protocol (python3-websockets): navigate,
evaluate JavaScript in the page, read cookies, take screenshots. Only loopback addresses."""
import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websockets

from .env import t

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--ignore-certificate-errors", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", "--window-size=1366,900", "--hide-scrollbars"]


def available():
    return os.path.exists(CHROMIUM)


class Browser:
    def __init__(self):
        try:
            self._start()
        except BaseException:
            self.close()  # never leave a browser behind a failed start
            raise

    def _start(self):
        self.loop = None
        self.ws = None
        self.profile = tempfile.mkdtemp(prefix="tg-chromium-")
        self.log_path = os.path.join(self.profile, "chromium.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([CHROMIUM] + FLAGS + ["--user-data-dir=" + self.profile,
                                                           "about:blank"],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        port = None
        deadline = time.monotonic() + t(30)
        while port is None:
            text = open(self.log_path, "rb").read().decode("utf-8", "replace")
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", text)
            if m:
                port = int(m.group(1))
            elif time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not start:\n" + text[-3000:])
            else:
                time.sleep(0.1)
        self.port = port
        pages = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port,
                                                 timeout=10))
        url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        self.loop = asyncio.new_event_loop()

        async def connect():
            return await websockets.connect(url, max_size=None, ping_interval=None)

        self.ws = self.loop.run_until_complete(connect())
        self.next_id = 0

    async def _call(self, method, params):
        self.next_id += 1
        mid = self.next_id
        await self.ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})

    def call(self, method, params=None, timeout=30):
        return self.loop.run_until_complete(
            asyncio.wait_for(self._call(method, params), t(timeout)))

    def navigate(self, url):
        self.call("Page.enable")
        self.call("Page.navigate", {"url": url})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "awaitPromise": True,
                                           "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError("JS error in %r: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def wait_for(self, expr, timeout=10, what=None):
        deadline = time.monotonic() + t(timeout)
        while True:
            try:
                v = self.eval(expr)
            except RuntimeError:
                v = None
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s" % (what or expr))
            time.sleep(0.1)

    def screenshot(self, path):
        r = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))
        return path

    def close(self):
        if getattr(self, "ws", None) is not None:
            try:
                self.loop.run_until_complete(self.ws.close())
            except Exception:  # noqa: BLE001 - the browser may already be gone
                pass
        if getattr(self, "loop", None) is not None:
            self.loop.close()
        proc = getattr(self, "proc", None)
        if proc is not None:
            try:  # the whole process group: chromium's helpers too
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
            self._log.close()
        if getattr(self, "profile", None) is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
