"""Run a cell in a real IPython shell and capture what the user would see."""

from __future__ import annotations


def run_cell(shell, code):
    """Run a cell; return (result, stdout text, rich outputs)."""
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        result = shell.run_cell(code, store_history=False)
    return result, cap.stdout + cap.stderr, cap.outputs
