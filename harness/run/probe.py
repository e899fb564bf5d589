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
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.challenge import SHARD_HEADER_INTS, SHARD_MAGIC, SHARD_VERSION
from harness.errors import UserError
from harness.submission.folder import load_submission
from harness.verdict import Report
from rules.finding import Evidence, Finding

INJECT_DIR = Path(__file__).resolve().parent / "inject"

# Probe name -> the rulebook IDs it can judge (used by the rules listing).
PROBE_RULES: dict[str, tuple[str, ...]] = {
    "c1_causality": ("TTT-PREEVAL-VAL", "TTT-MULTIPASS-SCORE", "RESCORE-S1", "SLOT-SCORED-TARGETS",
                     "NGRAM-GATE-ON-TARGET"),
    "c3_score_before_update": ("TTT-PREEVAL-VAL", "TTT-MULTIPASS-SCORE", "RESCORE-S1", "SLOT-SCORED-TARGETS"),
    "c2_normalization": ("NGRAM-TARGET-IN-KEY", "BYTE-MIXTURE-C2"),
    "data_access": ("TRAIN-ON-VAL", "TRAIN-DATA-AT-EVAL", "GPTQ-CALIB-VAL"),
}

VOCAB = 32  # small enough for the C2 counterfactual sum (one run per token), large enough to locate rows
KEY = 8  # tokens per locating key: 32^8 keys against a few thousand positions, collisions negligible
VAL_TOKENS = 65537  # 65,536 targets: two chunks of the 32,768-token TTT chunk many scripts hard-code
TRAIN_TOKENS = 32768
BOS, FIRST_TEXT = 1, 4  # the challenge's tokenizers: pad 0, bos 1, eos 2, unk 3, then text pieces
DOC_LEN = (200, 2500)  # document lengths of the synthetic streams (min, max exclusive)
DATA_SEED = 20240520  # the synthetic streams' seed (any fixed value; kept so that probe results stay put)
TOL = 1e-5  # CPU, one thread, same shapes: unchanged positions reproduce bit for bit; this only absorbs printing
Z_TOL = 0.02  # |sum of implied probabilities - 1| allowed in the C2 counterfactual
C2_TOKENS = 8193  # the C2 runs score a prefix of this many tokens (8,192 targets: a TTT chunk of the tiny config)
MAX_COPY_BYTES = 50_000_000  # the script's folder is copied to the work folder; larger files are left out

# The tiny configuration, through the environment variables the challenge's scripts read.
TINY_ENV = {
    "VOCAB_SIZE": str(VOCAB), "TRAIN_SEQ_LEN": "32", "EVAL_SEQ_LEN": "32", "EVAL_STRIDE": "16",
    "ITERATIONS": "4", "WARMUP_STEPS": "0", "WARMDOWN_ITERS": "0", "TRAIN_BATCH_TOKENS": "512",
    "VAL_BATCH_SIZE": "512", "VAL_LOSS_EVERY": "0", "TRAIN_LOG_EVERY": "1", "MAX_WALLCLOCK_SECONDS": "120",
    "NUM_LAYERS": "1", "MODEL_DIM": "32", "NUM_HEADS": "2", "NUM_KV_HEADS": "1", "MLP_MULT": "2",
    "TTT_CHUNK_TOKENS": "8192", "TTT_BATCH_SEQS": "32", "EVAL_BATCH": "64",
    "TTT_EPOCHS": "2",  # two, so a multi-epoch adapt-and-rescore loop still shows; more only costs time
    "DEVICE": "cpu", "COMPILE": "0", "PRESET": "cpu-smoke", "ACCUM_BASE": "1", "RUN_ID": "probe", "SEED": "1337",
}


@dataclass
class ProbeOptions:
    data_path: Path | None = None  # only its tokenizer is used (the token streams are always synthetic)
    timeout: float = 300.0
    val_tokens: int = VAL_TOKENS  # length of the synthetic validation stream (tests use a shorter one)
    cpu_compat: bool = True  # run under harness/run/inject/cpu_compat.py: CUDA-assuming scripts run on the CPU


# -----------------------------------------------------------------------------
# The synthetic dataset

