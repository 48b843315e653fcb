"""azml_magics: fine-tune, deploy and chat with a chat model from a Jupyter notebook.

``%load_ext azml_magics`` registers the magics. Loading imports IPython and traitlets only: the
Azure SDK, torch, transformers, mlflow and datasets load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"


def load_ipython_extension(ipython):
    from .magics import AzmlMagics

    magics = AzmlMagics(shell=ipython)
    ipython.register_magics(magics)
    # one AzmlMagics in %config, also after %reload_ext
    ipython.configurables[:] = [c for c in ipython.configurables if type(c).__name__ != "AzmlMagics"]
    ipython.configurables.append(magics)
    from . import waits

    # waits draw in this shell: the widget bar in a notebook, a line in a terminal (ui loads on the first wait)
    waits.set_reporter(lambda: _wait_reporter(ipython))
    return magics


def _wait_reporter(ipython):
    from .ui.waitbar import for_shell

    return for_shell(ipython)


def unload_ipython_extension(ipython):
    from . import waits

    waits.set_reporter(None)
    ipython.configurables[:] = [c for c in ipython.configurables if type(c).__name__ != "AzmlMagics"]
