"""The real interfaces, end to end: `dagster dev` over HTTP/GraphQL and the UI in headless Chromium.

One `dagster dev` (through scripts/dagster_dev.py, so SIGTERM works) serves
a generated 500-invoice data directory for the whole module; the nightly job and one month of
compliance reports are launched over GraphQL once and shared. Browser tests drive Debian's Chromium
with playwright; the setup installs the `chromium` package with apt when /usr/bin/chromium is
missing (a test tool's own browser download fails on the project's machines). Screenshots land in
test-artifacts/ (git-ignored). Under pytest-xdist, `--dist loadgroup` keeps the module on one worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
WRAPPER = REPO / "scripts" / "dagster_dev.py"
# The compliance report asset; its browser test is skipped where the package is absent.
REPORTS_PACKAGE = REPO / "invoice_pipeline" / "reports"

AS_OF = "2026-11-01"
# The generated data ends in October 2026; the report of the month before the as-of date.
REPORT_MONTH = "2026-10"
LOCATION = "invoice_pipeline"
GROUPS = {"ingest", "staging", "core", "audit"}
START_TIMEOUT_S = 90
RUN_TIMEOUT_S = 240
STOP_TIMEOUT_S = 15

CHROMIUM = Path("/usr/bin/chromium")
# Debian packages the browser tests need: the browser, and CJK glyphs for the Chinese report.
BROWSER_PACKAGES = ("chromium", "fonts-wqy-microhei")
APT_TIMEOUT_S = 600
# As on the project's machines (python.md): without the background-networking flags Chromium
# keeps dialling Google, which the closed network refuses. The profile (--user-data-dir) is a fresh
# temporary folder given to launch_persistent_context: playwright refuses it among the args.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dagster_dev")]


# ---------------------------------------------------------------------------------------------
# Processes: found through /proc, stopped one by one by their own PID
# ---------------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int, str, int] | None:
    """(parent pid, session id, state, start time) of a live process, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may contain spaces
    state, ppid, session, start = fields[0], int(fields[1]), int(fields[3]), int(fields[19])
    return None if state in ("Z", "X") else (ppid, session, state, start)


def _processes() -> dict[int, tuple[int, int, str, int]]:
    procs = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            procs[int(entry.name)] = st
    return procs


def _tree(root: int, with_session: bool = True) -> dict[int, int]:
    """{pid: start time} of `root`, its descendants and (`with_session`) every process of its session."""
    procs = _processes()
    found = {root} if root in procs else set()
    if with_session:
        found |= {pid for pid, (_, session, _, _) in procs.items() if session == root}
    changed = True
    while changed:
        children = {pid for pid, (ppid, *_) in procs.items() if ppid in found} - found
        found |= children
        changed = bool(children)
    return {pid: procs[pid][3] for pid in found}


def _alive(tree: dict[int, int]) -> dict[int, int]:
    """The members of a `_tree` snapshot still running (same PID and same start time)."""
    return {pid: start for pid, start in tree.items() if (st := _stat(pid)) is not None and st[3] == start}


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return "?"