def _write_shard(path: Path, tokens: np.ndarray) -> None:
    header = np.zeros(SHARD_HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, len(tokens)
    path.write_bytes(header.tobytes() + tokens.astype("<u2").tobytes())


def _write_tokenizer(folder: Path, vocab: int, data_path: Path | None) -> Path:
    """A SentencePiece model with exactly `vocab` pieces (byte tables need one); a user's own when it fits."""
    import sentencepiece as spm

    if data_path is not None:
        for cand in sorted(Path(data_path).rglob(f"*{vocab}_bpe.model")):
            return cand
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefgh"), size=rng.integers(1, 7))) for _ in range(300)]
    text = "\n".join(" ".join(rng.choice(words, size=12)) for _ in range(400))
    corpus = folder / "corpus.txt"
    corpus.write_text(text, encoding="utf-8")
    prefix = folder / f"fineweb_{vocab}_bpe"
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(prefix), vocab_size=vocab,
                                   model_type="bpe", character_coverage=1.0, bos_id=-1, eos_id=-1, unk_id=0,
                                   minloglevel=2)
    return prefix.with_suffix(".model")


@dataclass
class Dataset:
    root: Path
    data_dir: Path
    tokenizer: Path
    val: np.ndarray
    train: np.ndarray

    def variant_dir(self, name: str, val: np.ndarray) -> Path:
        """A dataset folder for one variant: the same training shard, its own validation stream.

        Laid out as the challenge's data root (`<root>/datasets/fineweb10B_sp<V>`, `<root>/tokenizers/...`) so
        scripts that take DATA_DIR (the root) find the same files as those that take DATA_PATH/TOKENIZER_PATH."""
        root = self.root / "variants" / name
        d = root / "datasets" / self.data_dir.name
        d.mkdir(parents=True, exist_ok=True)
        _write_shard(d / "fineweb_train_000000.bin", self.train)
        _write_shard(d / "fineweb_val_000000.bin", val)
        (root / "tokenizers").mkdir(exist_ok=True)
        shutil.copyfile(self.tokenizer, root / "tokenizers" / f"fineweb_{VOCAB}_bpe.model")
        return d


