"""Opt-in auto-loading of the extension in every IPython kernel and terminal.

IPython reads ``ipython_config.json`` from the profile folder (``--user``) and from
``<sys.prefix>/etc/ipython`` (``--sys-prefix``, this environment only) before every kernel starts.
``enable`` adds ``azml_magics`` to ``InteractiveShellApp.extensions`` there, keeping whatever else the
file holds; ``disable`` takes it out again. The fragment it merges is shipped as
``jupyter-config/ipython/azml_magics_autoload.json``.

    python -m azml_magics.autoload enable [--user | --sys-prefix]
    python -m azml_magics.autoload disable [--user | --sys-prefix]
    python -m azml_magics.autoload status
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .files import write_json

EXTENSION = "azml_magics"
FRAGMENT = {"InteractiveShellApp": {"extensions": [EXTENSION]}}
CONFIG_NAME = "ipython_config.json"


def config_file(scope: str) -> Path:
    if scope == "sys-prefix":
        return Path(sys.prefix) / "etc" / "ipython" / CONFIG_NAME
    from IPython.paths import get_ipython_dir

    return Path(get_ipython_dir()) / "profile_default" / CONFIG_NAME


def _read(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text() or "{}")
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path} is not valid JSON ({exc}); fix it by hand first.") from None
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict) -> None:
    write_json(path, data, indent=2, newline=True)


def enabled(scope: str) -> bool:
    extensions = _read(config_file(scope)).get("InteractiveShellApp", {}).get("extensions", [])
    return EXTENSION in extensions


def enable(scope: str = "user") -> Path:
    path = config_file(scope)
    data = _read(path)
    extensions = data.setdefault("InteractiveShellApp", {}).setdefault("extensions", [])
    if EXTENSION not in extensions:
        extensions.append(EXTENSION)
    _write(path, data)
    return path


def disable(scope: str = "user") -> Path:
    path = config_file(scope)
    data = _read(path)
    app = data.get("InteractiveShellApp", {})
    if EXTENSION in app.get("extensions", []):
        app["extensions"] = [e for e in app["extensions"] if e != EXTENSION]
        if not app["extensions"]:
            del app["extensions"]
        if not app:
            del data["InteractiveShellApp"]
        _write(path, data)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m azml_magics.autoload", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["enable", "disable", "status"])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--user", dest="scope", action="store_const", const="user", help="your IPython profile (default)")
    where.add_argument("--sys-prefix", dest="scope", action="store_const", const="sys-prefix", help="this environment only")
    args = parser.parse_args(argv)
    scope = args.scope or "user"
    if args.action == "status":
        for s in ("user", "sys-prefix"):
            print(f"{s:10s} {'enabled' if enabled(s) else 'disabled':8s} {config_file(s)}")
        return 0
    path = (enable if args.action == "enable" else disable)(scope)
    print(f"azml_magics auto-load {args.action}d in {path}; restart kernels to apply.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
