"""`make lab`, checked: JupyterLab started from the venv, `pretrain.ipynb` opened in headless Chromium with the project's
kernel ("Python 3 (crisscross)", registered by `make setup`), its cells run until the views figure appears.

The browser is driven through the Chrome DevTools Protocol (websocket-client, a dependency of the pinned Jupyter stack).
The notebook is a copy in a temporary folder, so neither JupyterLab's autosave nor the run's outputs touch the repository;
Jupyter's user folders (config, data, settings, workspaces) are temporary too, so only the venv's kernelspec counts."""
import json, os, secrets, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

from conftest import chromium

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DISPLAY_NAME = "Python 3 (crisscross)"
SETUP = (f'{BIN / "python"} -m ipykernel install --sys-prefix --name python3 --display-name "{DISPLAY_NAME}" '
         "(what `make setup` runs)")


def free_port() -> int:
    "A TCP port nobody listens on now."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def get_json(url: str):
    "The JSON answer of `url`, or None while nothing answers there."
    try:
        with urllib.request.urlopen(url, timeout=5) as r: return json.loads(r.read())
    except (OSError, ValueError): return None


def wait_for(what: str, probe, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None, step=0.5):
    "Poll `probe()` until it returns something truthy; fail naming `what` (and the log of `proc`) when it does not."
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (got := probe()): return got
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: {proc.args[0]} exited ({proc.returncode}) first. The end of {log.name}:\n{tail(log)}")
        time.sleep(step)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s." + (f" The end of {log.name}:\n{tail(log)}" if log else ""))


def tail(log: Path | None, n=3000) -> str:
    return log.read_text(errors="replace")[-n:] if log and log.exists() else ""


def start(cmd: list, log: Path, env=None) -> subprocess.Popen:
    "Start `cmd` in its own process group (so that it and its children can be stopped together), output to `log`."
    with open(log, "wb") as f:
        return subprocess.Popen([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)


def stop(proc: subprocess.Popen):
    "Stop the process group of `proc`: SIGTERM, then SIGKILL after 10 s."
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if proc.poll() is not None: break
        try: os.killpg(proc.pid, sig)
        except ProcessLookupError: break
        try: proc.wait(wait)
        except subprocess.TimeoutExpired: pass
    try: os.killpg(proc.pid, signal.SIGKILL)  # children left behind by a leader that exited (the kernel)
    except (ProcessLookupError, PermissionError): pass


class DevTools:
    "A minimal Chrome DevTools Protocol client over one page's websocket."
    def __init__(self, ws_url: str):
        import websocket  # websocket-client
        self.ws, self.n = websocket.create_connection(ws_url, timeout=60, suppress_origin=True), 0

    def call(self, method: str, **params) -> dict:
        self.n += 1
        self.ws.send(json.dumps(dict(id=self.n, method=method, params=params)))
        while True:  # skip events until the answer to this call
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                if "error" in msg: raise RuntimeError(f"DevTools {method} failed: {msg['error']}")
                return msg["result"]

    def js(self, expression: str):
        "The value of a JavaScript expression in the page (promises awaited); None when it throws."
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return None if "exceptionDetails" in res else res["result"].get("value")

    def close(self): self.ws.close()


def test_kernelspec_registered_in_the_venv():
    "The kernel JupyterLab offers as `python3` is the venv's own, named as the README says: `make setup` registered it."
    res = subprocess.run([BIN / "jupyter", "kernelspec", "list", "--json"], capture_output=True, text=True, timeout=60,
                         env=jupyter_env(Path("/nonexistent-jupyter-user-dir")))
    assert res.returncode == 0, res.stderr
    spec = json.loads(res.stdout)["kernelspecs"].get("python3")
    assert spec and spec["spec"]["display_name"] == DISPLAY_NAME, (
        f"JupyterLab's kernel 'python3' is not the venv's {DISPLAY_NAME!r} (found: {spec}). "
        f"Register it in {sys.prefix} with\n{SETUP}")
    assert Path(spec["resource_dir"]).resolve().is_relative_to(Path(sys.prefix).resolve()), spec["resource_dir"]
    assert Path(spec["spec"]["argv"][0]).resolve() == Path(sys.executable).resolve(), spec["spec"]["argv"]


def jupyter_env(home: Path) -> dict:
    "The environment for Jupyter: user folders under `home`, so only the venv's (sys.prefix) kernelspecs and settings count."
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)  # this checkout's code
    return env


