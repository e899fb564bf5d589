"""What a reference command hands back to the CLI: the text to print and the exit code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    """Printed text and exit code (0 ok, 1 the run finished but failed its own check, 2 could not run)."""

    text: str
    exit_code: int = 0


class InputError(ValueError):
    """Bad input to a reference command (missing dataset, bad option): printed as one line, exit 2."""
