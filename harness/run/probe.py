"""Runtime legality probes: run the submission's own evaluation at a tiny configuration and watch what it does.

`python cli.py probe PATH` writes a small synthetic dataset in the challenge's shard format (random text tokens in
BOS-opened documents, so any row of targets or inputs can be located uniquely in the validation or training stream),
sets the script's own environment knobs to a tiny CPU configuration, and runs the script under harness/run/inject/ (one
sandboxed process that forks one child per variant). The children record every cross-entropy call, every gradient
and optimizer step, data file opens, calibration forwards and printed lines on one clock. From those traces:

* C1 causality: a second run with the validation tokens perturbed from position t on; the scores of positions before
  t (and the log-partition at t) must not change. A replica run first proves the script is deterministic.
* C3/C4 score before update: no position's scored NLL may come after an update that used it as a target; the pass
  whose mean matches the printed final val_loss is the one judged. When no no-grad pass matches, candidates built
  from grad-enabled forwards too (the k-th observation of each position) are tried: an evaluator that scores from the
  forward it trains on (PR #77) is judged by its first observations, one that scores a later sweep by its k-th.
* C2 normalization: when the printed score equals the mean of the observed -log softmax, it is normalized by
  construction; otherwise the last target is set to every vocabulary entry in turn and the implied probabilities,
  anchored by a run one token shorter, must sum to 1 (the PR #886 measurement).
* Data access: validation files opened during training, training shards opened (or trained on) during evaluation,
  calibration forwards on validation inputs.

Every result is a finding with source="runtime"; what could not run is said in report.facts["probes"] and
report.not_checked, and a script that cannot run at tiny scale is "could not probe" (exit 2), never a pass.

CPU compatibility (ProbeOptions.cpu_compat, on by default): the records assume one H100 per process (a "CUDA is
required" check, `.cuda()`, NCCL, FlashAttention 3). The child then runs under harness/run/inject/cpu_compat.py, which
answers the script's CUDA checks while every tensor stays on the CPU and serves FlashAttention stand-ins when the real
modules are missing. The stand-ins the run reached are listed in every facts["probes"] entry (`cpu_compat`) and in
the data of every finding, since such evidence comes from a CPU re-enactment of the GPU run. A script whose syntax
this interpreter cannot parse runs under a newer Python found on the machine that has torch, else it is could not
probe with that reason.

This module holds the probe session (Probe) and its entry point (probe_path); the synthetic dataset lives in
probe_data.py, reading a trace in probe_trace.py, running the script in probe_workspace.py and the judgements of the
traces in probe_judge.py.
"""

from __future__ import annotations

import bisect
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import UserError
from harness.run.probe_data import KEY, VAL_TOKENS, VOCAB, Dataset, StreamIndex, build_dataset, perturb_text
from harness.run.probe_judge import (
    C3_MESSAGES,
    TOL,
    Phases,
    c1_changes,
    classify,
    contamination,
    phases_of,
    reported_pass,
)
from harness.run.probe_trace import Pass, Trace, read_trace
from harness.run.probe_workspace import (
    Workspace,
    copy_script_folder,
    crash_reason,
    interpreter_problem,
    run_plan,
    variant,
)
from harness.submission.folder import load_submission
from harness.verdict import Report
from rules.finding import Evidence, Finding

# Probe name -> the rulebook IDs it can judge (used by the rules listing).
PROBE_RULES: dict[str, tuple[str, ...]] = {
    "c1_causality": ("TTT-PREEVAL-VAL", "TTT-MULTIPASS-SCORE", "RESCORE-S1", "SLOT-SCORED-TARGETS",
                     "NGRAM-GATE-ON-TARGET"),
    "c3_score_before_update": ("TTT-PREEVAL-VAL", "TTT-MULTIPASS-SCORE", "RESCORE-S1", "SLOT-SCORED-TARGETS"),
    "c2_normalization": ("NGRAM-TARGET-IN-KEY", "BYTE-MIXTURE-C2"),
    "data_access": ("TRAIN-ON-VAL", "TRAIN-DATA-AT-EVAL", "GPTQ-CALIB-VAL"),
}

Z_TOL = 0.02  # |sum of implied probabilities - 1| allowed in the C2 counterfactual
C2_TOKENS = 8193  # the C2 runs score a prefix of this many tokens (8,192 targets: a TTT chunk of the tiny config)


