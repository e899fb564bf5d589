"""GPTQ-CALIB-VAL: quantization statistics (Hessians, scales) collected from validation data."""

from __future__ import annotations

import ast
from functools import cached_property

from rules.analysis.dataflow import guarded_severity, last_name, script_facts
from rules.base import Invalid, Rule, Valid

# A statistics collector by effect, under a neutral name: forward hooks accumulate each layer's input Gram matrix.
_COLLECT = (
    "def gather(model, batches):\n"
    "    stats = {}\n"
    "    def make(name):\n"
    "        def hook(module, inputs, output):\n"
    "            x = inputs[0].flatten(0, 1)\n"
    "            stats[name] = stats.get(name, 0) + x.T @ x\n"
    "        return hook\n"
    "    handles = [m.register_forward_hook(make(n)) for n, m in model.named_modules()]\n"
    "    for b in batches:\n"
    "        model(b)\n"
    "    return stats\n"
)

# One config object holds both split patterns; the calibration loader reads one field of it. Which field is read
# decides, not that the object also holds the other.
_CONFIG = _COLLECT + (
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
    "def main(model):\n"
    "    data = DataConfig()\n"
    "    loader = DistributedTokenLoader(data.{GLOB}, 0, 1, 'cuda')\n"
    "    return gather(model, loader)\n"
)


# A hook nested in the collector and a print helper nested in main share one name; a bare-name call runs the def
# its own scope sees, so printing validation tokens through main's helper is no calibration.
_SAME_NAME = (
    "import torch\n"
    "def collect(model, batches):\n"
    "    acc = {}\n"
    "    def wrap(name):\n"
    "        def emit(mod, inp, out):\n"
    "            x = inp[0]\n"
    "            acc[name] = acc.get(name, 0) + x.T @ x\n"
    "        return emit\n"
    "    for n, m in model.named_modules():\n"
    "        m.register_forward_hook(wrap(n))\n"
    "    for b in batches:\n"
    "        model(b)\n"
    "    return acc\n"
    "def main(model, args):\n"
    "    def emit(msg):\n"
    "        print(msg)\n"
    "    held = torch.load('data/fineweb_val_000000.bin')\n"
    "    emit(held[:8])\n"
    "    return collect(model, load_batches({CALIB}))\n"
)


