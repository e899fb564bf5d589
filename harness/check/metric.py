"""Metric sanity from the logs: the implied byte denominator, the scored token count, train/val overlap marks.

bpb = (val_loss / ln 2) * tokens / bytes, so every log with val_loss, val_bpb and val_tokens implies the number of
bytes it divided by. On the FineWeb validation split that number is about 151.07-151.08 M for every correct merged
run whatever the tokenizer (measured by bench/claims_records.py on main: 151,024,099-151,080,556, the low end from
truncation to a 32,768-token sequence). A different denominator means a wrong byte table (BPB-BYTE-LUT) or an
unproven tokenizer change (TOKENIZER-CHANGE-PROOF).

Logs of our own reference trainer on a small local dataset print `dataset:<name> fineweb:0`: they cannot be compared
with the canonical counts, so those rules are marked not checked and one warning says the score is not comparable
(an info on a non-record track, where other data is allowed).
"""

from __future__ import annotations

import math
import re

from harness.challenge import (
    BEST_MERGED_BPB,
    CANONICAL_VAL_BYTES,
    CANONICAL_VAL_TOKENS,
    EXPORT_VAL_BYTES,
    IMPLAUSIBLE_BPB,
    STOCK_DATASET_DIRS,
    STOCK_TOKENIZER_FILES,
)
from harness.submission.logs import LogRun
from harness.submission.manifest import claimed_track, is_off_record
from harness.verdict import Report
from rules.finding import Finding

BAND_REL = 0.0005  # measured spread of correct runs: -0.035 % (long-sequence truncation) to +0.003 %
ERROR_REL = 0.005  # beyond 0.5 % the denominator is wrong, not truncated (Scylla +4.1 %, double-counted space +17 %)
DEFAULT_TRUNCATION = 65_536  # allowed shortfall when the sequence length is unknown
SUBSET_FRACTION = 0.5  # with the tokenizer unknown, a count under half of every split's is a subset whatever ran
TRUNCATION_REL = 0.0002  # a shortfall this small is a multiple-of-batch truncation, not a subset (4,096 of 62 M seen)
MAX_RANKS = 64  # a score line may print one rank's token count; fewer than the smallest split over this many is a subset
SMALLEST_SPLIT = min(c for counts in CANONICAL_VAL_TOKENS.values() for c in counts)
LEAKY_TRAIN_SHARDS = 1499  # local CaseOps preparation with --val-docs=10000 (issue #2127)


def tokenizer_family(run: LogRun) -> str | None:
    """The challenge's published tokenization the run reads (sp1024 / sp4096 / sp8192 / sp8192_caseops /
    byte260), from the dataset directory it opens, else its tokenizer model file; None when it reads another one
    (a re-tokenized export such as fineweb10B_sp8192_<variant>, whose token counts are its own) or none is shown."""
    parts = [part.lower() for p in run.dataset_paths for part in re.split(r"[/\\]", p)]
    dirs = {part for part in parts if part.startswith("fineweb10b_")}
    if dirs:
        families = {STOCK_DATASET_DIRS.get(d) for d in dirs}
    else:
        families = {STOCK_TOKENIZER_FILES.get(re.split(r"[/\\]", run.tokenizer_path or "")[-1].lower())}
    if len(families) != 1 or None in families:
        return None
    family = families.pop()
    if family == "sp8192" and "caseops" in run.tags:
        family = "sp8192_caseops"
    return family


def implied_bytes(run: LogRun) -> float | None:
    f = run.final
    if f is None or not run.val_tokens or f.val_loss is None or not f.val_bpb or math.isnan(f.val_bpb):
        return None
    if math.isnan(f.val_loss) or f.val_bpb <= 0:
        return None
    return f.val_loss / math.log(2) * run.val_tokens / f.val_bpb


def _precision_rel(run: LogRun) -> float:
    """Relative error of the implied denominator from the printed precision of loss and bpb."""
    f = run.final

    def rel(text: str, value: float) -> float:
        places = len(text.split(".")[1]) if "." in text else 0
        return 0.5 * 10 ** -places / abs(value) if value else 0.0

    return rel(f.val_bpb_text, f.val_bpb) + rel(f.val_loss_text, f.val_loss)