@dataclass
class ProbeOptions:
    data_path: Path | None = None  # only its tokenizer is used (the token streams are always synthetic)
    timeout: float = 300.0
    val_tokens: int = VAL_TOKENS  # length of the synthetic validation stream (tests use a shorter one)
    cpu_compat: bool = True  # run under harness/run/inject/cpu_compat.py: CUDA-assuming scripts run on the CPU


# -----------------------------------------------------------------------------
# The probe session

class Probe:
    """One probe session over one script: runs the variants and turns the traces into findings."""

    def __init__(self, ws: Workspace, ds: Dataset, report: Report, timeout: float) -> None:
        self.ws, self.ds, self.report = ws, ds, report
        self.deadline = time.monotonic() + timeout
        self.val_index, self.train_index = StreamIndex(ds.val), StreamIndex(ds.train)
        self.probes: dict[str, dict] = {}
        self.report.facts["probes"] = self.probes
        self.compat: list[str] = []  # stand-ins of the CPU compatibility layer that the base run reached

    def _left(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def _traces(self, variants: list[dict], results: dict, streams: dict[str, np.ndarray]) -> dict[str, Trace]:
        out = {}
        for v in variants:
            if v["name"] not in results:
                continue
            index = self.val_index if streams.get(v["name"]) is None else StreamIndex(streams[v["name"]])
            out[v["name"]] = read_trace(Path(v["trace"]), Path(v["log"]), results[v["name"]]["exit"], index,
                                        self.train_index)
        return out

    def finding(self, rule: str, message: str, data: dict, severity: str = "error",
                evidence: tuple[Evidence, ...] = ()) -> None:
        if self.compat:  # runtime evidence, but from a run on the CPU with CUDA stand-ins: the finding says so
            data = dict(data, cpu_compat=list(self.compat))
        self.report.add(Finding(rule, severity, message, file=self.ws.display, evidence=evidence, data=data,
                                source="runtime"))

    def run(self) -> None:
        try:
            self._run()
        finally:
            for entry in self.probes.values():  # every probe says whether it saw a run under the layer
                entry["cpu_compat"] = {"enabled": self.ws.cpu_compat, "used": list(self.compat)}
            if "probe_run" in self.report.facts:
                self.report.facts["probe_run"]["cpu_compat"] = {"enabled": self.ws.cpu_compat,
                                                                "used": list(self.compat)}

    def _run(self) -> None:
        why = interpreter_problem(self.ws)
        if why is not None:
            self.could_not_probe(why)
            return
        n = len(self.ds.val)
        t = n - n // 4 + 3  # inside the last quarter, off any power-of-two row boundary
        perturbed = perturb_text(self.ds.val, t)
        work = self.ws.root
        variants = [variant(self.ds, work, "base", self.ds.val), variant(self.ds, work, "replica", self.ds.val),
                    variant(self.ds, work, "c1", perturbed)]
        variants[0]["stop_on_failure"] = True
        results, stopped = run_plan(self.ws, variants, self._left(), "main")
        traces = self._traces(variants, results, {"c1": perturbed})
        base = traces.get("base")
        if base is not None:
            self.compat = base.compat
        if base is None or base.exit_code != 0:
            reason = stopped or crash_reason(base.log_lines if base else [], base.exit_code if base else None)
            layer = " (CPU compatibility layer on)" if self.ws.cpu_compat else ""
            self.could_not_probe(f"the script does not run at probe scale on CPU{layer}: {reason}")
            return
        self.report.facts["probe_run"] = {
            "seconds": {k: v["seconds"] for k, v in results.items()}, "val_targets": n - 1, "perturb_from": t,
            "vocab": VOCAB, "passes": [{"pass": p.index, "positions": len(p.first), "mean_nll": round(p.mean_nll, 6)}
                                       for p in base.passes],
            "reported_val_loss": base.reported_loss, "updates_on_val": sum(1 for u in base.updates
                                                                          if len(u.val_positions)),
            "notes": base.notes[:5]}
        phases = phases_of(base)
        self.data_access(base, phases)
        reported = reported_pass(base)
        if not base.passes and reported is None:
            self.could_not_probe("no validation scoring was observed (the score does not go through "
                                 "torch.nn.functional.cross_entropy on validation targets, or comes from a forward "
                                 "that also trains in a way no observation order explains)")
            return
        judged = [reported] if reported is not None else base.passes
        self.report.facts["probe_run"]["reported_pass"] = None if reported is None else reported.index
        if reported is not None and reported.one_forward:
            self.report.facts["probe_run"]["reported_pass_one_forward"] = {
                "from_tick": reported.start_tick, "positions": len(reported.first),
                "what": "the printed score is the mean of observations that include grad-enabled forwards "
                        "(an evaluator that scores and trains from the same forward)"}
        c1 = self.causality(base, traces, judged, t)
        c3_rules = self.score_before_update(base, judged, phases, c1)
        if c1 and not c3_rules:
            self.unexplained_c1(base, c1)
        self.normalization(base, reported)

    def could_not_probe(self, reason: str) -> None:
        self.report.could_not_check.append(reason)
        for name, rules in PROBE_RULES.items():
            self.probes.setdefault(name, {"ran": False, "reason": reason})
            for rule in rules:
                self.report.skip(rule, f"runtime probe did not run: {reason}")

    # --- data access -----------------------------------------------------------------------------------------
    def data_access(self, trace: Trace, ph: Phases) -> None:
        val_opens = [name for tick, name in trace.opens if name.startswith("fineweb_val")
                     and ph.train_start is not None and ph.train_start < tick < (ph.train_end or 0)]
        train_opens = [name for tick, name in trace.opens if name.startswith("fineweb_train")
                       and ph.eval_start is not None and tick > ph.eval_start]
        eval_train_updates = sum(u.train_rows for u in trace.updates
                                 if ph.eval_start is not None and u.tick > ph.eval_start)
        self.probes["data_access"] = {
            "ran": True, "training_phase_known": ph.train_start is not None, "val_opens_during_training":
                len(val_opens), "train_opens_during_eval": len(train_opens),
            "train_targets_used_during_eval": eval_train_updates, "calibration_inputs_from_val": trace.calib_val_rows}
        if val_opens:
            self.finding("TRAIN-ON-VAL", f"a validation file was opened {len(val_opens)} time(s) while training "
                         f"steps were still running ({val_opens[0]})", {"opens": len(val_opens)})
        if train_opens or eval_train_updates:
            what = (f"training shards were opened {len(train_opens)} time(s)" if train_opens else
                    f"{eval_train_updates} training-stream targets were trained on")
            self.finding("TRAIN-DATA-AT-EVAL", f"{what} after the evaluation had started",
                         {"opens": len(train_opens), "train_targets": eval_train_updates})
        if trace.calib_val_rows:
            self.finding("GPTQ-CALIB-VAL", f"{trace.calib_val_rows} validation tokens went through hooked forward "
                         "passes that fed no loss (calibration statistics collected on validation data)",
                         {"tokens": trace.calib_val_rows})
        if ph.train_start is None:
            self.report.skip("TRAIN-ON-VAL", "runtime probe: no training step on the training stream was seen, "
                                              "so there was no training phase to watch")
            self.report.mark_checked("TRAIN-DATA-AT-EVAL", "GPTQ-CALIB-VAL")
        else:
            self.report.mark_checked("TRAIN-ON-VAL", "TRAIN-DATA-AT-EVAL", "GPTQ-CALIB-VAL")

    # --- C3/C4 -------------------------------------------------------------------------------------------------
    def score_before_update(self, trace: Trace, judged: list[Pass], ph: Phases, c1: dict | None) -> set[str]:
        by_rule: dict[str, list[tuple[Pass, int]]] = {}
        call_ticks = sorted(t for t, *_ in trace.observed)
        for p in judged:
            for pos, u in contamination(p, trace.updates):
                rule = classify(p, u, trace, ph)
                if p.one_forward and rule == "TTT-PREEVAL-VAL" and pos in p.earlier:
                    # scored from a later sweep: other validation calls ran between the position's previous
                    # observation and its score (an epoch loop around the chunks), not a re-run of the same chunk
                    lo, hi = p.earlier[pos], p.first[pos][2]
                    if bisect.bisect_left(call_ticks, hi) - bisect.bisect_right(call_ticks, lo) > 0:
                        rule = "TTT-MULTIPASS-SCORE"
                by_rule.setdefault(rule, []).append((p, pos))
        self.probes["c3_score_before_update"] = {
            "ran": True, "passes_judged": [p.index for p in judged],
            "scored_after_update": {rule: len(v) for rule, v in by_rule.items()}}
        for rule, hits in by_rule.items():
            passes = sorted({p.index for p, _ in hits})
            first = min(h[1] for h in hits)
            message = (f"{C3_MESSAGES[rule]}: {len(hits)} scored position(s) in pass {passes} were scored after an "
                       f"update that used them (first at position {first})")
            data = {"positions": len(hits), "passes": passes, "first_position": first}
            if c1:
                message += f"; C1 confirms it: {c1['what']}"
                data["c1"] = c1["data"]
            self.finding(rule, message, data)
        self.report.mark_checked(*PROBE_RULES["c3_score_before_update"])
        return set(by_rule)

    # --- C1 ----------------------------------------------------------------------------------------------------
    def causality(self, base: Trace, traces: dict[str, Trace], judged: list[Pass], t: int) -> dict | None:
        """Run the C1 comparison; returns {"what", "data"} when the judged passes changed, else None."""
        replica, c1 = traces.get("replica"), traces.get("c1")
        reason = None
        if replica is None or c1 is None or replica.exit_code != 0 or c1.exit_code != 0:
            reason = "the perturbed or replica run did not finish"
        elif len(replica.passes) != len(base.passes) or any(
                c["nll_changed"] or c["lse_changed"] for c in c1_changes(base, replica, len(self.ds.val))):
            reason = "two identical runs scored differently (the script is not deterministic on CPU)"
        if reason is not None:
            self.probes["c1_causality"] = {"ran": False, "reason": reason}
            for rule in PROBE_RULES["c1_causality"]:
                self.report.skip(rule, f"runtime C1 probe: {reason}")
            return None
        changes = c1_changes(base, c1, t)
        judged_ids = {p.index for p in judged}
        bad = [c for c in changes if c["pass"] in judged_ids and (c["nll_changed"] or c["lse_changed"])]
        self.probes["c1_causality"] = {"ran": True, "perturbed_from": t, "passes": changes,
                                       "reported_val_loss": [base.reported_loss, c1.reported_loss]}
        self.report.mark_checked(*PROBE_RULES["c1_causality"])
        if not bad:
            return None
        nll, lse = sum(c["nll_changed"] for c in bad), sum(c["lse_changed"] for c in bad)
        compared = sum(c["compared"] for c in bad)
        what = (f"changing validation tokens from position {t} on changed the scores of {nll} of {compared} "
                f"positions before {t}" + (f" and the predicted distribution at {lse} positions" if lse else ""))
        return {"what": what, "data": {"perturbed_from": t, "nll_changed": nll, "lse_changed": lse,
                                       "compared": compared, "passes": [c["pass"] for c in bad]}}

    def unexplained_c1(self, base: Trace, c1: dict) -> None:
        """A C1 change that no update-before-score explains: the prediction reads tokens it may not see."""
        rule = ("SLOT-SCORED-TARGETS" if any(u.free for u in base.updates) else
                "TTT-PREEVAL-VAL" if any(len(u.val_positions) for u in base.updates) else "NGRAM-GATE-ON-TARGET")
        self.finding(rule, f"C1 violation: {c1['what']} (the prediction depends on tokens at or after the one "
                     "scored)", c1["data"])

    # --- C2 ----------------------------------------------------------------------------------------------------
    def normalization(self, base: Trace, reported: Pass | None) -> None:
        rules = PROBE_RULES["c2_normalization"]
        if reported is not None:
            self.probes["c2_normalization"] = {
                "ran": True, "method": "the printed val_loss equals the mean -log softmax of the observed logits "
                                      f"(pass {reported.index}), a normalized distribution by construction"}
            self.report.mark_checked(*rules)
            return
        why = None
        if base.reported_loss is None:
            why = "the script printed no val_loss line"
        elif base.reported_decimals < 6:
            why = f"the printed val_loss has {base.reported_decimals} decimals; the counterfactual sum needs 6"
        if why is None:
            why = self._counterfactual_sum(base)
        if why is not None:
            self.probes["c2_normalization"] = {"ran": False, "reason": why}
            for rule in rules:
                self.report.skip(rule, f"runtime C2 probe: {why}")

    def _counterfactual_sum(self, base: Trace) -> str | None:
        """Set the last target to every token; with a run one token shorter as the anchor, the implied
        probabilities of the last position must sum to 1. Returns why it could not be measured, else None."""
        # A prefix of the validation stream keeps the 32 runs short (an n-gram cache evaluates in Python) and the
        # printed-loss rounding small (8 decimals times the targets); the base run is redone on the same prefix.
        val = self.ds.val[:C2_TOKENS] if len(self.ds.val) > C2_TOKENS else self.ds.val
        last = len(val) - 1
        streams = {"c2_base": val, "c2_anchor": val[:-1]}
        for v in range(VOCAB):
            if v != val[-1]:
                s = val.copy()
                s[-1] = v
                streams[f"c2_v{v}"] = s
        variants = [variant(self.ds, self.ws.root, name, s) for name, s in streams.items()]
        results, stopped = run_plan(self.ws, variants, self._left(), "c2")
        traces = self._traces(variants, results, {k: v for k, v in streams.items() if k in ("c2_base", "c2_anchor")})
        base = traces.get("c2_base", base)
        if stopped or any(tr.exit_code != 0 or tr.reported_loss is None for tr in traces.values()) \
                or len(traces) != VOCAB + 1:
            return stopped or "a counterfactual run failed or printed no val_loss"
        anchor = traces["c2_anchor"]
        if not anchor.passes or not base.passes:
            return "no scoring pass observed to count the scored tokens"
        a, b = anchor.passes[-1], base.passes[-1]
        drift = [p for p in a.first if p in b.first and abs(a.first[p][0] - b.first[p][0]) > TOL]
        if drift or len(b.first) != len(a.first) + 1 or last not in b.first:
            return "the evaluation is not prefix-stable (dropping the last token changed other scores)"
        n_a, n_b = len(a.first), len(b.first)
        anchor_total = anchor.reported_loss * n_a
        implied = {name: math.exp(-(tr.reported_loss * n_b - anchor_total)) for name, tr in traces.items()
                   if name != "c2_anchor"}  # c2_base is the true last token, c2_v* every other one
        z = sum(implied.values())
        self.probes["c2_normalization"] = {"ran": True, "method": "counterfactual sum over the last target",
                                           "implied_mass": round(z, 6)}
        self.report.mark_checked(*PROBE_RULES["c2_normalization"])
        if abs(z - 1) > Z_TOL:
            self.finding("NGRAM-TARGET-IN-KEY", f"C2 violation: the probabilities the scoring path implies for the "
                         f"last validation position sum to {z:.4f} over the {VOCAB}-token vocabulary, not 1",
                         {"implied_mass": z, "vocab": VOCAB, "position": last})
        return None


# -----------------------------------------------------------------------------
# Entry point

def probe_path(path: Path, options: ProbeOptions) -> Report:
    """Probe the submission at PATH (a folder with train_gpt.py, or one .py script); never raises on bad scripts."""
    sub = load_submission(Path(path))
    report = Report(target=str(path))
    if sub.script is None:
        report.could_not_check.append("no train_gpt.py to run")
        return report
    if options.timeout <= 0:
        raise UserError("--timeout must be positive")
    tmp = Path(tempfile.mkdtemp(prefix="pgolf-probe-"))
    try:
        script, sys_path = copy_script_folder(sub.script.resolve(), tmp / "src")
        ws = Workspace(tmp, script, sys_path, sub.script.relative_to(sub.root).as_posix(), options.cpu_compat)
        if options.val_tokens < 4 * KEY * 32:
            raise UserError("the probe's validation stream must hold at least 1,024 tokens")
        ds = build_dataset(tmp / "data", options.data_path, options.val_tokens)
        Probe(ws, ds, report, options.timeout).run()
    except OSError as exc:
        report.could_not_check.append(f"probe could not set up its work folder: {exc}")
    finally:
        if not os.environ.get("PGOLF_PROBE_KEEP"):  # debugging aid: keep the work folder
            shutil.rmtree(tmp, ignore_errors=True)
    return report
