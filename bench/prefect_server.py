"""A Prefect server for the benchmarks that time ``registry`` commands against one.

``prefect server start`` on a free loopback port, with its own home and SQLite database, set up
by ``registry orchestration setup`` as an operator does. The commands run with
:attr:`PrefectServer.env`: the caller's environment without its ``AWS_*``, ``PREFECT_*`` and
``REGISTRY_*`` variables (so that the commands see the registry's defaults and this server,
whatever the shell holds), with this tree's code first on the path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from registry.cli.prefect_api import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 300
SETUP_TIMEOUT_S = 300
STOP_TIMEOUT_S = 30
POLL_S = 0.5


class PrefectServer:
    """``prefect server start`` on a free loopback port, its own home and SQLite database.

    The server starts when the object is made; :meth:`ready` waits for it and sets it up, so a
    caller that needs it only later lets it start alongside other work. :meth:`stop` ends its
    whole process group, and is safe to call whatever state the server is in.
    """

    def __init__(self, home: Path) -> None:
        port = free_port()
        home.mkdir(parents=True, exist_ok=True)
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.log = home / "server.log"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "PREFECT_", "REGISTRY_"))}
        # PYTHONPATH: the commands run this tree's code, whichever tree is installed.
        self.env.update({"PREFECT_HOME": str(home), "PREFECT_API_URL": self.api_url,
                         "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "CI": "true",
                         "PATH": f"{BIN}{os.pathsep}{self.env.get('PATH', '')}",
                         "PYTHONPATH": str(ROOT)})
        self.started = time.perf_counter()
        # Seconds from the start to the first healthy answer; None until ready() has set the
        # server up.
        self.ready_s: float | None = None
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                 str(port), "--no-ui", "--analytics-off"], cwd=ROOT, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)

    def ready(self) -> None:
        """Wait until the server answers its health check, then set it up as an operator does
        (once: later calls return at once). Stops the server if it never answers."""
        if self.ready_s is not None:
            return
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"prefect server exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"prefect server not healthy after {START_TIMEOUT_S} s")
            time.sleep(POLL_S)
        healthy_s = round(time.perf_counter() - self.started, 1)
        subprocess.run([str(BIN / "registry"), "orchestration", "setup"], cwd=ROOT,
                       env=self.env, check=True, capture_output=True, timeout=SETUP_TIMEOUT_S)
        self.ready_s = healthy_s

    def stop(self) -> None:
        """End the server's process group: SIGTERM, then SIGKILL if it outlives the grace."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)