class GptqCalibVal(Rule):
    """Flags quantization statistics collected from validation data: validation tokens passed to code that, by
    what it does, collects activation statistics (it hooks the model's layers and runs it without training, or
    it accumulates a Gram matrix X'X, a GPTQ Hessian), or a forward pass over validation data in a function that
    has hooked the model (AWQ-style scales). What the collector is called is never evidence.

    Why: quantization statistics computed on validation tokens tune the artifact to the test set. #728 was
    re-created as #1019 at valerio-oai's request because it shipped validation-calibrated files (maintainer
    ruling, indirect); the AGORA rulings list a 2026-03-22 ban on it.

    Instead: calibrate on autoregressively self-generated tokens (merged #1019), or on training data inside the
    training budget (subtract a GPTQ reserve from the wall-clock cap).
    """

    ID = "GPTQ-CALIB-VAL"
    CODE = "PG106"
    MESSAGE = "quantization calibration (activation statistics, Hessians) reads validation data"
    VALID = [
        Valid(_COLLECT + "def main(model, val_tokens):\n"
              "    seqs = generate_autoregressive_calib(model, num_seqs=64, temperature=0.8)\n"
              "    h = gather(model, seqs)\n"
              "    return eval_val(model, val_tokens)\n",
              name="self-generated calibration (merged #1019; folder named ValCalib)"),
        Valid(_COLLECT + "def main(args, model):\n"
              "    calib_loader = DistributedTokenLoader(args.train_files, 0, 1, 'cuda')\n"
              "    return gather(model, calib_loader)\n",
              name="training-data calibration"),
        Valid(_CONFIG.replace("{GLOB}", "train_glob"),
              name="calibration reads the training field of a config that also holds the validation pattern"),
        Valid("import torch\n"
              "def collect_hessians(model, tokens):\n"
              "    with torch.no_grad():\n"
              "        return sum(model(tokens[i:i + 64]).item() for i in range(0, 4096, 64))\n"
              "def main(model):\n"
              "    held = torch.load('data/fineweb_val_000000.bin')\n"
              "    return collect_hessians(model, held)\n",
              name="near-miss: a scoring pass named like a collector collects no statistics"),
        Valid("def probe(model, batches, opt):\n"
              "    model.blocks[0].register_forward_hook(lambda m, i, o: None)\n"
              "    for x, y in batches:\n"
              "        model(x, y).backward()\n"
              "        opt.step()\n"
              "def main(model, opt):\n"
              "    probe(model, load_batches('data/fineweb_train_*.bin'), opt)\n",
              name="near-miss: hooks on a training loop over training data"),
        Valid("import torch\n"
              "def main(model):\n"
              "    scales, handles = {}, []\n"
              "    for name, m in model.named_modules():\n"
              "        handles.append(m.register_forward_hook(lambda mod, i, o, n=name: scales.setdefault(n, o)))\n"
              "    with torch.no_grad():\n"
              "        model(torch.load('data/fineweb_train_000000.bin')[:4096].view(2, -1))\n"
              "    for h in handles:\n"
              "        h.remove()\n"
              "    model = quantize(model, scales)\n"
              "    return evaluate(model, torch.load('data/fineweb_val_000000.bin'))\n",
              name="near-miss: scales from training data; validation scored after the hooks are removed"),
        Valid("import torch\n"
              "def score(model, val_tokens):\n"
              "    total = 0.0\n"
              "    for i in range(0, 4096, 128):\n"
              "        cap = [None]\n"
              "        h = model.final_norm.register_forward_hook(lambda m, inp, out: cap.__setitem__(0, out))\n"
              "        with torch.no_grad():\n"
              "            model.forward_logits(val_tokens[i:i + 128].view(1, -1))\n"
              "        total += head_loss(cap[0])\n"
              "    return total\n"
              "def main(model):\n"
              "    return score(model, torch.load('data/fineweb_val_000000.bin'))\n",
              name="near-miss: one hook capturing a hidden state to score with is no layer-wise calibration"),
        Valid(_SAME_NAME.replace("{CALIB}", "args.train_files"),
              name="near-miss: validation printed through a helper named like the collector's nested hook"),
    ]
    INVALID = [
        Invalid(_COLLECT + "def main(args, model):\n"
                "    calib_loader = DistributedTokenLoader(args.val_files, 0, 1, 'cuda')\n"
                "    return gather(model, calib_loader)\n",
                expected_line=14, name="#728 v1: val_files loader into a hook collector"),
        Invalid("import torch\n"
                "def second_moments(model, seqs):\n"
                "    acc = {}\n"
                "    for s in seqs:\n"
                "        for name, x in model.layer_inputs(s):\n"
                "            acc[name] = acc.get(name, 0)\n"
                "            acc[name] += x.t() @ x\n"
                "    return acc\n"
                "def main(model, n, L):\n"
                "    held = torch.load('data/fineweb_val_000000.bin')\n"
                "    seqs = [held[i * L:(i + 1) * L] for i in range(n)]\n"
                "    return second_moments(model, seqs)\n",
                expected_line=12, name="#1329 shape, renamed: Hessians from sequences sliced from validation"),
        Invalid(_CONFIG.replace("{GLOB}", "val_glob"), expected_line=25,
                name="near-miss: the same config, calibration reads its validation field"),
        Invalid("import torch\n"
                "def main(model):\n"
                "    val_tokens = torch.load('data/fineweb_val_000000.bin')\n"
                "    scales = {}\n"
                "    for name, m in model.named_modules():\n"
                "        m.register_forward_hook(lambda mod, i, o, n=name: scales.setdefault(n, o.abs().mean()))\n"
                "    with torch.no_grad():\n"
                "        model.forward_logits(val_tokens[:4096].view(2, -1))\n"
                "    return quantize(model, scales)\n",
                expected_line=8, name="#678 shape: AWQ scales from hooks, the forward pass inline on validation"),
        Invalid("import torch\n"
                "def export(model, val_tokens):\n"
                "    scales = {}\n"
                "    for name, m in model.named_modules():\n"
                "        m.register_forward_hook(lambda mod, i, o, n=name: scales.setdefault(n, o.abs().mean()))\n"
                "    with torch.no_grad():\n"
                "        model.forward_logits(val_tokens[:4096].view(2, -1))\n"
                "    return quantize(model, scales)\n"
                "def main(model):\n"
                "    return export(model, torch.load('data/fineweb_val_000000.bin'))\n",
                expected_line=10, name="the same in a helper: validation passed to a function that hooks and runs"),
        Invalid("def _accumulate(h, x):\n"
                "    h.add_(torch.matmul(x.T, x))\n"
                "def calibrate(model, batches, h):\n"
                "    for b in batches:\n"
                "        _accumulate(h, model.embed(b))\n"
                "def main(model, h):\n"
                "    calibrate(model, load_batches('data/fineweb_val_*.bin'), h)\n",
                expected_line=7, name="indirect: the Gram update two calls below the calibration call"),
        Invalid(_SAME_NAME.replace("load_batches({CALIB})", "held"), expected_line=19,
                name="the same script, the collector given the validation tokens"),
    ]

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)  # which calls collect statistics (callee bodies)
        covered: set[ast.AST] = set()  # collectors already reported at a call that passes validation data
        inline = []
        for info in self.facts.graph.functions:
            window = _hook_window(info.nodes)  # the function itself hooks the model, then runs it before training
            for node in info.nodes:
                if not isinstance(node, ast.Call):
                    continue
                if self._is_collector(node, facts):
                    if self._report_val_arg(node, info):
                        covered.update(facts.callees(node))
                elif window[0] < node.lineno < window[1] and _root_name(node.func) in window[2]:
                    inline.append((node, info))  # the hooked model itself, run with the hooks collecting
        for node, info in inline:
            if info.node not in covered:
                self._report_val_arg(node, info)

    def _report_val_arg(self, node: ast.Call, info) -> bool:
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            origin = self.facts.val_evidence(arg, info)  # the shared taint: what the argument was read from
            if origin is None:
                continue
            severity, guards = guarded_severity(self, node)
            self.report(node, severity=severity, evidence=[
                origin, (node.lineno, f"passed to calibration `{last_name(node.func)}`"), *guards])
            return True
        return False

    @cached_property
    def _collects(self) -> dict[ast.AST, bool]:
        """Callee node -> whether running it collects statistics: each callee is judged once."""
        return {}

    def _is_collector(self, call: ast.Call, facts, depth: int = 0) -> bool:
        """Whether CALL runs code that collects activation statistics by effect: it registers forward hooks and
        does not train, or it accumulates a Gram matrix (`H += x.T @ x`, a Hessian); followed two calls deep."""
        for callee in facts.callees(call):
            known = self._collects.get(callee)
            if known is None:
                self._collects[callee] = False  # recursion guard
                body = list(ast.walk(callee))
                known = _hooks_without_training(body) is not None or any(_gram_update(n) for n in body) or (
                    depth < 2 and any(isinstance(n, ast.Call) and n is not call
                                      and self._is_collector(n, facts, depth + 1) for n in body))
                self._collects[callee] = known
            if known:
                return True
        return False