@pytest.fixture
def lab(tmp_path):
    "JupyterLab from the venv on a free port, serving a copy of pretrain.ipynb; yields (url, token, folder, log)."
    nbs = tmp_path / "nbs"; nbs.mkdir()
    notebook = (REPO / "nbs" / "pretrain.ipynb").read_text()
    assert '"out_dir = \\"\\"' in notebook, "pretrain.ipynb's parameters cell no longer has out_dir = \"\": update this test"
    (nbs / "pretrain.ipynb").write_text(notebook.replace('"out_dir = \\"\\"', '"out_dir = \\"runs/pretrain\\"', 1))  # outputs in the copy
    port, token, log = free_port(), secrets.token_hex(16), tmp_path / "jupyter-lab.log"
    proc = start([BIN / "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
                  f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={nbs}", "--LabApp.expose_app_in_browser=True",
                  "--ServerApp.port_retries=0", *(["--allow-root"] if os.geteuid() == 0 else [])],
                 log, env=jupyter_env(tmp_path / "jupyter-home"))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(f"JupyterLab answering on {url}/api/status", lambda: get_json(f"{url}/api/status?token={token}"),
                 120, proc, log)
        yield url, token, nbs, log
    finally: stop(proc)


@pytest.fixture
def browser(tmp_path):
    "Headless Chromium with its DevTools port open; yields a DevTools client of its blank page."
    port, log = free_port(), tmp_path / "chromium.log"
    proc = start([chromium("The JupyterLab test drives"), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                  f"--remote-debugging-port={port}", "--remote-allow-origins=*", f"--user-data-dir={tmp_path / 'profile'}",
                  "--window-size=1400,1000", "about:blank"], log)
    client = None
    try:
        pages = lambda: [t for t in get_json(f"http://127.0.0.1:{port}/json/list") or [] if t.get("type") == "page"]
        page = wait_for(f"Chromium's DevTools page on port {port}", pages, 60, proc, log)[0]
        client = DevTools(page["webSocketDebuggerUrl"])
        yield client
    finally:
        if client: client.close()
        stop(proc)


NOTEBOOK = "Array.from(jupyterapp.shell.widgets('main')).find(w => w.context?.path === 'pretrain.ipynb')"
ERRORS = f"""(() => {{ const nb = {NOTEBOOK}.context.model.toJSON();
  return nb.cells.flatMap(c => (c.outputs || []).filter(o => o.output_type === 'error')
                                              .map(o => o.ename + ': ' + o.evalue)); }})()"""


def test_lab_runs_pretrain_notebook(lab, browser):
    "The README's interactive path: the notebook opens in JupyterLab with the project's kernel and draws the views figure."
    t0 = time.monotonic()
    url, token, nbs, log = lab
    browser.call("Emulation.setFocusEmulationEnabled", enabled=True)  # a headless page has no focus: JupyterLab tracks it
    browser.call("Page.navigate", url=f"{url}/lab/tree/pretrain.ipynb?token={token}")
    wait_for("JupyterLab's app in the page (window.jupyterapp)", lambda: browser.js("!!window.jupyterapp?.shell"), 120)
    wait_for("pretrain.ipynb open in JupyterLab", lambda: browser.js(f"{NOTEBOOK}?.content?.widgets?.length > 0"), 120)
    wait_for("the notebook's kernel ready", lambda: browser.js(
        f"{NOTEBOOK}.sessionContext.isReady && {NOTEBOOK}.sessionContext.session?.kernel?.status === 'idle'"), 120,
        log=log, step=1)
    shown = browser.js(f"{NOTEBOOK}.sessionContext.kernelDisplayName")
    assert shown == DISPLAY_NAME, f"pretrain.ipynb opened with the kernel {shown!r}, not {DISPLAY_NAME!r}: register it:\n{SETUP}"
    toolbar = browser.js("document.querySelector('.jp-NotebookPanel .jp-Toolbar-kernelName')?.textContent")
    assert toolbar and DISPLAY_NAME in toolbar, f"the toolbar shows the kernel {toolbar!r}, not {DISPLAY_NAME!r}"

    assert browser.js("jupyterapp.commands.hasCommand('notebook:run-all-cells')"), "no command notebook:run-all-cells"
    activated = browser.js(f"jupyterapp.shell.activateById({NOTEBOOK}.id), jupyterapp.shell.currentWidget === {NOTEBOOK}")
    assert activated, "pretrain.ipynb is open but JupyterLab did not make it the current widget (run-all acts on that one)"
    browser.js("jupyterapp.commands.execute('notebook:run-all-cells'), true")  # not awaited: the run takes a while
    def views_figure():
        if (errors := browser.js(ERRORS)): pytest.fail(f"pretrain.ipynb failed in JupyterLab: {errors}")
        return browser.js(f"{NOTEBOOK}.node.querySelectorAll('.jp-OutputArea-output img').length") or 0
    # generous: a fresh checkout generates the embedded data set first (minutes on 2 cores; CI's notebook tests made it)
    wait_for("the views figure (an <img> in an output of pretrain.ipynb)", views_figure, 480, log=log, step=1)
    assert (nbs / "runs" / "pretrain" / "views.png").is_file(), "the notebook showed a figure but wrote no views.png"
    print(f"JupyterLab: pretrain.ipynb opened and the views figure appeared in {time.monotonic() - t0:.1f} s")