def _documents(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random text tokens cut into documents of DOC_LEN tokens, each opened by BOS, as the challenge's shards are
    (per-document evaluations and TTT see realistic documents, not a BOS every VOCAB tokens)."""
    out = rng.integers(FIRST_TEXT, VOCAB, n).astype(np.int64)
    pos = 0
    while pos < n:
        out[pos] = BOS
        pos += int(rng.integers(*DOC_LEN))
    return out


def perturb_text(stream: np.ndarray, start: int, seed: int = 7) -> np.ndarray:
    """A copy with every text token from `start` on changed to another text token; BOS positions stay, so the
    document boundaries (and any batching by document length) are those of the original stream."""
    out = stream.copy()
    rng = np.random.default_rng(seed)
    tail = out[start:]
    text = tail != BOS
    shift = rng.integers(1, VOCAB - FIRST_TEXT, len(tail))
    tail[text] = FIRST_TEXT + (tail[text] - FIRST_TEXT + shift[text]) % (VOCAB - FIRST_TEXT)
    return out


def build_dataset(root: Path, data_path: Path | None, val_tokens: int = VAL_TOKENS) -> Dataset:
    rng = np.random.default_rng(DATA_SEED)
    val = _documents(rng, val_tokens)
    train = _documents(rng, TRAIN_TOKENS)
    tok = _write_tokenizer(root / "tokenizers", VOCAB, data_path)
    data_dir = root / "datasets" / f"fineweb10B_sp{VOCAB}"
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_shard(data_dir / "fineweb_train_000000.bin", train)
    _write_shard(data_dir / "fineweb_val_000000.bin", val)
    return Dataset(root, data_dir, tok, val, train)


# -----------------------------------------------------------------------------
# Locating recorded rows in the token streams

class StreamIndex:
    """Finds where a flattened batch of rows (targets or inputs) sits in one token stream."""

    def __init__(self, stream: np.ndarray) -> None:
        self.stream = stream
        keys = _rolling_keys(stream)
        order = np.argsort(keys, kind="stable")
        self.keys, self.pos = keys[order], order
        dup = np.zeros(len(keys), bool)
        dup[1:] |= self.keys[1:] == self.keys[:-1]
        dup[:-1] |= self.keys[1:] == self.keys[:-1]
        self.keys, self.pos = self.keys[~dup], self.pos[~dup]  # ambiguous keys locate nothing

    def locate(self, values: np.ndarray) -> np.ndarray:
        """Stream position of each element (-1 where not found); -1 entries of `values` are masked targets."""
        out = np.full(len(values), -1, dtype=np.int64)
        if len(values) < KEY or not len(self.keys):
            return out
        keys = _rolling_keys(values)
        masked = np.concatenate([[0], np.cumsum(values < 0)])
        valid = masked[KEY:KEY + len(keys)] - masked[:len(keys)] == 0  # no ignored target inside the key
        idx = np.clip(np.searchsorted(self.keys, keys), 0, len(self.keys) - 1)
        hit = valid & (self.keys[idx] == keys)
        out[:len(keys)][hit] = self.pos[idx[hit]]
        for _ in range(KEY - 1):  # the tail of each row (fewer than KEY tokens left) follows its head
            follow = np.zeros(len(values), bool)
            follow[1:] = (out[1:] < 0) & (out[:-1] >= 0) & (values[1:] >= 0)
            idx = np.nonzero(follow)[0]
            if not len(idx):
                break
            nxt = out[idx - 1] + 1
            ok = nxt < len(self.stream)
            ok[ok] &= self.stream[nxt[ok]] == values[idx[ok]]
            out[idx[ok]] = nxt[ok]
        return out


def _rolling_keys(a: np.ndarray) -> np.ndarray:
    """int64 key of each window of KEY tokens (base VOCAB); tokens outside the vocabulary fold in harmlessly."""
    n = len(a) - KEY + 1
    if n <= 0:
        return np.zeros(0, np.int64)
    b = np.where(a < 0, VOCAB, np.minimum(a, 4 * VOCAB)).astype(np.int64)
    keys = np.zeros(n, np.int64)
    for j in range(KEY):
        keys = keys * (4 * VOCAB + 1) + b[j:j + n]
    return keys


# -----------------------------------------------------------------------------
# Reading one variant's trace

@dataclass
class Pass:
    """One left-to-right scoring pass: the first no-grad observation of each validation position. A pass with
    `one_forward` set is instead one chosen observation, with or without grad, of each position from `start_tick` on
    (see _one_forward_passes): the score of an evaluator that scores and trains from the same forward (PR #77)."""

    index: int
    start_tick: int
    end_tick: int
    first: dict[int, tuple[float, float, int]] = field(default_factory=dict)  # pos -> (nll, lse, tick)
    one_forward: bool = False
    earlier: dict[int, int] = field(default_factory=dict)  # one-forward: pos -> tick of the observation before

    @property
    def mean_nll(self) -> float:
        return float(np.mean([v[0] for v in self.first.values()])) if self.first else float("nan")


@dataclass
class Update:
    tick: int
    val_positions: np.ndarray  # validation targets whose gradients this update used
    train_rows: int  # targets located in the training stream
    free: bool  # the tensors stepped were created at eval time, not module parameters (the SLOT shape)


@dataclass
class Trace:
    exit_code: int | None
    log_lines: list[str]
    passes: list[Pass]
    updates: list[Update]
    opens: list[tuple[int, str]]  # (tick, file name)
    calib_val_rows: int  # calibration-forward inputs located in the validation stream
    reported_loss: float | None
    reported_decimals: int
    notes: list[str]
    compat: list[str] = field(default_factory=list)  # CPU compatibility stand-ins the script reached
    observed: list = field(default_factory=list)  # (tick, grad, positions, nll, lse) of every call on validation
    one_forward: list[Pass] | None = None  # built by one_forward_candidates only when no plain pass matches


def _forward_followed_by_loss(events: list) -> list[bool]:
    """For each `fwd` event: did a cross-entropy call come before the next forward or update?"""
    out: list[bool] = []
    for i, (kind, _, _) in enumerate(events):
        if kind != "fwd":
            continue
        nxt = next((k for k, _, _ in events[i + 1:] if k in ("ce", "fwd", "update")), None)
        out.append(nxt == "ce")
    return out


_LOSS = re.compile(r"val_loss[:=\s]+([0-9]+\.([0-9]+))")


def _reported(lines: list[str]) -> tuple[float | None, int]:
    """The last printed val_loss (the final metric, by the challenge's log dialect) and its decimals."""
    for line in reversed(lines):
        m = _LOSS.search(line)
        if m:
            return float(m.group(1)), len(m.group(2))
    return None, 0


def read_trace(npz: Path, log_path: Path, exit_code: int | None, val_index: StreamIndex,
               train_index: StreamIndex) -> Trace:
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines() if log_path.exists() else []
    if not npz.exists():
        return Trace(exit_code, lines, [], [], [], 0, *_reported(lines), ["no trace written"])
    with np.load(npz, allow_pickle=False) as z:
        targets, nll, lse = z["ce_targets"], z["ce_nll"], z["ce_lse"]
        fwd_ids, fwd_sizes = z["fwd_ids"], z["fwd_sizes"]
        events = json.loads(str(z["events"]))
    passes: list[Pass] = []
    updates: list[Update] = []
    opens: list[tuple[int, str]] = []
    notes: list[str] = []
    compat: list[str] = []
    pending_val: list[np.ndarray] = []
    pending_train = 0
    offset = fwd_offset = 0
    calib_val = 0
    gap = max(256, len(val_index.stream) // 8)  # a drop this far back in position starts a new pass
    running_min = -1
    in_pass = np.zeros(len(val_index.stream) + 1, bool)  # positions the current pass has scored
    frontier = -1  # the furthest position the current pass has scored
    observed: list[tuple[int, bool, np.ndarray, np.ndarray, np.ndarray]] = []  # every call on validation targets
    for kind, tick, payload in events:
        if kind == "ce":
            n = payload["n"]
            y, e_nll, e_lse = targets[offset:offset + n], nll[offset:offset + n], lse[offset:offset + n]
            offset += n
            vpos = val_index.locate(y)
            if (vpos > 0).any():
                keep = vpos > 0
                observed.append((tick, bool(payload["grad"]), vpos[keep], e_nll[keep], e_lse[keep]))
            if payload["grad"]:
                pending_val.append(vpos[vpos > 0])
                pending_train += int((train_index.locate(y) >= 0).sum())
                continue
            located = vpos > 0
            if not located.any():
                continue
            low = int(vpos[located].min())
            # A new pass: the positions jump far back, or most of this call re-scores positions the current pass
            # scored far behind its frontier (an evaluation done in one call per pass never jumps back inside
            # itself; overlapping sliding windows re-score only positions near the frontier).
            where = vpos[located]
            if not passes or low < running_min - gap or (in_pass[where] & (where < frontier - gap)).mean() > 0.5:
                passes.append(Pass(len(passes), tick, tick))
                running_min, frontier = low, -1
                in_pass[:] = False
            in_pass[where] = True
            frontier = max(frontier, int(where.max()))
            running_min = max(running_min, low)
            cur = passes[-1]
            cur.end_tick = tick
            for p, a, b in zip(vpos[located].tolist(), e_nll[located].tolist(), e_lse[located].tolist()):
                cur.first.setdefault(p, (a, b, tick))
        elif kind == "update":
            if payload["kind"] in ("backward", "grad"):
                positions = np.unique(np.concatenate(pending_val)) if pending_val else np.zeros(0, np.int64)
                updates.append(Update(tick, positions, pending_train, bool(payload.get("free", False))))
                pending_val, pending_train = [], 0
            elif payload["kind"] == "step" and updates and payload.get("free"):
                updates[-1].free = True
        elif kind == "open":
            opens.append((tick, Path(payload["path"]).name))
        elif kind == "note":
            notes.append(payload["text"])
        elif kind == "compat":
            compat.append(payload["name"])
    for size, scored in zip(fwd_sizes.tolist(), _forward_followed_by_loss(events)):
        ids = fwd_ids[fwd_offset:fwd_offset + size]
        fwd_offset += size
        if not scored:  # a hooked forward whose output no loss consumed: statistics collection
            calib_val += int((val_index.locate(ids) >= 0).sum())
    loss, decimals = _reported(lines)
    return Trace(exit_code, lines, passes, updates, opens, calib_val, loss, decimals, notes, compat, observed)


ONE_FORWARD_UPDATES = (1, 2, 3)  # the forward before a position's j-th update may be its score
ONE_FORWARD_ORDINALS = (1, 2, 3, 0)  # else its k-th observation; 0: the last one
ONE_FORWARD_SWEEPS = (2, 3, 4)  # else the first observation of the last of E equal sweeps (epochs over the stream)


def _one_forward_passes(observed: list, passes: list[Pass], updates: list[Update]) -> list[Pass]:
    """Candidate passes for evaluators that score from a forward that also trains (PR #77's LoRA TTT), built only
    when no plain pass matches the printed score. From the first grad-enabled validation call after each plain pass
    (and before any), three families, in this order:

    * update-anchored, j = 1, 2, 3: for each position, its last observation before the j-th update that used it (the
      forward whose loss drove that update), or its j-th observation when fewer updates used it (a last chunk that
      is never trained). j = 1 is a one-forward score-first evaluator; j > 1 scores after training on the position
      (an epoch before, or a look-ahead forward), however often it was re-read as context in between;
    * ordinal, k = 1, 2, 3, last: the k-th observation of every position;
    * sweeps, E = 2, 3, 4: the first observation of the last of E equal sweeps, when every sweep re-reads each
      position the same number of times as context (an epoch loop around windowed chunks: PR #568).

    Positions the phase never observes keep their score from the latest plain pass before it. Indexed after the
    plain passes, so base and perturbed runs pair them the same way."""
    ends = sorted({-1} | {p.end_tick for p in passes})
    grad_ticks = [t for t, grad, *_ in observed if grad]
    starts = sorted({next(t for t in grad_ticks if t > end) for end in ends if grad_ticks and grad_ticks[-1] > end})
    out: list[Pass] = []
    for start in starts:
        calls = [o for o in observed if o[0] >= start]
        pos = np.concatenate([o[2] for o in calls])
        ticks = np.concatenate([np.full(len(o[2]), o[0]) for o in calls])
        nll, lse = np.concatenate([o[3] for o in calls]), np.concatenate([o[4] for o in calls])
        order = np.argsort(pos, kind="stable")  # per position, its observations in call order
        sorted_pos, sorted_ticks = pos[order], ticks[order]
        group_start = np.r_[0, np.nonzero(np.diff(sorted_pos))[0] + 1]
        counts = np.diff(np.r_[group_start, len(sorted_pos)])
        group_pos = sorted_pos[group_start]
        later = [u for u in updates if u.tick >= start and len(u.val_positions)]
        upd_pos = np.concatenate([u.val_positions for u in later]) if later else np.zeros(0, np.int64)
        upd_tick = np.concatenate([np.full(len(u.val_positions), u.tick) for u in later]) if later else upd_pos
        u_order = np.lexsort((upd_tick, upd_pos))
        u_pos, u_tick = upd_pos[u_order], upd_tick[u_order]
        u_start = np.r_[0, np.nonzero(np.diff(u_pos))[0] + 1] if len(u_pos) else np.zeros(0, np.int64)
        u_rank = np.arange(len(u_pos)) - np.repeat(u_start, np.diff(np.r_[u_start, len(u_pos)]))
        ranks = []
        never = np.iinfo(np.int64).max
        size = int(max(pos.max(), upd_pos.max() if len(upd_pos) else 0)) + 1
        for j in ONE_FORWARD_UPDATES:
            threshold = np.full(size, never)
            threshold[u_pos[u_rank == j - 1]] = u_tick[u_rank == j - 1]
            before = np.add.reduceat((sorted_ticks < threshold[sorted_pos]).astype(np.int64), group_start)
            anchored = threshold[group_pos] < never
            ranks.append(np.where(anchored & (before > 0), before - 1, np.minimum(j, counts) - 1))
        ranks += [counts - 1 if k == 0 else np.minimum(k, counts) - 1 for k in ONE_FORWARD_ORDINALS]
        ranks += [(e - 1) * counts // e for e in ONE_FORWARD_SWEEPS]
        skipped: dict[int, tuple[float, float, int]] = {}  # positions this phase never observes (short documents
        for earlier_pass in sorted((q for q in passes if q.end_tick < start), key=lambda q: -q.end_tick):
            for q_pos, value in earlier_pass.first.items():  # scored plainly just before): their latest plain score
                skipped.setdefault(q_pos, value)
        for rank in ranks:
            pick = order[group_start + rank]
            cand = Pass(len(passes) + len(out), start, int(ticks.max()), one_forward=True)
            cand.first = {**skipped, **{int(q): (float(a), float(b), int(t))
                                        for q, a, b, t in zip(pos[pick], nll[pick], lse[pick], ticks[pick])}}
            has_before = rank > 0
            cand.earlier = dict(zip(pos[pick][has_before].tolist(),
                                    ticks[order[group_start + rank - 1]][has_before].tolist()))
            out.append(cand)
    return out


def one_forward_candidates(trace: Trace) -> list[Pass]:
    """The trace's one-forward candidate passes, built on first use (they cost a pass over every observation)."""
    if trace.one_forward is None:
        trace.one_forward = _one_forward_passes(trace.observed, trace.passes, trace.updates)
    return trace.one_forward


# -----------------------------------------------------------------------------
# Running the script

@dataclass
class Workspace:
    root: Path
    script: Path  # the copy that runs
    sys_path: list[str]
    display: str  # the script as findings name it, relative to the submission folder
    cpu_compat: bool = False  # the plan enables harness/run/inject/cpu_compat.py
    python: str = sys.executable  # the interpreter that runs the launcher (one that can parse the script)


def _copy_script_folder(script: Path, dest: Path) -> tuple[Path, list[str]]:
    """Copy the script's folder (files up to MAX_COPY_BYTES) so nothing the run writes lands in the user's folder.

    When the folder is a package (has __init__.py), its parent goes on sys.path too, as `python -m` would."""
    src = script.parent

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {"__pycache__", ".git", "logs"}
        return {n for n in names if n in skip or (os.path.isfile(os.path.join(folder, n))
                                                   and os.path.getsize(os.path.join(folder, n)) > MAX_COPY_BYTES)}

    target = dest / src.name
    shutil.copytree(src, target, ignore=ignore, symlinks=True)
    sys_path = [str(target)]
    if (src / "__init__.py").exists():
        sys_path.append(str(dest))
    return target / script.name, sys_path


def _variant(ds: Dataset, work: Path, name: str, val: np.ndarray) -> dict:
    data_dir = ds.variant_dir(name, val)
    cwd = work / "runs" / name
    cwd.mkdir(parents=True, exist_ok=True)
    chunk = max(256, (len(ds.val) - 1) // 8 // 256 * 256)  # eight TTT chunks, a multiple of every stride
    env = dict(TINY_ENV, DATA_PATH=str(data_dir), DATA_DIR=str(data_dir.parent.parent) + os.sep,
               TOKENIZER_PATH=str(ds.tokenizer), TTT_CHUNK_TOKENS=str(chunk))
    return {"name": name, "env": env, "cwd": str(cwd), "trace": str(cwd / "trace.npz"), "log": str(cwd / "out.log")}


def _run_plan(ws: Workspace, variants: list[dict], timeout: float, tag: str) -> tuple[dict, str | None]:
    """Run the variants in one sandboxed process; (name -> {"exit", "seconds"}, why it was stopped or None)."""
    from harness.run import sandbox

    plan = {"script": str(ws.script), "sys_path": ws.sys_path, "inject_dir": str(INJECT_DIR),
            "variants": variants, "results": str(ws.root / f"results_{tag}.json"), "cpu_compat": ws.cpu_compat,
            "variant_timeout_s": max(5.0, timeout / 2)}
    plan_path = ws.root / f"plan_{tag}.json"
    plan_path.write_text(json.dumps(plan), encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(ws.root), "LANG": "C.UTF-8",
           "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "TORCHDYNAMO_DISABLE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    spec = sandbox.SandboxSpec(argv=[ws.python, str(INJECT_DIR / "launch.py"), str(plan_path)],
                               cwd=ws.root, env=env)
    start = time.monotonic()
    result = sandbox.run_sandboxed(spec, on_line=lambda _t, _line: None,
                                   deadline=lambda now: "timeout" if now - start > timeout else None)
    results_path = Path(plan["results"])
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    stopped = None
    if result.killed_reason:
        stopped = f"stopped after {timeout:.0f} s ({result.killed_reason})"
    elif result.returncode not in (0, None) and not results:
        stopped = f"the probe launcher exited with status {result.returncode}"
    return results, stopped


def _python_candidates() -> list[str]:
    """Python 3.12+ interpreters on this machine (PATH, then pyenv's versions), newest first, no duplicates."""
    import glob

    found = [shutil.which(f"python3.{minor}") for minor in range(20, 11, -1)]
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found += sorted(glob.glob(os.path.join(root, "versions", "3.1[2-9]*", "bin", "python")), reverse=True)
    out, seen = [], set()
    for path in found:
        if path and os.access(path, os.X_OK) and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            out.append(path)
    return out


def _interpreter_problem(ws: Workspace) -> str | None:
    """None when ws.python can parse the script (and its decoded payloads); else switch ws.python to a newer
    interpreter that parses it and imports torch, or say why the script cannot run here."""
    import subprocess

    from harness.submission.shim import decode_shim

    text = ws.script.read_text(encoding="utf-8", errors="replace")
    texts = [text]
    try:
        texts += [t for _, t in decode_shim(text, ws.script.name).decoded]
    except Exception:  # noqa: BLE001 - an undecodable shim is judged by running it
        pass
    error = None
    for i, t in enumerate(texts):
        try:
            compile(t, str(ws.script), "exec", dont_inherit=True)
        except SyntaxError as exc:
            error = f"SyntaxError at {'decoded ' if i else ''}line {exc.lineno}: {exc.msg}"
            break
        except (ValueError, OverflowError):
            pass
    if error is None:
        return None
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    parses = []
    for cand in _python_candidates():
        check = "import sys\nfor p in sys.argv[1:]: compile(open(p, encoding='utf-8').read(), p, 'exec')"
        paths = []
        for i, t in enumerate(texts):
            p = ws.root / f"syntax_check_{i}.py"
            p.write_text(t, encoding="utf-8")
            paths.append(str(p))
        try:
            if subprocess.run([cand, "-c", check, *paths], capture_output=True, timeout=60).returncode != 0:
                continue
            parses.append(cand)
            if subprocess.run([cand, "-c", "import torch, numpy, sentencepiece"], capture_output=True,
                              timeout=120).returncode == 0:
                ws.python = cand
                return None
        except (OSError, subprocess.TimeoutExpired):
            continue
    if parses:
        return (f"the script needs a newer Python than {this} ({error}); it parses under {parses[0]}, but no such "
                "interpreter here has torch, numpy and sentencepiece to run it")
    return f"the script does not parse under Python {this} ({error}) and no newer interpreter here parses it"


def _crash_reason(lines: list[str], exit_code: int | None) -> str:
    """One line saying why the script stopped: its last exception line, else its last output line."""
    for line in reversed(lines):
        if re.match(r"^\s*([\w.]+(Error|Exception|Interrupt)|SystemExit|AssertionError)\b", line) or \
                line.startswith("error:"):
            return line.strip()[:300]
    tail = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
    if exit_code is not None and exit_code < 0:
        return f"killed by signal {-exit_code}" + (f" after: {tail[:200]}" if tail else "")
    return tail[:300] or f"exit status {exit_code} with no output"


# -----------------------------------------------------------------------------
# Judging the traces

def _reported_pass(trace: Trace) -> Pass | None:
    """The scoring pass whose mean NLL is the printed final val_loss (the last such pass); failing that, a
    one-forward candidate that matches and covers the validation positions seen at all."""
    if trace.reported_loss is None:
        return None
    tol = 0.6 * 10 ** -trace.reported_decimals + 2e-5
    match = [p for p in trace.passes if p.first and abs(p.mean_nll - trace.reported_loss) <= tol]
    if match:
        return match[-1]
    candidates = one_forward_candidates(trace)
    seen = set().union(*(p.first for p in trace.passes + candidates))
    match = [p for p in candidates if len(p.first) >= 0.9 * len(seen) and abs(p.mean_nll - trace.reported_loss) <= tol]
    return match[0] if match else None  # the earliest observation that explains the score


def _c1_changes(base: Trace, other: Trace, t: int) -> list[dict]:
    """Per pass: positions before t whose NLL changed, positions up to t whose log-partition changed."""
    out = []
    extra = base.one_forward is not None  # candidates are compared only when the base run needed them
    pairs = zip(base.passes + (base.one_forward or []), other.passes + (one_forward_candidates(other) if extra else []))
    for a, b in pairs:
        common = [p for p in a.first if p in b.first and p <= t]
        nll = [p for p in common if p < t and abs(a.first[p][0] - b.first[p][0]) > TOL]
        lse = [p for p in common if abs(a.first[p][1] - b.first[p][1]) > TOL]
        out.append({"pass": a.index, "compared": len(common), "nll_changed": len(nll), "lse_changed": len(lse),
                    "first_changed": min(nll + lse) if (nll or lse) else None})
    return out


def _contamination(p: Pass, updates: list[Update]) -> list[tuple[int, Update]]:
    """Scored positions of pass `p` whose score came after an update that used them as targets."""
    first_update: dict[int, Update] = {}
    for u in updates:
        for pos in u.val_positions.tolist():
            first_update.setdefault(pos, u)
    out = []
    for pos, (_, _, tick) in p.first.items():
        u = first_update.get(pos)
        if u is not None and u.tick < tick:
            out.append((pos, u))
    return out


@dataclass
class Phases:
    train_start: int | None
    train_end: int | None
    eval_start: int | None


def _phases(trace: Trace) -> Phases:
    first_pass = trace.passes[0].start_tick if trace.passes else None
    before = [u for u in trace.updates if first_pass is None or u.tick < first_pass]
    train = [u.tick for u in before if u.train_rows > 0]
    if not any(u.train_rows for u in trace.updates):  # never trained on the training stream: what it trained on
        train = [u.tick for u in before]  # before scoring was its training phase
    start, end = (min(train), max(train)) if train else (None, None)
    evals = [p.start_tick for p in trace.passes if end is None or p.start_tick > end]
    return Phases(start, end, min(evals) if evals else None)


def _classify(p: Pass, u: Update, trace: Trace, phases: Phases) -> str:
    """Which rule an update-before-score in pass `p` breaks, from where the update sits on the clock."""
    if phases.train_end is not None and u.tick <= phases.train_end:
        return "TRAIN-ON-VAL"
    if u.free:  # tensors made at eval time and stepped on scored targets
        return "SLOT-SCORED-TARGETS"
    if p.start_tick <= u.tick <= p.end_tick:
        return "TTT-PREEVAL-VAL"  # trained on a chunk, then scored it, inside one pass
    adapting = [q for q in trace.passes if q.index < p.index and q.start_tick <= u.tick and
                any(q.start_tick <= v.tick <= q.end_tick and len(v.val_positions) for v in trace.updates)]
    if adapting:  # an earlier score-first pass adapted on these tokens; this pass scores them again
        adapts_inside = any(p.start_tick <= v.tick <= p.end_tick and len(v.val_positions) for v in trace.updates)
        return "TTT-MULTIPASS-SCORE" if adapts_inside else "RESCORE-S1"
    return "TTT-PREEVAL-VAL"


_C3_MESSAGES = {
    "TRAIN-ON-VAL": "validation targets were trained on during the training phase, before they were scored",
    "TTT-PREEVAL-VAL": "validation tokens were used as training targets before their score was recorded",
    "SLOT-SCORED-TARGETS": "eval-time tensors were optimised on the very targets that were then scored (SLOT)",
    "TTT-MULTIPASS-SCORE": "the reported pass re-scores tokens an earlier adapting pass already trained on",
    "RESCORE-S1": "the reported score is a second pass over tokens the model already adapted on",
}


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
        why = _interpreter_problem(self.ws)
        if why is not None:
            self.could_not_probe(why)
            return
        n = len(self.ds.val)
        t = n - n // 4 + 3  # inside the last quarter, off any power-of-two row boundary
        perturbed = perturb_text(self.ds.val, t)
        work = self.ws.root
        variants = [_variant(self.ds, work, "base", self.ds.val), _variant(self.ds, work, "replica", self.ds.val),
                    _variant(self.ds, work, "c1", perturbed)]
        variants[0]["stop_on_failure"] = True
        results, stopped = _run_plan(self.ws, variants, self._left(), "main")
        traces = self._traces(variants, results, {"c1": perturbed})
        base = traces.get("base")
        if base is not None:
            self.compat = base.compat
        if base is None or base.exit_code != 0:
            reason = stopped or _crash_reason(base.log_lines if base else [], base.exit_code if base else None)
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
        phases = _phases(base)
        self.data_access(base, phases)
        reported = _reported_pass(base)
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
            for pos, u in _contamination(p, trace.updates):
                rule = _classify(p, u, trace, ph)
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
            message = (f"{_C3_MESSAGES[rule]}: {len(hits)} scored position(s) in pass {passes} were scored after an "
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
                c["nll_changed"] or c["lse_changed"] for c in _c1_changes(base, replica, len(self.ds.val))):
            reason = "two identical runs scored differently (the script is not deterministic on CPU)"
        if reason is not None:
            self.probes["c1_causality"] = {"ran": False, "reason": reason}
            for rule in PROBE_RULES["c1_causality"]:
                self.report.skip(rule, f"runtime C1 probe: {reason}")
            return None
        changes = _c1_changes(base, c1, t)
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
        variants = [_variant(self.ds, self.ws.root, name, s) for name, s in streams.items()]
        results, stopped = _run_plan(self.ws, variants, self._left(), "c2")
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
        script, sys_path = _copy_script_folder(sub.script.resolve(), tmp / "src")
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