_HOOKS = {"register_forward_hook", "register_forward_pre_hook"}
_TRAINING = {"backward", "step"}


def _hooks_without_training(nodes) -> int | None:
    """The line of the first layer-wise forward hook among NODES when none of them trains (backward, step)."""
    calls = [n for n in nodes if isinstance(n, ast.Call)]
    if {last_name(n.func) for n in calls} & _TRAINING:
        return None
    return min((line for line, _model in _layer_hooks(nodes)), default=None)


def _hook_window(nodes) -> tuple[float, float, set[str]]:
    """(first layer-wise forward-hook line, first line after it that trains or removes a hook handle, the hooked
    models' names) among NODES: the hooked model run between the two lines runs with the hooks collecting."""
    calls = [n for n in nodes if isinstance(n, ast.Call)]
    hooks = _layer_hooks(nodes)
    start = min((line for line, _model in hooks), default=float("inf"))
    end = min((n.lineno for n in calls if n.lineno > start and (last_name(n.func) in _TRAINING or (
        last_name(n.func) == "remove" and not n.args))), default=float("inf"))
    return start, end, {model for _line, model in hooks if model}


def _layer_hooks(nodes) -> list[tuple[int, str | None]]:
    """(line, the model's name) of forward hooks registered layer by layer: on the target of a loop or
    comprehension over a model's modules (`for name, m in model.named_modules(): m.register_forward_hook(...)`,
    `for b in model.blocks: b.mlp.register_forward_hook(...)`), what a calibration does; one hook on one module
    (capturing a hidden state to score with) is not this."""
    lines = []
    for node in nodes:
        if isinstance(node, (ast.For, ast.AsyncFor)):
            loops = [(node.target, node.iter, node.body)]
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            loops = [(g.target, g.iter, [node]) for g in node.generators]
        else:
            continue
        for target, modules, body in loops:
            bound = {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
            for stmt in body:
                for call in ast.walk(stmt):
                    if isinstance(call, ast.Call) and last_name(call.func) in _HOOKS \
                            and isinstance(call.func, ast.Attribute) and _root_name(call.func.value) in bound:
                        lines.append((call.lineno, _root_name(modules)))
    return lines


def _root_name(expr: ast.AST) -> str | None:
    while isinstance(expr, (ast.Attribute, ast.Subscript, ast.Call)):
        expr = expr.func if isinstance(expr, ast.Call) else expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def _gram_update(node: ast.AST) -> bool:
    """`H += x.T @ x`, `H = H + x.t() @ x`, `H.add_(x.T @ x)`, `torch.matmul(x.T, x)` accumulated: X'X of one X."""
    if isinstance(node, ast.AugAssign):
        value = node.value
    elif isinstance(node, ast.Call) and last_name(node.func) in ("add_", "addmm_", "add"):
        value = node
    elif isinstance(node, ast.Assign) and isinstance(node.value, ast.BinOp) and isinstance(node.value.op, ast.Add):
        value = node.value
    else:
        return False
    return any(_is_gram(n) for n in ast.walk(value))


def _transposed(expr: ast.AST) -> ast.AST | None:
    """X for `X.T`, `X.t()`, `X.transpose(...)`, `X.mT`."""
    if isinstance(expr, ast.Attribute) and expr.attr in ("T", "mT"):
        return expr.value
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr in ("t", "transpose"):
        return expr.func.value
    return None


def _is_gram(node: ast.AST) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
        left, right = node.left, node.right
    elif isinstance(node, ast.Call) and last_name(node.func) in ("matmul", "mm") and len(node.args) == 2:
        left, right = node.args
    else:
        return False
    inner = _transposed(left)
    return inner is not None and ast.dump(inner) == ast.dump(right)
