"""GPTQ-CALIB-VAL: quantization statistics (Hessians, scales) collected from validation data."""

from __future__ import annotations

import ast
import re
from functools import cached_property

from rules.analysis.dataflow import guarded_severity, last_name, script_facts
from rules.base import Invalid, Rule, Valid

_COLLECTOR_NAME = re.compile(r"hessian|gptq", re.IGNORECASE)


# One config object holds both split patterns; the calibration loader reads one field of it. Which field is read
# decides, not that the object also holds the other.
_CONFIG = (
    "import os\n"
    "from dataclasses import dataclass, field\n"
    "@dataclass\n"
    "class DataConfig:\n"
    "    root: str = 'data'\n"
    "    train_glob: str = field(init=False)\n"
    "    val_glob: str = field(init=False)\n"
    "    def __post_init__(self):\n"
    "        self.train_glob = os.path.join(self.root, 'fineweb_train_*.bin')\n"
    "        self.val_glob = os.path.join(self.root, 'fineweb_val_*.bin')\n"
    "def collect_hessians(model, loader):\n"
    "    pass\n"
    "def main(model):\n"
    "    data = DataConfig()\n"
    "    loader = DistributedTokenLoader(data.{GLOB}, 0, 1, 'cuda')\n"
    "    return collect_hessians(model, loader)\n"
)


class GptqCalibVal(Rule):
    """Flags a Hessian / calibration collector fed with validation tokens or the validation file pattern.

    Why: quantization statistics computed on validation tokens tune the artifact to the test set. #728 was
    re-created as #1019 at valerio-oai's request because it shipped validation-calibrated files (maintainer
    ruling, indirect); the AGORA rulings list a 2026-03-22 ban on it.

    Instead: calibrate on autoregressively self-generated tokens (merged #1019), or on training data inside the
    training budget (subtract a GPTQ reserve from the wall-clock cap).
    """

    ID = "GPTQ-CALIB-VAL"
    CODE = "PG106"
    MESSAGE = "quantization calibration (Hessian collection) reads validation data"
    VALID = [
        Valid(
            "def collect_hessians(model, seqs):\n"
            "    for s in seqs:\n"
            "        model(s)\n"
            "def main(model, val_tokens):\n"
            "    seqs = generate_autoregressive_calib(model, num_seqs=64, temperature=0.8)\n"
            "    h = collect_hessians(model, seqs)\n"
            "    return eval_val(model, val_tokens)\n",
            name="self-generated calibration (merged #1019; folder named ValCalib)",
        ),
        Valid(
            "def collect_hessians(model, loader):\n"
            "    pass\n"
            "def main(args, model):\n"
            "    calib_loader = DistributedTokenLoader(args.train_files, 0, 1, 'cuda')\n"
            "    return collect_hessians(model, calib_loader)\n",
            name="training-data calibration",
        ),
        Valid(_CONFIG.replace("{GLOB}", "train_glob"),
              name="calibration reads the training field of a config that also holds the validation pattern"),
    ]
    INVALID = [
        Invalid(
            "def collect_hessians(model, loader):\n"
            "    pass\n"
            "def main(args, model):\n"
            "    calib_loader = DistributedTokenLoader(args.val_files, 0, 1, 'cuda')\n"
            "    return collect_hessians(model, calib_loader)\n",
            expected_line=5,
            name="#728 v1: val_files loader",
        ),
        Invalid(
            "def collect_hessians_from_tokens(model, seqs):\n"
            "    pass\n"
            "def main(model, n, L):\n"
            "    held = torch.load('data/fineweb_val_000000.bin')\n"
            "    seqs = [held[i * L:(i + 1) * L] for i in range(n)]\n"
            "    return collect_hessians_from_tokens(model, seqs)\n",
            expected_line=6,
            name="#1329: sequences sliced from val_tokens",
        ),
        Invalid(_CONFIG.replace("{GLOB}", "val_glob"), expected_line=16,
                name="near-miss: the same config, calibration reads its validation field"),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)  # which calls collect statistics (callee bodies)
        for info in self.facts.graph.functions:
            for node in info.nodes:
                if not (isinstance(node, ast.Call) and self._is_collector(node, facts)):
                    continue
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    origin = self.facts.val_evidence(arg, info)  # the shared taint: what the argument was read from
                    if origin is None:
                        continue
                    severity, guards = guarded_severity(self, node)
                    self.report(node, severity=severity, evidence=[
                        origin, (node.lineno, f"passed to calibration `{last_name(node.func)}`"), *guards])
                    break

    @cached_property
    def _called_names(self) -> dict[ast.AST, set]:
        """Callee node -> the names it calls: each callee is walked once, however many calls reach it."""
        return {}

    def _is_collector(self, call: ast.Call, facts) -> bool:
        name = last_name(call.func) or ""
        if _COLLECTOR_NAME.search(name):
            return True
        for callee in facts.callees(call):
            calls = self._called_names.get(callee)
            if calls is None:
                calls = self._called_names[callee] = {last_name(n.func) for n in ast.walk(callee)
                                                      if isinstance(n, ast.Call)}
            # A hook-registering function that also trains is a training loop, not a calibration pass.
            if "register_forward_hook" in calls and "backward" not in calls and "step" not in calls:
                return True
        return False
