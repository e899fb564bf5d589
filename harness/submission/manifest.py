"""Read `submission.json` into `Claims`: our versioned schema (docs/submission-schema.md) and every legacy shape.

The merged records use 39 key sets for the same few facts (challenge-facts §7): `val_bpb` or `mean_val_bpb` or
`mean_bpb`; bytes under five names; per-seed values under `seed_results`, `seeds` (object) or parallel `seeds` /
`seed_scores` lists; p-values as strings; nulls; four track spellings. `load_claims` accepts all of them and writes
what it inferred into `Claims.schema_notes`, so a reader can see which key a number came from. Numbers keep their
printed text: the claim checker compares at the claim's own precision.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from harness.challenge import RECORD_TRACK, TRACKS
from harness.verdict import Report
from rules.finding import Finding

SCHEMA_VERSION = 1
_BPB_KEYS = ("val_bpb", "mean_val_bpb", "mean_bpb")
_BYTES_KEYS = ("bytes_total", "artifact_bytes_max", "artifact_bytes", "artifact_size_bytes", "total_bytes",
               "artifact_bytes_mean")
_SEED_BPB_KEYS = ("val_bpb", "bpb", "final_val_bpb", "mean_val_bpb")
_SEED_LOSS_KEYS = ("val_loss", "final_val_loss")


@dataclass(frozen=True)
class Number:
    """A claimed number with its printed text (for precision) and the key it came from."""

    value: float
    text: str
    key: str

    @property
    def decimals(self) -> int:
        mantissa = self.text.lower().split("e")[0]
        return len(mantissa.split(".")[1]) if "." in mantissa else 0


@dataclass(frozen=True)
class SeedClaim:
    val_bpb: float | None = None
    val_loss: float | None = None
    bytes_total: int | None = None
    val_bpb_text: str | None = None
    val_loss_text: str | None = None


@dataclass
class Claims:
    path: str | None = None  # relative path of the JSON file; None when absent
    schema_version: int | None = None
    val_bpb: float | None = None
    val_loss: float | None = None
    bytes_total: int | None = None
    val_bpb_text: str | None = None
    val_loss_text: str | None = None
    bpb_key: str | None = None
    bytes_key: str | None = None
    seeds: dict[str, SeedClaim] = field(default_factory=dict)
    seed_ids: list[str] = field(default_factory=list)  # listed seeds, even without per-seed values
    track: str | None = None  # normalised: one of TRACKS, or None when unknown
    track_raw: str | None = None
    p_value: str | None = None
    schema_notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def is_record_track(self) -> bool:
        return self.track == RECORD_TRACK


def claimed_track(claims: object) -> str | None:
    """The normalised track CLAIMS name, or None (no claims, or the track is unknown)."""
    return getattr(claims, "track", None)


_NON_RECORD_FLAGS = ("record_claim", "is_record", "leaderboard_eligible", "record")
_NON_RECORD_WORDS = ("non_record", "non-record", "nonrecord", "not a record", "non record")


def declares_non_record(claims: object) -> str | None:
    """How submission.json says the run is not a record claim (`record_claim: false`, `non_record: true`, a
    `status` or `name` that starts "non-record"), or None. It narrows the claim, as the track field does: the
    budgets are then reported, not enforced."""
    raw = getattr(claims, "raw", None) or {}
    for key in _NON_RECORD_FLAGS:
        if raw.get(key) is False:
            return f"{key}: false"
    for key in ("non_record", "is_non_record", "nonrecord"):
        if raw.get(key) is True:
            return f"{key}: true"
    for key in ("status", "name", "submission_type", "type", "category"):
        value = raw.get(key)
        if isinstance(value, str) and value.strip().lower().startswith(_NON_RECORD_WORDS):
            return f"{key}: {value.strip()[:60]!r}"
    return None


def is_off_record(track: str | None) -> bool:
    """A known track other than the record track (where the 600 s budgets and the leaderboard do not apply)."""
    return track is not None and track != RECORD_TRACK


def _number(value: Any, key: str, notes: list[str]) -> Number | None:
    """JSON value (numbers arrive as text thanks to the parse hooks) -> Number; None for null or non-numbers."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            Decimal(text)
        except InvalidOperation:
            notes.append(f"{key} is not a number ({value!r}); ignored")
            return None
        if not isinstance(value, _JsonNum):
            notes.append(f"{key} is a string holding a number; read as {text}")
        try:
            return Number(float(text), text, key)
        except ValueError:
            return None
    return None


class _JsonNum(str):
    """A JSON number kept as its source text."""


