"""The opt-in auto-load: a real kernel started after `enable` has the magics; `disable` undoes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from azml_magics import autoload
from tests.paths import REPO

ROOT = REPO


def _env(ipython_dir):
    return {**os.environ, "IPYTHONDIR": str(ipython_dir)}


def _run(args, ipython_dir):
    return subprocess.run([sys.executable, "-m", "azml_magics.autoload", *args], env=_env(ipython_dir),
                          capture_output=True, text=True, check=True).stdout


def _kernel_has_magics(ipython_dir, cwd) -> bool:
    """Start a real Jupyter kernel (as a notebook does) and ask it whether the magics are there."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env=_env(ipython_dir), cwd=str(cwd))
    try:
        reply = kc.execute_interactive(
            "print('AUTOLOADED' if 'azml_connect' in get_ipython().magics_manager.magics['line'] else 'ABSENT')",
            timeout=60, output_hook=lambda msg: seen.append(msg),
        )
        assert reply["content"]["status"] == "ok"
        return any("AUTOLOADED" in m["content"].get("text", "") for m in seen)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


seen: list = []


def test_enable_merges_and_disable_restores(tmp_path):
    ipdir = tmp_path / "ipython"
    cfg = ipdir / "profile_default" / "ipython_config.json"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(json.dumps({"InteractiveShellApp": {"extensions": ["other_ext"]}, "X": {"y": 1}}))
    _run(["enable"], ipdir)
    data = json.loads(cfg.read_text())
    assert data["InteractiveShellApp"]["extensions"] == ["other_ext", "azml_magics"]
    assert data["X"] == {"y": 1}
    _run(["enable"], ipdir)  # idempotent
    assert json.loads(cfg.read_text())["InteractiveShellApp"]["extensions"].count("azml_magics") == 1
    _run(["disable"], ipdir)
    assert json.loads(cfg.read_text()) == {"InteractiveShellApp": {"extensions": ["other_ext"]}, "X": {"y": 1}}


def test_a_kernel_loads_the_extension_only_when_enabled(tmp_path):
    ipdir = tmp_path / "ipython"
    seen.clear()
    assert not _kernel_has_magics(ipdir, tmp_path)
    seen.clear()
    _run(["enable", "--user"], ipdir)
    assert _kernel_has_magics(ipdir, tmp_path)
    seen.clear()
    _run(["disable", "--user"], ipdir)
    assert not _kernel_has_magics(ipdir, tmp_path)


def test_shipped_fragment_is_what_enable_writes():
    shipped = json.loads((ROOT / "jupyter-config" / "ipython" / "azml_magics_autoload.json").read_text())
    assert shipped == autoload.FRAGMENT