def _kill_all(tree: dict[int, int]) -> dict[int, str]:
    """SIGKILL every survivor of a snapshot, by PID; returns {pid: command line} of those killed."""
    killed = {}
    for pid in _alive(tree):
        killed[pid] = _cmdline(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return killed


def _wait_gone(tree: dict[int, int], timeout: float) -> dict[int, int]:
    deadline = time.monotonic() + timeout
    while (alive := _alive(tree)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def _listening_inodes(port: int | None = None) -> dict[int, tuple[str, int]]:
    """{socket inode: (local address, port)} of every listening TCP socket, from /proc/net/tcp*."""
    found = {}
    for table, width in (("tcp", 8), ("tcp6", 32)):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                address, hex_port = cols[1].split(":")
                if cols[3] != "0A" or (port is not None and int(hex_port, 16) != port):  # 0A = LISTEN
                    continue
                raw = bytes.fromhex(address)
                # /proc prints each 32-bit word in host (little-endian) order.
                packed = b"".join(raw[i : i + 4][::-1] for i in range(0, width // 2, 4))
                family = socket.AF_INET if table == "tcp" else socket.AF_INET6
                found[int(cols[9])] = (socket.inet_ntop(family, packed), int(hex_port, 16))
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def _non_loopback_addresses() -> list[str]:
    """This machine's IPv4 addresses other than 127/8, from the interfaces' routes."""
    addresses = set()
    with contextlib.suppress(OSError):
        addresses.update(socket.gethostbyname_ex(socket.gethostname())[2])
    for probe in ("192.0.2.1", "10.255.255.255"):  # UDP connect sends nothing; it picks a route
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((probe, 9))
            addresses.add(s.getsockname()[0])
    return sorted(a for a in addresses if not a.startswith("127.") and a != "0.0.0.0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# dagster dev
# ---------------------------------------------------------------------------------------------


@dataclass
class DagsterDev:
    proc: subprocess.Popen
    port: int
    data_dir: Path
    log: Path
    tree: dict[int, int] = field(default_factory=dict)  # every process seen so far
    startup_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> dict[int, int]:
        self.tree.update(_tree(self.proc.pid))
        return self.tree

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.load(response)
        assert not payload.get("errors"), payload["errors"]
        return payload["data"]

    def stop(self) -> tuple[dict[int, int], dict[int, str]]:
        """kill -TERM the wrapper's PID; SIGKILL stragglers. Returns (survivors after TERM, killed)."""
        self.snapshot()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        survivors = _wait_gone(self.tree, timeout=max(0.0, deadline - time.monotonic()))
        killed = _kill_all(self.tree)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        return survivors, killed


def _wait_until_ready(dev: DagsterDev) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if dev.proc.poll() is not None:
            pytest.fail(f"dagster dev exited with {dev.proc.returncode}:\n{dev.log_tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{dev.url}/server_info", timeout=2) as r:
            if r.status == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"dagster dev did not answer /server_info within {START_TIMEOUT_S} s:\n{dev.log_tail()}")


@contextlib.contextmanager
def _running_dagster_dev(root: Path, data_dir: Path, env: dict[str, str]) -> Iterator[DagsterDev]:
    """`dagster dev` on `data_dir` with its own DAGSTER_HOME under `root`; stopped by its PID after."""
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "INVOICE_PIPELINE_DATA_DIR": str(data_dir), **env}
    log = root / "dagster_dev.log"
    argv = [sys.executable, str(WRAPPER), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    started = time.monotonic()
    with log.open("wb") as out:
        # Its own session, so that every process it starts can be found again by session id; and
        # SIGINT ignored, as a CI shell's `cmd &` leaves it: the wrapper must undo that (pitfall 6).
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    dev = DagsterDev(proc=proc, port=port, data_dir=data_dir, log=log)
    try:
        _wait_until_ready(dev)
        dev.startup_s = time.monotonic() - started
        dev.snapshot()
        yield dev
    finally:
        _, killed = dev.stop()
        if killed:
            print(f"dagster dev: SIGKILLed stragglers {killed}", file=sys.stderr)


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    """The shared instance. Its landing sensor never finds a settled file (a day to settle), so
    the only runs are the ones the tests launch; the sensor has its own instance below."""
    from invoice_pipeline.generate import generate

    root = tmp_path_factory.mktemp("dagster_ui")
    data_dir = root / "data"
    generate(data_dir, invoices=500, seed=11)
    with _running_dagster_dev(root, data_dir, {"INVOICE_PIPELINE_SETTLE_SECONDS": "86400"}) as dev:
        yield dev


@dataclass
class Run:
    run_id: str
    seconds: float


RUN_EVENTS = """
query ($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message level stepKey }
        ... on ExecutionStepFailureEvent { error { ...Failure } }
        ... on RunFailureEvent { error { ...Failure } }
      }
    }
  }
}
fragment Failure on PythonError { message stack errorChain { error { message stack } } }
"""

LAUNCH_RUN = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""


def _failure_report(dev: DagsterDev, run_id: str) -> str:
    events = dev.graphql(RUN_EVENTS, {"runId": run_id})["logsForRun"].get("events", [])
    lines = []
    for event in events:
        if not event.get("error"):
            continue
        lines.append(f"[{event.get('stepKey') or 'run'}] {event.get('message')}")
        # The step's own exception is the last link of the chain; its stack ends in project code.
        chain = [event["error"], *(link["error"] for link in event["error"]["errorChain"])]
        lines.append("".join(chain[-1]["stack"][-4:]) + chain[-1]["message"])
    return "\n".join(lines) or "(no error events)"


def _launch_and_wait(
    dev: DagsterDev, job: str, run_config: dict[str, Any], tags: dict[str, str] | None = None
) -> Run:
    """Launch `job` over GraphQL, as the UI's Launchpad does, and poll it until it ends."""
    started = time.monotonic()
    params: dict[str, Any] = {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": job},
        "runConfigData": run_config,
    }
    if tags:
        params["executionMetadata"] = {"tags": [{"key": k, "value": v} for k, v in tags.items()]}
    launched = dev.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return _wait_for_run(dev, job, launched["run"]["runId"], started)


def _wait_for_run(dev: DagsterDev, job: str, run_id: str, started: float) -> Run:
    """Poll a run until it ends; fail the test with the run's errors unless it succeeded."""
    status = "?"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        result = dev.graphql(
            "query ($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }",
            {"runId": run_id},
        )["runOrError"]
        status = result.get("status", result["__typename"])
        dev.snapshot()  # the run worker is a child too: it must be stopped with the rest
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    if status != "SUCCESS":
        pytest.fail(f"{job} run {run_id} ended {status}:\n{_failure_report(dev, run_id)}")
    return Run(run_id=run_id, seconds=time.monotonic() - started)


@pytest.fixture(scope="module")
def nightly_run(dagster_dev: DagsterDev) -> Run:
    return _launch_and_wait(dagster_dev, "nightly", {"resources": {"settings": {"config": {"as_of": AS_OF}}}})


@pytest.fixture(scope="module")
def report_run(dagster_dev: DagsterDev, nightly_run: Run) -> Run:
    """The monthly compliance reports (partitioned, so not in the nightly job) for REPORT_MONTH."""
    return _launch_and_wait(dagster_dev, "monthly_reports", {}, tags={"dagster/partition": REPORT_MONTH})


# ---------------------------------------------------------------------------------------------
# Chromium, installed from Debian's packages when missing
# ---------------------------------------------------------------------------------------------


def _has_cjk_font() -> bool:
    if shutil.which("fc-list") is None:
        return False
    out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False)
    return bool(out.stdout.strip())


def _apt_get(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(
            ["apt-get", "-o", "DPkg::Lock::Timeout=120", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=APT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"apt-get {' '.join(args)} did not finish within {APT_TIMEOUT_S} s")


def ensure_chromium() -> Path:
    """/usr/bin/chromium and a CJK font, installed with apt when missing (fresh CI machines).

    Skips only when apt cannot be used at all (no apt-get, or not root); an apt that is there but
    fails is a test failure with its output, not a silent skip.
    """
    if CHROMIUM.exists() and _has_cjk_font():
        return CHROMIUM
    apt_unusable = (
        "there is no apt-get"
        if shutil.which("apt-get") is None
        else "apt-get needs root"
        if os.geteuid()
        else ""
    )
    if apt_unusable and CHROMIUM.exists():
        return CHROMIUM  # Chinese text may show as boxes in the screenshots, nothing else changes
    if apt_unusable:
        pytest.skip(f"{CHROMIUM} is missing and {apt_unusable} to install {' '.join(BROWSER_PACKAGES)}")
    # pytest-xdist workers may get here together: one installs, the other waits and re-checks.
    with open("/tmp/invoice_pipeline_chromium_install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if CHROMIUM.exists() and _has_cjk_font():
            return CHROMIUM
        started = time.monotonic()
        # A fresh machine's package lists are missing or stale (stale ones miss security updates).
        update = _apt_get("update", "-q")
        if update.returncode != 0:
            pytest.fail(f"apt-get update failed:\n{update.stdout[-2000:]}\n{update.stderr[-2000:]}")
        result = _apt_get("install", "-y", "-q", "--no-install-recommends", *BROWSER_PACKAGES)
        if result.returncode != 0 or not CHROMIUM.exists():
            pytest.fail(f"apt-get install {BROWSER_PACKAGES} failed:\n{result.stderr[-3000:]}")
        print(f"installed {BROWSER_PACKAGES} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return CHROMIUM


@dataclass
class Browser:
    context: Any  # playwright BrowserContext
    profile: Path
    expect: Any  # playwright.sync_api.expect: the module is imported only when installed


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="playwright is a dev dependency: pip install -c constraints.txt -e .[dev]",
    )
    executable = ensure_chromium()
    profile = tmp_path_factory.mktemp("chromium_profile")
    children_before = {pid for pid, st in _processes().items() if st[0] == os.getpid()}
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=str(profile),
            executable_path=str(executable),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1920, "height": 1080},
            locale="en-US",
            timezone_id="Asia/Shanghai",
        )
        # playwright's driver (our only new child) and Chromium under it, which all carry the profile.
        ours = {p: st[3] for p, st in _processes().items() if str(profile) in _cmdline(p)}
        for driver in {p for p, st in _processes().items() if st[0] == os.getpid()} - children_before:
            ours |= _tree(driver, with_session=False)
        try:
            yield Browser(context=context, profile=profile, expect=sync_api.expect)
        finally:  # renderers started for later pages carry the profile too
            ours |= {p: st[3] for p, st in _processes().items() if str(profile) in _cmdline(p)}
            context.close()
    # Closed and the driver stopped: none of them may outlive the fixture.
    survivors = _wait_gone(ours, timeout=5)
    killed = _kill_all(survivors)
    assert not killed, f"still running after playwright stopped, SIGKILLed: {killed}"


def _screenshot(page: Any, name: str, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    return path


# ---------------------------------------------------------------------------------------------
# (1) dagster dev over HTTP and GraphQL
# ---------------------------------------------------------------------------------------------


def _expected_groups() -> set[str]:
    return GROUPS | ({"reports"} if REPORTS_PACKAGE.exists() else set())


def test_definitions_over_graphql(dagster_dev: DagsterDev) -> None:
    data = dagster_dev.graphql(
        """
        {
          workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } }
          assetNodes { assetKey { path } groupName description jobNames }
        }
        """
    )
    locations = {e["name"]: e["loadStatus"] for e in data["workspaceOrError"]["locationEntries"]}
    assert locations == {LOCATION: "LOADED"}
    nodes = data["assetNodes"]
    keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
    assert {"raw/tax_platform", "core/invoices", "audit/findings"} <= keys
    assert _expected_groups() <= {n["groupName"] for n in nodes}
    undescribed = ["/".join(n["assetKey"]["path"]) for n in nodes if not (n["description"] or "").strip()]
    assert not undescribed
    # Everything runs nightly but the monthly (partitioned) compliance report, which has its own job.
    jobs = {"/".join(n["assetKey"]["path"]): set(n["jobNames"]) for n in nodes}
    assert not [k for k, names in jobs.items() if not names & {"nightly", "monthly_reports"}], jobs


def test_listens_on_loopback_only(dagster_dev: DagsterDev) -> None:
    tree = dagster_dev.snapshot()
    ours = set().union(*(_socket_inodes(pid) for pid in _alive(tree)))
    listening = _listening_inodes()
    ours_listening = {inode: listening[inode] for inode in ours & listening.keys()}
    # The UI's port and the code server's gRPC port: every listening socket of the process tree.
    assert any(port == dagster_dev.port for _, port in ours_listening.values()), ours_listening
    assert all(addr in ("127.0.0.1", "::1") for addr, _ in ours_listening.values()), ours_listening
    for address in _non_loopback_addresses():
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(2)
            s.connect((address, dagster_dev.port))


def test_nightly_job_over_graphql(dagster_dev: DagsterDev, nightly_run: Run) -> None:
    from invoice_pipeline.project import warehouse_path

    warehouse = warehouse_path(dagster_dev.data_dir)
    assert warehouse.exists()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (findings,) = con.execute("select count(*) from audit.findings").fetchone()
    assert findings > 0
    print(
        f"startup {dagster_dev.startup_s:.1f} s, nightly run {nightly_run.seconds:.1f} s, {findings} findings"
    )


# ---------------------------------------------------------------------------------------------
# (3) the UI and the compliance report in headless Chromium
# ---------------------------------------------------------------------------------------------


def test_asset_graph_in_chromium(dagster_dev: DagsterDev, nightly_run: Run, browser: Browser) -> None:
    """The global asset lineage renders every group and asset; the README shows one asset's lineage.

    After the nightly run, so the nodes show their materialisations and check results.
    """
    # The "Join the Dagster community" dialog covers the graph on a new instance's first visit.
    assert dagster_dev.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True
    page = browser.context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    def graph_button(icon: str) -> Any:  # icon buttons carry no text, only the icon's aria-label
        return page.get_by_role("button").filter(has=page.locator(f'[aria-label="{icon}"]')).last

    page.goto(f"{dagster_dev.url}/asset-groups", wait_until="domcontentloaded")
    page.get_by_text("Global asset lineage").first.wait_for(timeout=60_000)
    # With several groups the graph starts with one box per group.
    for group in sorted(_expected_groups()):
        page.get_by_text(group, exact=True).first.wait_for(timeout=30_000)
    graph_button("settings").click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.keyboard.press("Escape")
    page.get_by_text("tax_platform", exact=True).first.wait_for(state="visible", timeout=30_000)
    _screenshot(page, "global_lineage.png")

    # The whole graph is too big to read at a glance; core/invoices and its direct inputs are not, and
    # at that zoom each node shows its last materialisation, check results and kinds.
    page.goto(f"{dagster_dev.url}/assets/core/invoices?view=lineage&lineageScope=upstream&lineageDepth=1")
    for name in ("invoices", "tax_platform", "einvoice", "entities"):
        page.get_by_text(name, exact=True).first.wait_for(state="visible", timeout=30_000)
    page.wait_for_load_state("networkidle")
    # Each node fetches its latest materialisation and check results on its own.
    # (a locator, not wait_for_function: the UI's Content-Security-Policy forbids eval)
    browser.expect(page.get_by_text("Loading...")).to_have_count(0, timeout=30_000)
    _screenshot(page, "asset_graph.png")
    assert page.get_by_text("Materialized", exact=True).count() >= 4  # invoices and its 3 inputs
    assert page.get_by_text("Passed").count() >= 3  # asset check results
    page.close()
    # The UI works offline: everything it fetched came from the webserver itself.
    outside = [u for u in requests if not u.startswith((dagster_dev.url, "data:", "blob:"))]
    assert not outside, outside


@pytest.mark.skipif(
    not REPORTS_PACKAGE.exists(),
    reason="invoice_pipeline/reports (the compliance report asset) does not exist yet",
)
def test_compliance_report_in_chromium(dagster_dev: DagsterDev, report_run: Run, browser: Browser) -> None:
    reports = sorted((dagster_dev.data_dir / "reports" / REPORT_MONTH).glob("*/compliance_report.html"))
    assert reports, f"monthly_reports wrote no reports/{REPORT_MONTH}/*/compliance_report.html"
    page = browser.context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.set_viewport_size({"width": 1280, "height": 1360})  # the summary, tables and first two charts
    page.goto(reports[0].as_uri(), wait_until="load")
    page.wait_for_load_state("networkidle")
    assert "合规" in page.title()
    assert page.locator("svg").count() >= 1, "the report's charts did not render"
    _screenshot(page, "compliance_report.png")
    _screenshot(page, "compliance_report_full.png", full_page=True)
    page.close()
    # Offline by construction: no CDN, web font or beacon.
    assert requests, "no request was recorded at all"
    assert all(u.startswith(("file://", "data:")) for u in requests), requests
    print(f"monthly_reports {REPORT_MONTH}: run {report_run.seconds:.1f} s, {len(reports)} reports")


# ---------------------------------------------------------------------------------------------
# (4) the landing sensor in a running instance: a dropped file is picked up and loaded
# ---------------------------------------------------------------------------------------------

LANDING_RUNS = """
{
  runsOrError(filter: {tags: [{key: "invoice_pipeline/trigger", value: "landing"}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""
SENSOR_WAIT_S = 120


def _wait_for_landing_run(dev: DagsterDev, known: set[str]) -> dict[str, Any]:
    """The first run the landing sensor starts that is not in `known`."""
    deadline = time.monotonic() + SENSOR_WAIT_S
    while time.monotonic() < deadline:
        runs = [r for r in dev.graphql(LANDING_RUNS)["runsOrError"]["results"] if r["runId"] not in known]
        if runs:
            return runs[-1]
        dev.snapshot()
        time.sleep(1)
    pytest.fail(f"the landing sensor started no run within {SENSOR_WAIT_S} s:\n{dev.log_tail()}")


def test_sensor_runs_a_file_dropped_into_landing(tmp_path: Path) -> None:
    from invoice_pipeline.generate import generate
    from invoice_pipeline.project import landing_dir, warehouse_path

    data_dir = tmp_path / "data"
    generate(data_dir, invoices=300, seed=5)
    fast = {"INVOICE_PIPELINE_SETTLE_SECONDS": "2", "INVOICE_PIPELINE_SENSOR_INTERVAL_SECONDS": "5"}
    with _running_dagster_dev(tmp_path, data_dir, fast) as dev:
        # What had landed before the instance started is picked up first.
        first = _wait_for_landing_run(dev, set())
        _wait_for_run(dev, "nightly", first["runId"], time.monotonic())

        # An uploader writes under a temporary name: nothing starts while it is there.
        sync_dir = landing_dir(data_dir) / "sync_log"
        entity = json.loads(next(iter(sorted(sync_dir.glob("*.jsonl")))).read_text().splitlines()[0])[
            "entity_tin"
        ]
        record = {
            "run_id": "dropped-20261127-01",
            "system": "tax_platform->erp",
            "entity_tin": entity,
            "started_at": "2026-11-27T01:00:00+08:00",
            "finished_at": "2026-11-27T01:04:00+08:00",
            "status": "success",
            "records_read": 12,
            "records_written": 12,
            "records_failed": 0,
            "error": None,
        }
        part = sync_dir / "sync_dropped.jsonl.part"
        part.write_text(json.dumps(record) + "\n", encoding="utf-8")
        time.sleep(12)  # two ticks of the sensor
        assert [r["runId"] for r in dev.graphql(LANDING_RUNS)["runsOrError"]["results"]] == [first["runId"]]

        renamed = time.monotonic()
        part.rename(sync_dir / "sync_dropped.jsonl")
        run = _wait_for_landing_run(dev, {first["runId"]})
        picked_up = time.monotonic() - renamed
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["invoice_pipeline/new_files"] == "sync_log/sync_dropped.jsonl"
        finished = _wait_for_run(dev, "nightly", run["runId"], renamed)

        with duckdb.connect(str(warehouse_path(data_dir)), read_only=True) as con:
            loaded = con.execute(
                "select status, rows_loaded from audit.load_log where file_name = 'sync_dropped.jsonl'"
            ).fetchall()
            staged = con.execute(
                "select count(*) from staging.sync_log where run_id = 'dropped-20261127-01'"
            ).fetchall()
        assert loaded == [("loaded", 1)] and staged == [(1,)]
    print(
        f"dropped file: run started {picked_up:.1f} s after the rename, loaded {finished.seconds:.1f} s after"
    )


# ---------------------------------------------------------------------------------------------
# (1) stopped by its own PID — last, the other tests share the instance
# ---------------------------------------------------------------------------------------------


def test_stops_on_sigterm_to_its_own_pid(dagster_dev: DagsterDev) -> None:
    # Started with SIGINT ignored; the wrapper reset it, so SIGTERM reaches Dagster's handler.
    status = Path(f"/proc/{dagster_dev.proc.pid}/status").read_text()
    ignored = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)
    assert not ignored & ((1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))), hex(ignored)
    tree = dict(dagster_dev.snapshot())
    assert len(_alive(tree)) >= 4, {pid: _cmdline(pid) for pid in _alive(tree)}  # dev, web, daemon, code
    started = time.monotonic()
    survivors, killed = dagster_dev.stop()
    took = time.monotonic() - started
    assert not killed, f"still running {STOP_TIMEOUT_S} s after SIGTERM, SIGKILLed: {killed}"
    assert not survivors
    assert dagster_dev.proc.returncode is not None
    print(f"{len(tree)} processes gone {took:.1f} s after SIGTERM")