def check_metric(logs: list[LogRun], claims, report: Report) -> None:
    """Denominator, token count and overlap fingerprints for every run log with a final score."""
    runs = [r for r in logs if r.is_run_log]
    local = [r for r in runs if r.dataset_is_fineweb is False]
    if local:
        reason = (f"the logs declare dataset {local[0].dataset_name!r}, not FineWeb: canonical counts do not apply")
        for rule in ("BPB-BYTE-LUT", "TOKENIZER-CHANGE-PROOF", "TRAIN-VAL-OVERLAP"):
            report.skip(rule, reason)
        track = claimed_track(claims)
        off_record = is_off_record(track)  # a non-record run on other data says so itself
        report.add(Finding("FULL-VAL-TOKEN-COUNT", "info" if off_record else "warning",
                           f"scored on dataset {local[0].dataset_name!r} (fineweb:0): the score is not comparable "
                           "to the leaderboard" + (f" (track {track})" if off_record else ""), file=local[0].path,
                           line=local[0].line_of.get("dataset"), source="log"))
        report.mark_checked("FULL-VAL-TOKEN-COUNT")
        return
    if not runs:
        for rule in ("BPB-BYTE-LUT", "FULL-VAL-TOKEN-COUNT", "TRAIN-VAL-OVERLAP", "TOKENIZER-CHANGE-PROOF"):
            report.skip(rule, "no run log")
        return
    _denominator(runs, report)
    _token_count(runs, report)
    _overlap(runs, report)
    _plausible(claims, report)


def _plausible(claims, report: Report) -> None:
    """A claimed FineWeb val_bpb far below every merged record cannot be vouched for by reading code: unless a rule
    explains it with an error, the check could not decide (the probe or `reproduce` can)."""
    claimed = getattr(claims, "val_bpb", None)
    if claimed is None or not 0 < claimed < IMPLAUSIBLE_BPB:
        return
    report.facts["implausible_claim"] = {"val_bpb": claimed, "best_merged": BEST_MERGED_BPB}
    report.could_not_check.append(
        f"metric: the claimed val_bpb {claimed:g} is {1 - claimed / BEST_MERGED_BPB:.0%} below the best merged record "
        f"({BEST_MERGED_BPB}): no legal submission has come near it, and reading the code cannot vouch for it; run "
        "the evaluation (`check --probe`, `reproduce`) to judge it")


_SCORED_TOKENS = re.compile(r"(?<![\w.])(?:scored_)?tokens\s*[:=]\s*([\d,]+)(?![\d.])")


def _scored_tokens(run: LogRun) -> int | None:
    """The token count the final score's own line (or its twin without `_exact`) prints, else None."""
    final = run.final
    base = final.tag.removesuffix("_exact")
    for m in [final, *(x for x in run.metrics if x.tag == base and x.line < final.line)]:
        found = _SCORED_TOKENS.search(m.text or "")
        if found:
            return int(found.group(1).replace(",", ""))
    return None


def _denominator(runs: list[LogRun], report: Report) -> None:
    table = []
    for run in runs:
        found = implied_bytes(run)
        if found is None:
            continue
        family = tokenizer_family(run)
        counted = _scored_tokens(run)
        if counted is not None and counted != run.val_tokens:
            # The score line counts the tokens it scored, and they are not the split's: the denominator would mix
            # a subset's loss with the whole split's count (a subset is FULL-VAL-TOKEN-COUNT's finding).
            table.append({"log": run.path, "implied_bytes": None, "off_pct": None,
                          "note": f"the score line counts {counted:,} tokens, not val_tokens {run.val_tokens:,}: "
                                  "bytes not compared"})
            continue
        if not _any_whole_split(run) and (family is not None or run.val_tokens < SUBSET_FRACTION * SMALLEST_SPLIT):
            # Scored on a part of the split (FULL-VAL-TOKEN-COUNT says so): its byte total is unknown, so the
            # implied denominator has nothing to be compared with. A re-tokenized export has its own token count,
            # but the text it cuts is the same: its denominator is compared.
            table.append({"log": run.path, "implied_bytes": round(found), "off_pct": None,
                          "note": f"val_tokens {run.val_tokens:,} is not a whole split: bytes not compared"})
            continue
        expected = EXPORT_VAL_BYTES.get(run.val_tokens, CANONICAL_VAL_BYTES)
        off = found / expected - 1
        slack = BAND_REL + _precision_rel(run)
        table.append({"log": run.path, "implied_bytes": round(found), "off_pct": round(off * 100, 4)})
        if abs(off) <= slack:
            continue
        rule = "TOKENIZER-CHANGE-PROOF" if family is None or "caseops" in (family or "") else "BPB-BYTE-LUT"
        severity = "error" if abs(off) > ERROR_REL + _precision_rel(run) else "warning"
        report.add(Finding(
            rule, severity,
            f"implied byte denominator (val_loss/ln2)*val_tokens/val_bpb = {found:,.0f} is {off * 100:+.3f} % off "
            f"the validation text's {expected:,} bytes", file=run.path, line=run.final.line, seed=run.seed,
            source="log", data={"implied_bytes": round(found), "expected": expected}))
    report.facts["denominators"] = table
    if table:
        report.mark_checked("BPB-BYTE-LUT", "TOKENIZER-CHANGE-PROOF")
    else:
        report.skip("BPB-BYTE-LUT", "no log prints val_loss, val_bpb and val_tokens together")
        report.skip("TOKENIZER-CHANGE-PROOF", "no log prints val_loss, val_bpb and val_tokens together")


