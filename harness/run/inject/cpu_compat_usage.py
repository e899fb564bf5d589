"""Which stand-ins of the CPU compatibility layer the probed script reached: the record and its callback.

Every stand-in of cpu_compat.py and cpu_compat_flash.py calls `used(name)`; the first call for a name that does not
come from torch's own code is appended to USED and passed to the callback given to `set_notify`. Imported as a
top-level module (the inject/ folder is on the probed process's sys.path); nothing here imports harness/.
"""

from __future__ import annotations

import sys

USED: list[str] = []
_notify = None
LAYER_MODULES = ("cpu_compat", "cpu_compat_flash", __name__)  # the layer's modules, imported as top-level modules


def set_notify(notify) -> None:
    """Call `notify(name)` once per stand-in the script reaches from now on (None: only record it)."""
    global _notify
    _notify = notify


def _called_by_torch() -> bool:
    """Whether the nearest caller outside the layer's modules is torch itself (torch.manual_seed seeds CUDA, say)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") in LAYER_MODULES:
        frame = frame.f_back
    return frame is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] == "torch"


def used(name: str) -> None:
    """Report a stand-in the first time the script (not torch's own code) reaches it."""
    if name in USED or _called_by_torch():
        return
    USED.append(name)
    if _notify is not None:
        try:
            _notify(name)
        except Exception:  # noqa: BLE001 - reporting must never change the script's behaviour
            pass
