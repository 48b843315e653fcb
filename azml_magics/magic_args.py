"""Argument parsing for the magics: argparse that never exits the kernel.

``-h`` prints usage with examples and stops the magic; a bad option becomes one ``UsageError`` line
that names the magic and points at its help.
"""

from __future__ import annotations

import argparse
import shlex

from IPython.core.error import UsageError


class HelpShown(Exception):
    """Raised after ``-h`` printed the help: the magic does nothing else."""


class MagicParser(argparse.ArgumentParser):
    def __init__(self, magic: str, description: str, examples: str, cell: bool = False, intermixed: bool = False):
        prefix = "%%" if cell else "%"
        super().__init__(
            prog=f"{prefix}{magic}",
            description=description,
            epilog="examples:\n" + examples.strip("\n"),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            add_help=True,
            allow_abbrev=False,
        )
        self.magic = f"{prefix}{magic}"
        # options may come before optional positionals (``%azml_chat EP --greedy "text"``); plain
        # parse_args stops filling positionals at the first option
        self.intermixed = intermixed

    def error(self, message):  # noqa: D102 - argparse hook
        raise UsageError(f"{self.magic}: {message}; see {self.magic} -h")

    def exit(self, status=0, message=None):  # noqa: D102 - argparse hook
        if message:
            raise UsageError(f"{self.magic}: {message.strip()}")
        raise HelpShown()

    def parse(self, line: str):
        try:
            argv = shlex.split(line or "", posix=True)
        except ValueError as exc:
            raise UsageError(f"{self.magic}: cannot read the arguments ({exc}); check the quotes.") from None
        if not self.intermixed:
            return self.parse_args(argv)
        # parse_intermixed_args stores the formatted usage and formats it again with '%': the '%' of
        # '%azml_chat' must be escaped, or the help reads "usage: {'prog': ...}zml_chat"
        saved, self.usage = self.usage, self.format_usage()[len("usage: "):].rstrip("\n").replace("%", "%%")
        try:
            return self.parse_intermixed_args(argv)
        finally:
            self.usage = saved