def _is_whole_split(tokens: int, canonical: int, seq_len: int | None) -> bool:
    """Whether TOKENS is the canonical count up to truncation: below by at most eight sequences or 0.02 % (a
    per-rank or per-batch multiple), above by at most one sequence (the raw stream before truncation)."""
    seq = max(seq_len or 0, 2048)
    below = max(8 * seq, TRUNCATION_REL * canonical) if seq_len else DEFAULT_TRUNCATION
    return canonical - below <= tokens <= canonical + seq


def _any_whole_split(run: LogRun) -> bool:
    return any(_is_whole_split(run.val_tokens, c, run.seq_len) for counts in CANONICAL_VAL_TOKENS.values()
               for c in counts)


def _token_count(runs: list[LogRun], report: Report) -> None:
    judged = False
    for run in runs:
        if run.val_tokens is None or run.final is None:
            continue
        scored = _scored_tokens(run)
        if scored is not None and scored < SMALLEST_SPLIT / MAX_RANKS:
            judged = True  # fewer than one rank's share of any split: the score covers a part of it
            report.add(Finding(
                "FULL-VAL-TOKEN-COUNT", "error",
                f"the final score's line counts {scored:,} scored tokens, fewer than one rank's share of any "
                f"canonical split (val_tokens {run.val_tokens:,}): the score covers a subset",
                file=run.path, line=run.final.line, seed=run.seed, source="log",
                data={"scored_tokens": scored, "val_tokens": run.val_tokens}))
            continue
        family = tokenizer_family(run)
        if family is None:
            if run.val_tokens < SUBSET_FRACTION * SMALLEST_SPLIT:  # a part of any split, whichever tokenizer ran
                judged = True
                report.add(Finding(
                    "FULL-VAL-TOKEN-COUNT", "error",
                    f"val_tokens {run.val_tokens:,} is under {SUBSET_FRACTION:.0%} of every canonical split "
                    f"(the smallest, {SMALLEST_SPLIT:,} tokens): a subset, whatever the tokenizer",
                    file=run.path, line=run.line_of.get("val_tokens"), seed=run.seed, source="log",
                    data={"val_tokens": run.val_tokens, "smallest_canonical": SMALLEST_SPLIT}))
            continue
        judged = True
        canon = CANONICAL_VAL_TOKENS[family]
        if _any_whole_split(run):
            continue  # the count is a canonical split's (the paths' tokenizer name is weaker evidence than it)
        nearest = min(canon, key=lambda c: abs(c - run.val_tokens))
        low = run.val_tokens < nearest
        report.add(Finding(
            "FULL-VAL-TOKEN-COUNT", "error",
            f"val_tokens {run.val_tokens:,} vs the canonical {family} count {nearest:,}: "
            + ("fewer tokens than the full split (a subset?)" if low else "more tokens than the split"),
            file=run.path, line=run.line_of.get("val_tokens"), seed=run.seed, source="log",
            data={"val_tokens": run.val_tokens, "canonical": nearest}))
    if judged:
        report.mark_checked("FULL-VAL-TOKEN-COUNT")
    else:
        report.skip("FULL-VAL-TOKEN-COUNT", "no log names a known tokenizer together with val_tokens")


def _overlap(runs: list[LogRun], report: Report) -> None:
    judged = False
    for run in runs:
        if run.train_shards is None:
            continue
        judged = True
        if run.train_shards != LEAKY_TRAIN_SHARDS:
            continue
        doubled = next((p for p in run.dataset_paths if "datasets/datasets" in p), None)
        where = f" and the doubled path {doubled}" if doubled else ""
        report.add(Finding(
            "TRAIN-VAL-OVERLAP", "error" if doubled else "warning",
            f"train_shards: {run.train_shards}{where}: the fingerprint of a local re-tokenization that starts "
            "training at document 10,000 (validation documents 10k-50k also trained on)",
            file=run.path, line=run.line_of.get("train_shards"), seed=run.seed, source="log"))
    if judged:
        report.mark_checked("TRAIN-VAL-OVERLAP")
    else:
        report.skip("TRAIN-VAL-OVERLAP", "no log prints train_shards")
