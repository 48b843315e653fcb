"""Backends are entry-point plugins: a third-party package can add one; missing extras are named."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from azml_magics import backends
from azml_magics.errors import BackendUnavailable


def _install_fake_plugin(root, requires):
    """A real distribution on sys.path declaring two backends in azml_magics.backends."""
    pkg = root / "fakecloud"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(f"""
        from azml_magics.backends.base import Workspace

        class FakeCloud:
            name = "fakecloud"
            extra = None
            requires = ()
            capabilities = frozenset()

            def connect(self, options):
                return Workspace(backend="fakecloud", name="fake-ws", key="fakecloud:" + options["home"])

        class NeedsMissing(FakeCloud):
            name = "needs-missing"
            extra = "gpu-things"
            requires = {requires!r}

        class Undeclared:
            name = "undeclared"

            def connect(self, options):
                raise AssertionError("never instantiated")

        class ClaimsKeys(FakeCloud):
            name = "claims-keys"
            capabilities = frozenset({{"endpoint_key"}})
    """))
    dist = root / "fakecloud-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakecloud\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[azml_magics.backends]\nfakecloud = fakecloud:FakeCloud\nneeds-missing = fakecloud:NeedsMissing\n"
        "undeclared = fakecloud:Undeclared\nclaims-keys = fakecloud:ClaimsKeys\n"
    )


def test_third_party_backend_is_discovered_and_used(tmp_path):
    _install_fake_plugin(tmp_path, ("surely_not_installed_module",))
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(tmp_path)!r})
        from azml_magics import backends
        from azml_magics.api import Session
        from azml_magics.errors import BackendUnavailable
        print(sorted(backends.available()))
        s = Session(home={str(tmp_path / 'home')!r})
        print(s.connect("fakecloud").name)
        try:
            s.connect("needs-missing")
        except BackendUnavailable as e:
            print("ERR", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert "'fakecloud'" in lines[0] and "'local'" in lines[0] and "'azure'" in lines[0]
    assert lines[1] == "fake-ws"
    assert lines[2] == ("ERR the 'needs-missing' backend needs surely_not_installed_module, which is not "
                        "installed; run: pip install 'azml_magics[gpu-things]'")


def test_builtin_backends_are_registered():
    assert {"local", "azure"} <= set(backends.available())


def test_unknown_backend_names_the_installed_ones():
    with pytest.raises(BackendUnavailable, match="no backend named 'nope'; installed backends: .*azure.*local"):
        backends.load("nope")


def test_missing_modules_are_reported():
    assert backends.missing_modules(["json", "surely_not_installed_module"]) == ["surely_not_installed_module"]


def test_a_plugin_must_declare_the_contract_and_have_the_methods_of_its_capabilities(tmp_path):
    _install_fake_plugin(tmp_path, ())
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(tmp_path)!r})
        from azml_magics import backends
        from azml_magics.errors import BackendUnavailable
        for name in ("undeclared", "claims-keys"):
            try:
                backends.load(name)
            except BackendUnavailable as e:
                print("ERR", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    undeclared, claims = out.strip().splitlines()
    assert undeclared.startswith("ERR the 'undeclared' backend (fakecloud.Undeclared) does not declare the backend contract")
    assert "no 'extra' class attribute; no 'requires' class attribute; no 'capabilities' class attribute" in undeclared
    assert claims.endswith("declares 'endpoint_key' but has no endpoint_key() method; see azml_magics.backends.base.Backend.")


def test_the_builtin_backends_hold_the_declared_contract():
    from azml_magics.backends.base import contract_problems

    for name, ep in backends.available().items():
        if name in ("local", "azure"):
            assert contract_problems(ep.load()) == [], name
