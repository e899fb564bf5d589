"""The rulebook's rule IDs as data: one entry per ID of ../shared/docs/rulebook.md.

Everything that reports a finding names one of these IDs. The entries carry what the rulebook says about each
rule (family, strength of the ruling, default severity, one-line summary, the ruling it rests on) so that the CLI,
the reports and the docs read the same facts. Logic lives elsewhere; this module is pure data and imports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleSpec:
    id: str
    family: str  # A causality/scoring, B data access, C budgets, D metric, E statistics/provenance/format
    strength: str  # how strong the ruling behind it is, as the rulebook labels it
    severity: str  # default severity: "error" or "warning"
    summary: str
    source: str  # the ruling or text it rests on


_SPECS = [
    RuleSpec("TTT-PREEVAL-VAL", "A", "README + maintainer", "error",
             "No gradient update on validation tokens before those tokens are scored (pre-quant TTT).",
             "README FAQ; issues #402, #677; cocohearts on #1972"),
    RuleSpec("TTT-MULTIPASS-SCORE", "A", "maintainer", "error",
             "No multi-epoch TTT over the validation stream that reports a later epoch's score.",
             "valerio-oai on PR #568; #677 clarification"),
    RuleSpec("RESCORE-S1", "A", "maintainer (bulk closure)", "error",
             "Report the first-pass score only; no re-score after adaptation or after filling a cache.",
             "PR #991 closure; 2026-03-27 wave on #677"),
    RuleSpec("TEMP-CALIB-ON-VAL", "A", "maintainer, indirect", "error",
             "No temperature or calibration chosen on, or applied after, validation scores.",
             "#991 closure; #1004"),
    RuleSpec("SLOT-SCORED-TARGETS", "A", "community only", "warning",
             "No per-batch optimisation against the very targets that are then scored (SLOT).",
             "PR #1240 flip-target proof; issue #1336"),
    RuleSpec("NGRAM-TARGET-IN-KEY", "A", "maintainer", "error",
             "Eval-time caches must give a normalized distribution; no target token in the lookup key.",
             "valerio-oai on PR #779 and #982 (2026-03-27)"),
    RuleSpec("NGRAM-GATE-ON-TARGET", "A", "community + indirect maintainer", "warning",
             "Whether an eval-time expert fires may not depend on the token being predicted.",
             "PR #1420, #1514 README, #2118 thread"),
    RuleSpec("BYTE-MIXTURE-C2", "A", "maintainer (exclusion)", "error",
             "Scoring must be a distribution over the official token alphabet, not a per-byte mixture.",
             "issue #1872; cocohearts PR #1902"),
    RuleSpec("EVAL-SUBSET", "A", "README", "warning",
             "The score must cover the whole validation split, not a prefix or subset.",
             "README: always the full fineweb_val_* split"),
    RuleSpec("BOS-LEAK", "A", "maintainer (audit)", "warning",
             "Token-mixing must not carry information across document boundaries in packed streams.",
             "cocohearts audit on PR #1797"),
    RuleSpec("TTT-WARMUP-ON-VAL", "A", "community dispute, tolerated", "warning",
             "Compile warm-ups should not train on validation tokens, and must not leave surviving state.",
             "PR #1530 thread; #1899/#1900"),
    RuleSpec("VAL-SELECTION", "A", "community only", "warning",
             "No choosing between candidates (EMA/SWA/temperatures) by their validation score.",
             "AGORA checklist; #991"),
    RuleSpec("TRAIN-ON-VAL", "B", "README + maintainer", "error",
             "Training may not read validation data.",
             "README FAQ; PR #44 closed"),
    RuleSpec("TRAIN-VAL-OVERLAP", "B", "maintainer", "error",
             "Re-tokenized training data must exclude the 50,000 validation documents.",
             "issue #2127; cocohearts PR #2146"),
    RuleSpec("PAID-PREFIX", "B", "README", "error",
             "Validation tokens may not be stored in, or compressed into, the artifact.",
             "README FAQ; PRs #262, #275"),
    RuleSpec("GPTQ-CALIB-VAL", "B", "maintainer, indirect", "error",
             "Quantization calibration (Hessians, scales) may not use validation data.",
             "#728 re-created as #1019 at valerio-oai's request"),
    RuleSpec("TRAIN-DATA-AT-EVAL", "B", "README + maintainer", "error",
             "Training shards may not be read outside the 600 s training budget unless paid for.",
             "README FAQ; #593, #945"),
    RuleSpec("NETWORK-AT-EVAL", "B", "README", "error",
             "No downloads, network or external services during evaluation.",
             "README FAQ"),
    RuleSpec("ARTIFACT-CAP-16MB", "C", "README + maintainer", "error",
             "Code bytes + compressed model bytes <= 16,000,000 (decimal) for every seed.",
             "README FAQ; regina-openai on #1809 and #1835"),
    RuleSpec("CODE-COUNTING", "C", "README + tolerated practice", "warning",
             "All code that runs must be counted; it should live in train_gpt.py.",
             "README; #1412, #1514 anomalies"),
    RuleSpec("TRAIN-TIME-600", "C", "README + maintainer practice", "error",
             "Training loop plus any training-data access <= 600 s.",
             "README; #1868 compliance rerun; #1908 -> #1956"),
    RuleSpec("EVAL-TIME-600", "C", "README + maintainer", "error",
             "The scored evaluation, including every validation-dependent precompute, <= 600 s per seed.",
             "README FAQ; cocohearts on #1972"),
    RuleSpec("HARDWARE", "C", "README", "error",
             "Record numbers must come from 8xH100 SXM.",
             "README; #44, #703"),
    RuleSpec("BPB-BYTE-LUT", "D", "maintainer (record removed)", "error",
             "The byte denominator must equal the bytes of the validation text (about 151.07 M).",
             "#1017 section V; issues #897, #1719; Scylla record removed"),
    RuleSpec("TOKENIZER-CHANGE-PROOF", "D", "README + maintainer practice", "error",
             "Custom tokenizers and text transforms must be lossless and charged on raw bytes.",
             "README; CaseOps merges; #2138 errata"),
    RuleSpec("FULL-VAL-TOKEN-COUNT", "D", "README", "error",
             "The scored token count must match the canonical validation split.",
             "README: always the full split"),
    RuleSpec("SIGNIFICANCE", "E", "README vs practice", "warning",
             "A record must beat the reference by the margin at the policy's p-value.",
             "README (0.005 nats, p < 0.01); cocohearts PR #1902 (Welch p < 0.25)"),
    RuleSpec("SEED-BRUTEFORCE", "E", "README", "warning",
             "No cherry-picking by brute-forcing seeds.",
             "README FAQ"),
    RuleSpec("LOG-CODE-CONSISTENCY", "E", "README", "error",
             "The shipped code must be the code that produced the logs.",
             "README; #945"),
    RuleSpec("SUBMISSION-FORMAT", "E", "README + maintainer review", "error",
             "One dated folder with README.md, submission.json, logs and a runnable train_gpt.py.",
             "README; cocohearts on #1529"),
]

RULES: dict[str, RuleSpec] = {spec.id: spec for spec in _SPECS}


def spec(rule_id: str) -> RuleSpec:
    """Return the catalogue entry for a rulebook ID; a KeyError names an ID that is not in the rulebook."""
    return RULES[rule_id]
