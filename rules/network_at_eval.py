"""NETWORK-AT-EVAL: downloads, network calls or package installs in the submitted run."""

from __future__ import annotations

import ast

from rules.analysis.dataflow import last_name, script_facts
from rules.analysis.phases import phases
from rules.base import Invalid, Rule, Valid

_NET_MODULES = {"requests", "urllib", "urllib3", "http", "socket", "huggingface_hub", "aiohttp", "httpx", "ftplib",
                "paramiko", "wget", "datasets", "kagglehub"}
_NET_CALLS = {"hf_hub_download", "snapshot_download", "urlopen", "urlretrieve", "create_connection", "load_dataset"}
_NET_METHODS = {("requests", "get"), ("requests", "post"), ("requests", "request"), ("socket", "socket"),
                ("httpx", "get"), ("urllib3", "PoolManager")}
_NET_COMMANDS = ("pip", "curl", "wget", "git", "huggingface-cli", "gsutil", "aws")
_SHELL_CALLS = {"run", "call", "check_call", "check_output", "Popen", "system", "popen"}


class NetworkAtEval(Rule):
    """Flags network use in the run: HTTP/socket/hub calls and ``pip``/``curl``/``wget``/``git`` subprocesses.

    Why: README FAQ: no external downloads, network calls or external services during evaluation. An error when
    the call runs after the training loop (the evaluation phase); a warning when it runs before training or is
    only imported.

    Instead: download data and install packages before the run (data-preparation scripts are allowed); at eval time
    read only local files and the artifact. Compiling a shipped ``.cpp`` with ``g++`` or calling a preinstalled
    binary such as ``lrzip`` is accepted.
    """

    ID = "NETWORK-AT-EVAL"
    CODE = "PG110"
    MESSAGE = "network access or package installation in the submitted run"
    VALID = [
        Valid(
            "import subprocess\n"
            "def compress(inp, out):\n"
            "    subprocess.run(['lrzip', '-z', '-o', out, inp], check=True)\n"
            "def build(src):\n"
            "    subprocess.run(['g++', '-O3', '-shared', src, '-o', 'lib.so'], check=True)\n"
            "    subprocess.run(['nvidia-smi'], capture_output=True)\n",
            name="preinstalled binaries and compiling a shipped .cpp",
        ),
        Valid("import os\nfiles = os.listdir('data')\n", name="local files only"),
    ]
    INVALID = [
        Invalid(
            "def main(model, opt, loader):\n"
            "    for step in range(10):\n"
            "        model(loader.next_batch()).backward()\n"
            "        opt.step()\n"
            "    path = hf_hub_download(repo_id='x/y', filename='table.bin')\n"
            "    return eval_val(model, path)\n",
            expected_line=5,
            expected_severity="error",
            name="download after training (eval phase)",
        ),
        Invalid(
            "import subprocess, sys\n"
            "try:\n"
            "    import brotli\n"
            "except ImportError:\n"
            "    subprocess.check_call([sys.executable, '-m', 'pip', 'install', 'brotli'])\n",
            expected_line=5,
            expected_severity="warning",
            name="pip install at start-up",
        ),
        Invalid("import requests\n", expected_line=1, expected_severity="warning", name="import alone"),
    ]

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._import(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            self._import(node, node.module)

    def _import(self, node: ast.AST, module: str) -> None:
        if module.split(".")[0] in _NET_MODULES:
            self.report(node, f"imports network module `{module}`", severity="warning",
                        evidence=[(node.lineno, f"import {module}")])

    def finish(self) -> None:
        facts = script_facts(self.context.tree, self.facts)
        phase = None
        for info in facts.graph.functions:
            for node in info.nodes:
                if not isinstance(node, ast.Call):
                    continue
                what = _network_call(node)
                if what is None:
                    continue
                phase = phase or phases(facts)
                in_eval = phase.is_post_training(node, facts)
                where = "after the training loop (evaluation phase)" if in_eval else "outside the evaluation phase"
                self.report(
                    node,
                    f"{what} {where}",
                    severity="error" if in_eval else "warning",
                    evidence=[(node.lineno, what)],
                )


def _network_call(call: ast.Call) -> str | None:
    """A description of the network use CALL makes, or None."""
    name = last_name(call.func)
    if name in _NET_CALLS:
        return f"network call `{name}`"
    if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name):
        if (call.func.value.id, call.func.attr) in _NET_METHODS:
            return f"network call `{call.func.value.id}.{call.func.attr}`"
    if name in _SHELL_CALLS and call.args:
        words = _command_words(call.args[0])
        for index, word in enumerate(words):
            base = word.rsplit("/", 1)[-1]
            if base in _NET_COMMANDS and not (base == "git" and _local_git(words[index + 1 :])):
                return f"subprocess runs `{' '.join(words[index:index + 3])}`"
    return None


def _command_words(arg: ast.AST) -> list[str]:
    if isinstance(arg, (ast.List, ast.Tuple)):
        return [e.value for e in arg.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value.split()
    return []


def _local_git(rest: list[str]) -> bool:
    """``git rev-parse``/``git log``/``git diff`` read the local repository only."""
    return bool(rest) and rest[0] in {"rev-parse", "log", "diff", "status", "show", "describe"}