def _parse(text: str) -> Any:
    return json.loads(text, parse_float=_JsonNum, parse_int=_JsonNum, parse_constant=_JsonNum)


def normalise_track(raw: str) -> str | None:
    """Map the spellings seen in the records (`10min_16mb`, `non-record-16mb`, `track_non_record_16mb`...)."""
    t = raw.strip().lower().replace("-", "_").removeprefix("track_")
    if "unlimited" in t:
        return "non_record_unlimited_16mb"
    if "non_record" in t or "nonrecord" in t:
        return "non_record_16mb"
    if "10min" in t or t in ("record", "main"):
        return "10min_16mb"
    return None


def _seed_claim(key: str, entry: Any, notes: list[str]) -> SeedClaim:
    if not isinstance(entry, dict):
        n = _number(entry, f"seeds[{key}]", notes)
        return SeedClaim(val_bpb=n.value if n else None, val_bpb_text=n.text if n else None)
    bpb = next((_number(entry[k], f"seed {key} {k}", notes) for k in _SEED_BPB_KEYS if k in entry), None)
    if bpb is None:
        alt = next((k for k in entry if "bpb" in k.lower() and "pre" not in k.lower()), None)
        if alt is not None:
            bpb = _number(entry[alt], f"seed {key} {alt}", notes)
            notes.append(f"seed {key}: score read from {alt!r}")
    loss = next((_number(entry[k], f"seed {key} {k}", notes) for k in _SEED_LOSS_KEYS if k in entry), None)
    size = next((_number(entry[k], f"seed {key} {k}", notes) for k in _BYTES_KEYS if k in entry), None)
    return SeedClaim(
        val_bpb=bpb.value if bpb else None, val_loss=loss.value if loss else None,
        bytes_total=int(size.value) if size else None,
        val_bpb_text=bpb.text if bpb else None, val_loss_text=loss.text if loss else None)


_SEED_LIST_KEYS = ("seed_scores", "seed_val_bpb", "val_bpb_per_seed", "val_bpb_seeds", "seed_bpbs", "seed_val_bpbs",
                   "val_bpbs")


def _read_seeds(data: dict, claims: Claims) -> None:
    notes = claims.schema_notes
    for key in ("seeds", "seed_results"):
        value = data.get(key)
        if isinstance(value, dict):
            if key == "seeds" and claims.schema_version is None:
                notes.append("per-seed values read from 'seeds' as an object")
            elif key == "seed_results":
                notes.append("per-seed values read from 'seed_results'")
            for seed, entry in value.items():
                claims.seeds[str(seed)] = _seed_claim(str(seed), entry, notes)
            claims.seed_ids = list(claims.seeds)
            return
    listed = data.get("seeds")
    if isinstance(listed, list):
        claims.seed_ids = [str(s) for s in listed if s is not None]
        scores = next((data[k] for k in _SEED_LIST_KEYS if isinstance(data.get(k), list) and data[k]), None)
        if isinstance(scores, list) and len(scores) == len(listed):
            notes.append("per-seed scores read from parallel 'seeds' and 'seed_scores' lists")
            for seed, score in zip(claims.seed_ids, scores):
                n = _number(score, f"seed_scores[{seed}]", notes)
                claims.seeds[seed] = SeedClaim(val_bpb=n.value if n else None, val_bpb_text=n.text if n else None)
        else:
            notes.append("'seeds' lists seed ids only; no per-seed values")


def _read_scores(data: dict, claims: Claims) -> None:
    """The mean val_bpb, val_loss and byte total, under whichever key the file uses."""
    notes = claims.schema_notes
    bpb = next(((k, _number(data[k], k, notes)) for k in _BPB_KEYS if data.get(k) is not None), None)
    if bpb and bpb[1]:
        claims.val_bpb, claims.val_bpb_text, claims.bpb_key = bpb[1].value, bpb[1].text, bpb[0]
        if bpb[0] != "val_bpb":
            notes.append(f"mean score read from {bpb[0]!r} (no 'val_bpb')")
    else:
        notes.append("no val_bpb, mean_val_bpb or mean_bpb key: no score claim")
    loss = _number(data.get("val_loss"), "val_loss", notes)
    if loss:
        claims.val_loss, claims.val_loss_text = loss.value, loss.text
    size = next(((k, _number(data[k], k, notes)) for k in _BYTES_KEYS if data.get(k) is not None), None)
    if size and size[1]:
        claims.bytes_total, claims.bytes_key = int(size[1].value), size[0]
        if size[0] != "bytes_total":
            notes.append(f"bytes read from {size[0]!r} (no 'bytes_total')")


