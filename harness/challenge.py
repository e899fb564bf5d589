"""The challenge's own numbers and names, in one place: every harness module reads them from here.

Sources: the challenge README and the rulebook (shared/docs/rulebook.md, challenge-facts.md). reference/ keeps its
own copies because it is bundled into one self-contained submitted script; rules/ needs none of these.
"""

from __future__ import annotations

ARTIFACT_CAP_BYTES = 16_000_000  # code bytes + compressed model bytes, decimal (README: "16MB is 16,000,000")
TRAIN_BUDGET_S = 600.0  # training on 8xH100 SXM
EVAL_BUDGET_S = 600.0  # the scored evaluation, per seed, on top of training

# Data shards (fineweb_{train,val}_*.bin): a header of 256 int32 (magic, version, token count), then uint16 tokens.
SHARD_MAGIC = 20240520
SHARD_VERSION = 1
SHARD_HEADER_INTS = 256

# The validation split's UTF-8 byte total that every correct val_bpb divides by: the centre of the measured
# 151.07-151.08 M band of the merged records.
CANONICAL_VAL_BYTES = 151_077_000
# val_tokens of the canonical exports (after truncation to the sequence length), per tokenizer family.
CANONICAL_VAL_TOKENS = {
    "sp1024": (62_021_632, 63_779_840),  # the second: the earlier export used by the 03-17 baseline record
    "sp4096": (45_508_608, 45_514_752),
    "sp8192": (40_540_160, 40_548_352),
    "sp8192_caseops": (47_851_520,),
    "byte260": (151_076_864, 151_130_112),  # without / with one BOS per document (50,000 documents)
}
# The exports those counts belong to: dataset directories and tokenizer model files (lower case) -> family. A
# directory or model of another name is a re-tokenization with token counts of its own.
STOCK_DATASET_DIRS = {"fineweb10b_sp1024": "sp1024", "fineweb10b_sp4096": "sp4096", "fineweb10b_sp8192": "sp8192",
                      "fineweb10b_sp8192_caseops": "sp8192_caseops",
                      "fineweb10b_sp8192_lossless_caps_caseops_v1_reserved": "sp8192_caseops",
                      "fineweb10b_byte260": "byte260"}
STOCK_TOKENIZER_FILES = {"fineweb_1024_bpe.model": "sp1024", "fineweb_4096_bpe.model": "sp4096",
                         "fineweb_8192_bpe.model": "sp8192",
                         "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model": "sp8192_caseops"}
# The earlier sp1024 export has other documents, hence another byte total (measured on the 03-17 baseline log).
EXPORT_VAL_BYTES = {63_779_840: 155_769_746}

# The lowest val_bpb of any merged record (main @ 4908dc46f: 2026-04-27_SP8192_LQER_SparseGate_..._1.0611). A claim
# more than about 10 % below it is beyond what any legal submission has shown: without a rule that explains it, the
# static check cannot vouch for it (the March n-gram caches claimed 0.02-0.3, SLOT 0.58, training on val 0.93).
BEST_MERGED_BPB = 1.0611
IMPLAUSIBLE_BPB = 0.95

# Tracks, as submission.json names them, and the records/ folders that hold each.
RECORD_TRACK = "10min_16mb"
TRACKS = (RECORD_TRACK, "non_record_16mb", "non_record_unlimited_16mb")
TRACK_FOLDERS = {"track_10min_16mb": RECORD_TRACK, "track_non_record_16mb": "non_record_16mb"}
