"""Argument parsing shared by the settlement commands."""
from django.core.management.base import CommandParser


class IntermixedCommandParser(CommandParser):
    """Takes positionals before and after options: `policy set <scheme> --year Y NAME=VALUE...` (SPEC §5).

    Plain argparse binds a trailing `nargs="*"` positional at the first run of positionals, so the
    NAME=VALUE words after `--year` would be "unrecognized". Intermixed parsing reads all positionals
    after the options; it calls parse_known_args itself, hence the re-entry guard.
    """

    _inside = False

    def parse_known_args(self, args=None, namespace=None):
        if self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False