def _read_track(data: dict, claims: Claims) -> None:
    track, notes = data.get("track"), claims.schema_notes
    if not isinstance(track, str):
        notes.append("no track field: track unknown")
        return
    claims.track_raw = track
    claims.track = normalise_track(track)
    if claims.track is None:
        notes.append(f"track {track!r} not recognised")
    elif claims.track != track:
        notes.append(f"track {track!r} read as {claims.track}")


def claims_from_json(text: str, path: str) -> tuple[Claims, list[str]]:
    """Parse JSON text into Claims; the second value lists format problems (each one SUBMISSION-FORMAT)."""
    claims = Claims(path=path)
    problems: list[str] = []
    try:
        data = _parse(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        msg = getattr(exc, "msg", "too deeply nested")
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        return claims, [f"{path} is not valid JSON ({msg}{where})"]
    if not isinstance(data, dict):
        return claims, [f"{path} must hold a JSON object, not {type(data).__name__}"]
    claims.raw = data
    notes = claims.schema_notes
    version = data.get("schema_version")
    if version is not None:
        if str(version) != str(SCHEMA_VERSION):
            problems.append(f"{path}: unknown schema_version {version!r} (this tool reads {SCHEMA_VERSION})")
        else:
            claims.schema_version = SCHEMA_VERSION
    else:
        notes.append("legacy submission.json (no schema_version); keys mapped as listed here")
    _read_scores(data, claims)
    _read_track(data, claims)
    if data.get("p_value") is not None:
        claims.p_value = str(data["p_value"])
    _read_seeds(data, claims)
    for k, v in data.items():
        if v is None:
            notes.append(f"{k} is null")
    if claims.schema_version == SCHEMA_VERSION:
        problems += _validate_v1(data, path)
    return claims, problems


def _validate_v1(data: dict, path: str) -> list[str]:
    """Required keys and types of schema version 1 (docs/submission-schema.md)."""
    problems = []
    for key in ("val_bpb", "val_loss", "bytes_total"):
        if not isinstance(data.get(key), _JsonNum):
            problems.append(f"{path}: schema 1 requires a number in {key!r}")
    if normalise_track(str(data.get("track", ""))) is None or data.get("track") not in TRACKS:
        problems.append(f"{path}: schema 1 requires track to be one of {', '.join(TRACKS)}")
    seeds = data.get("seeds")
    if not isinstance(seeds, dict) or not seeds:
        problems.append(f"{path}: schema 1 requires 'seeds' as an object keyed by seed")
    else:
        for seed, entry in seeds.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("val_bpb"), _JsonNum):
                problems.append(f"{path}: seeds[{seed!r}] needs a numeric val_bpb")
    return problems


def load_claims(sub, report: Report) -> Claims:
    """Read the submission's JSON (never written to); format problems become SUBMISSION-FORMAT errors."""
    rel = getattr(sub, "submission_json", None)
    if rel is None:
        # The missing file itself is reported once, by the layout check (harness/check/layout.py).
        return Claims(schema_notes=["no submission.json: the claimed score is unknown"])
    display = sub.display(rel)
    try:
        raw = sub.abs(rel).read_bytes()
    except OSError as exc:
        report.add(Finding("SUBMISSION-FORMAT", "error", f"cannot read {display}: {exc.strerror or exc}",
                           file=display, source="artifact"))
        return Claims(path=display)
    if raw.startswith(codecs.BOM_UTF8):
        # Python's own reader (utf-8-sig) and most tools accept the mark; a strict JSON parser does not.
        report.add(Finding("SUBMISSION-FORMAT", "warning", f"{display} starts with a UTF-8 byte-order mark; "
                           "strict JSON readers refuse it (save it as plain UTF-8)", file=display, source="artifact"))
        raw = raw[len(codecs.BOM_UTF8):]
    text = raw.decode("utf-8", errors="replace")
    claims, problems = claims_from_json(text, display)
    if display != "submission.json":
        claims.schema_notes.append(f"claims read from {display} (not named submission.json)")
    for problem in problems:
        report.add(Finding("SUBMISSION-FORMAT", "error", problem, file=display, source="artifact"))
    report.facts["claims"] = {
        "file": display, "schema_version": claims.schema_version, "val_bpb": claims.val_bpb_text,
        "val_loss": claims.val_loss_text, "bytes_total": claims.bytes_total, "bytes_key": claims.bytes_key,
        "track": claims.track, "seeds": sorted(claims.seeds or dict.fromkeys(claims.seed_ids)),
        "schema_notes": list(claims.schema_notes)}
    return claims
