"""Backend plugins, found through the entry-point group ``azml_magics.backends``.

A third-party package adds a backend by declaring, in its own ``pyproject.toml``::

    [project.entry-points."azml_magics.backends"]
    mycloud = "mypkg.backend:MyCloudBackend"

The class declares ``name``, ``extra``, ``requires`` and ``capabilities`` and has the methods of
:class:`azml_magics.backends.base.Backend` (see there for the optional capabilities). Loading a backend imports only its module; the heavy
libraries it needs are imported when it does work.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import entry_points

from ..errors import BackendUnavailable

GROUP = "azml_magics.backends"


def available() -> dict[str, object]:
    """Name -> entry point, for every installed backend."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def missing_modules(requires) -> list[str]:
    return [m for m in requires if importlib.util.find_spec(m) is None]


def load(name: str):
    """Return a new instance of backend ``name``, or a one-line error that says what to install."""
    eps = available()
    if name not in eps:
        import difflib

        known = ", ".join(sorted(eps)) or "none"
        close = difflib.get_close_matches(name, list(eps), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise BackendUnavailable(
            f"no backend named '{name}'; {hint}installed backends: {known}. "
            "Reinstall azml_magics if 'local' or 'azure' is missing."
        )
    cls = eps[name].load()
    from .base import contract_problems

    problems = contract_problems(cls)
    if problems:
        raise BackendUnavailable(
            f"the '{name}' backend ({cls.__module__}.{cls.__qualname__}) does not declare the backend contract: "
            f"{'; '.join(problems)}; see azml_magics.backends.base.Backend."
        )
    missing = missing_modules(cls.requires)
    if missing:
        extra = cls.extra
        fix = f"pip install 'azml_magics[{extra}]'" if extra else f"pip install {' '.join(missing)}"
        raise BackendUnavailable(
            f"the '{name}' backend needs {', '.join(missing)}, which is not installed; run: {fix}"
        )
    return cls()
