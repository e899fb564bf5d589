"""Regenerate the small example submissions in this folder, one per finding family.

Each example is a complete folder (README.md, submission.json, train_gpt.py, three seed logs) built from
template_train_gpt.py.txt, a compact trainer in the baseline's shape, with exactly one illegal change. The logs
are written as the script would print them (its own source first), with plausible numbers whose implied byte
denominator is the canonical 151.07 M unless the example is about that. Deterministic: running this twice gives
byte-identical folders.

    python submissions/examples/generate.py
"""

from __future__ import annotations

import base64
import json
import lzma
import math
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = (HERE / "template_train_gpt.py.txt").read_text()
CANONICAL_BYTES = 151_075_000
VAL_TOKENS = 62_021_632
SEEDS = {"1337": 2.0727, "42": 2.0741, "2025": 2.0719}

HPARAM_TTT = '''    ttt_enabled = bool(int(os.environ.get("TTT_ENABLED", "1")))
    ttt_epochs = int(os.environ.get("TTT_EPOCHS", 3))'''

PREEVAL_TTT = '''

def ttt_adapt(model, val_tokens, seq_len, epochs, lr):
    """Fine-tune on the validation stream before quantization ("pre-quant TTT")."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for epoch in range(epochs):
        for i in range(0, val_tokens.numel() - seq_len - 1, seq_len):
            chunk = val_tokens[i:i + seq_len + 1]
            loss = model(chunk[:-1], chunk[1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"prequant_ttt:epoch {epoch + 1}/{epochs}")'''

MULTIPASS = '''

def eval_val_ttt_epochs(model, val_tokens, seq_len, epochs, lr):
    """Score-then-train over the whole stream, several epochs; the last epoch's score is reported."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for epoch in range(epochs):
        loss_sum, token_count = 0.0, 0
        for i in range(0, val_tokens.numel() - seq_len - 1, seq_len):
            chunk = val_tokens[i:i + seq_len + 1]
            with torch.no_grad():
                loss_sum += model(chunk[:-1], chunk[1:]).item() * seq_len
                token_count += seq_len
            loss = model(chunk[:-1], chunk[1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"ttt_epoch:{epoch + 1}/{epochs} val_loss:{loss_sum / token_count:.4f}")
    return loss_sum / token_count'''

SCORE_FIRST = '''

def eval_val_ttt(model, val_tokens, seq_len, chunk_tokens, lr):
    """Legal score-first TTT: score each chunk, then train on it; never train the last chunk."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_sum, token_count = 0.0, 0
    num_chunks = (val_tokens.numel() - 1) // chunk_tokens
    for ci in range(num_chunks):
        chunk = val_tokens[ci * chunk_tokens:(ci + 1) * chunk_tokens + 1]
        with torch.no_grad():
            loss_sum += model(chunk[:-1], chunk[1:]).item() * chunk_tokens
            token_count += chunk_tokens
        if ci == num_chunks - 1:
            break
        loss = model(chunk[:-1], chunk[1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss_sum / token_count'''

NGRAM = '''

def eval_val_ngram(model, val_tokens, table_bits=20):
    """Blend the model with a hashed n-gram cache keyed on (context, target)."""
    mask = (1 << table_bits) - 1
    ctx_counts = np.zeros(1 << table_bits, dtype=np.int64)
    full_counts = np.zeros(1 << table_bits, dtype=np.int64)
    toks = val_tokens.numpy()
    with torch.no_grad():
        logp = torch.log_softmax(model(val_tokens[:-1]).float(), dim=-1)
    nll_sum = 0.0
    for i in range(2, toks.size):
        y = int(toks[i])
        ctx_key = (int(toks[i - 2]) * 1000003 ^ int(toks[i - 1])) & mask
        full_key = (ctx_key ^ (y * 2654435761)) & mask
        p_model = math.exp(logp[i - 1, y].item())
        p_ngram = full_counts[full_key] / max(ctx_counts[ctx_key], 1)
        nll_sum += -math.log(0.8 * p_model + 0.2 * p_ngram)
        ctx_counts[ctx_key] += 1
        full_counts[full_key] += 1
    return nll_sum / (toks.size - 2)'''

GPTQ = '''

def collect_hessians(model, tokens, seq_len, n_batches=8):
    """Accumulate X^T X of every Linear input for GPTQ."""
    hessians = {}

    def make_hook(name):
        def hook(module, inputs, output):
            x = inputs[0].reshape(-1, inputs[0].shape[-1]).float()
            hessians[name] = hessians.get(name, 0) + x.T @ x
        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for b in range(n_batches):
            model(tokens[b * seq_len:(b + 1) * seq_len])
    for handle in handles:
        handle.remove()
    return hessians'''

NETWORK = '''

def fetch_prior(url):
    """Download a prior table at evaluation time."""
    import urllib.request
    with urllib.request.urlopen(url) as response:
        return response.read()'''

DEFAULT_EVAL = '''    t1 = time.perf_counter()
    val_loss = eval_val_sliding(model, val_tokens, args.seq_len, args.eval_stride)
    val_bpb = val_loss / math.log(2) * 0.41053
    print(f"final_sliding_window_exact val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f} "
          f"eval_time:{1000 * (time.perf_counter() - t1):.0f}ms")'''


def script(extra_hparams="", extra_funcs="", pre_serialize="", eval_block=DEFAULT_EVAL, train_pattern="train_files"):
    text = (TEMPLATE.replace("#EXTRA_HPARAMS#\n", extra_hparams + "\n" if extra_hparams else "")
            .replace("#EXTRA_FUNCS#", extra_funcs).replace("#PRE_SERIALIZE#\n", pre_serialize)
            .replace("#EVAL#", eval_block))
    return text.replace("TokenStream(args.train_files)", f"TokenStream(args.{train_pattern})")


def bpb_for(loss: float, denominator: int = CANONICAL_BYTES, tokens: int = VAL_TOKENS) -> float:
    return loss / math.log(2) * tokens / denominator


def log_text(code: str, seed: str, loss: float, *, model_bytes=15_850_000, code_bytes=None, train_ms=599_000,
             eval_ms=95_000, denominator=CANONICAL_BYTES, extra="", logged_code=None, tag="final_sliding_window_exact"):
    code_bytes = len(code.encode()) if code_bytes is None else code_bytes
    bpb = bpb_for(loss, denominator)
    lines = [logged_code if logged_code is not None else code, "=" * 100,
             f"val_loader:shards pattern=./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin tokens:{VAL_TOKENS}",
             "world_size:8 grad_accum_steps:1", f"seed:{seed}",
             f"step:1000/20000 train_loss:2.3000 train_time:{train_ms // 10}ms step_avg:59.90ms",
             f"stopping_early: wallclock_cap train_time:{train_ms}ms step:10000/20000"]
    if extra:
        lines.append(extra)
    lines += [f"Serialized model int8+zlib: {model_bytes} bytes", f"Code size: {code_bytes} bytes",
              f"Total submission size int8+zlib: {model_bytes + code_bytes} bytes",
              f"{tag} val_loss:{loss:.8f} val_bpb:{bpb:.8f} eval_time:{eval_ms}ms"]
    return "\n".join(lines) + "\n"


def write(name: str, title: str, why: str, files: dict[str, str], *, claims: dict | None = None,
          log_kwargs: dict | None = None, code_for_logs: str | None = None, omit: tuple[str, ...] = ()) -> None:
    folder = HERE / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    shipped = files["train_gpt.py"] if "train_gpt.py" in files else ""
    code = code_for_logs if code_for_logs is not None else shipped
    per_seed = {}
    for seed, loss in SEEDS.items():
        kwargs = dict(log_kwargs or {})
        text = log_text(code, seed, loss, **kwargs)
        files = {**files, f"train_seed{seed}.log": text}
        denominator = kwargs.get("denominator", CANONICAL_BYTES)
        per_seed[seed] = {"val_loss": loss, "val_bpb": round(bpb_for(loss, denominator), 8)}
    mean_loss = sum(s["val_loss"] for s in per_seed.values()) / len(per_seed)
    mean_bpb = sum(s["val_bpb"] for s in per_seed.values()) / len(per_seed)
    model_bytes = (log_kwargs or {}).get("model_bytes", 15_850_000)
    meta = {"schema_version": 1, "name": title, "author": "pgolf-harness examples", "github_id": "pgolf-harness",
            "date": "2026-03-25", "track": "10min_16mb", "val_loss": round(mean_loss, 8),
            "val_bpb": round(mean_bpb, 8), "bytes_total": model_bytes + len(code.encode()),
            "seeds": per_seed}
    meta.update(claims or {})
    files["submission.json"] = json.dumps(meta, indent=2) + "\n"
    files["README.md"] = f"# {title}\n\nAn example written for the pgolf-harness tests. {why}\n"
    for rel, content in files.items():
        if rel not in omit:
            (folder / rel).write_text(content, encoding="utf-8")


def shim(code: str) -> str:
    payload = base64.b85encode(lzma.compress(code.encode(), preset=9)).decode()
    return f'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("{payload}")))\n'


def main() -> None:
    preeval = script(HPARAM_TTT, PREEVAL_TTT,
                     "    if args.ttt_enabled:\n        ttt_adapt(model, val_tokens, args.seq_len, args.ttt_epochs, 1e-4)\n")
    write("illegal_preeval_ttt", "Pre-quant TTT on validation tokens",
          "It fine-tunes on val_tokens for several epochs before serializing, then scores the same tokens "
          "(TTT-PREEVAL-VAL).", {"train_gpt.py": preeval})
    write("illegal_shimmed_preeval_ttt", "Pre-quant TTT inside a self-extracting shim",
          "The same pre-quant TTT, shipped as an lzma+base85 self-extracting train_gpt.py (TTT-PREEVAL-VAL "
          "after decoding).", {"train_gpt.py": shim(preeval)})
    write("illegal_multipass_ttt", "Multi-epoch TTT reporting the last epoch",
          "Each epoch scores then trains over the whole validation stream; the last epoch's score is reported "
          "(TTT-MULTIPASS-SCORE).",
          {"train_gpt.py": script(HPARAM_TTT, MULTIPASS, "", "    val_loss = eval_val_ttt_epochs(model, val_tokens, "
                                  "args.seq_len, args.ttt_epochs, 0.002)\n    val_bpb = val_loss / math.log(2) * 0.41053\n"
                                  "    print(f\"final_ttt val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f}\")")})
    write("illegal_rescore", "Score-first TTT, then a re-score with the adapted model",
          "The first pass is legal score-first TTT; the reported number comes from a second pass over the same "
          "tokens with the adapted model (RESCORE-S1).",
          {"train_gpt.py": script(HPARAM_TTT, SCORE_FIRST, "",
                                  "    ttt_loss = eval_val_ttt(model, val_tokens, args.seq_len, 32768, 0.002)\n"
                                  "    print(f\"legal_ttt val_loss:{ttt_loss:.4f}\")\n" + DEFAULT_EVAL)})
    write("illegal_ngram_cache", "Hashed n-gram cache keyed on the target",
          "The cache key mixes in the token being scored and only the gold entry is ever formed "
          "(NGRAM-TARGET-IN-KEY).",
          {"train_gpt.py": script("", NGRAM, "", "    val_loss = eval_val_ngram(model, val_tokens)\n"
                                  "    val_bpb = val_loss / math.log(2) * 0.41053\n"
                                  "    print(f\"final_ngram_exact val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f}\")")})
    write("illegal_gptq_val_calibration", "GPTQ Hessians from validation tokens",
          "Quantization statistics are collected on val_tokens (GPTQ-CALIB-VAL).",
          {"train_gpt.py": script("", GPTQ, "    hessians = collect_hessians(model, val_tokens, args.seq_len)\n"
                                            "    print(f\"GPTQ:collected {len(hessians)} Hessians in 0.4s\")\n")})
    write("illegal_train_on_val", "Training stream reads the validation shards",
          "The training loader is pointed at fineweb_val_* (TRAIN-ON-VAL).",
          {"train_gpt.py": script(train_pattern="val_files")})
    write("illegal_network_at_eval", "Downloads a prior during evaluation",
          "The evaluation fetches a file over the network (NETWORK-AT-EVAL).",
          {"train_gpt.py": script("", NETWORK, "", "    prior = fetch_prior(os.environ.get(\"PRIOR_URL\", "
                                  "\"https://example.com/prior.bin\"))\n    print(f\"prior_bytes:{len(prior)}\")\n" + DEFAULT_EVAL)})
    legal = script()
    write("legal_score_first_ttt", "Legal score-first TTT (near-miss)",
          "It slices val_tokens, calls backward and steps an optimizer, but every chunk is scored before it is "
          "trained on and the last chunk is never trained: legal, no error finding expected.",
          {"train_gpt.py": script(HPARAM_TTT, SCORE_FIRST, "",
                                  "    val_loss = eval_val_ttt(model, val_tokens, args.seq_len, 32768, 0.002)\n"
                                  "    val_bpb = val_loss / math.log(2) * 0.41053\n"
                                  "    print(f\"legal_ttt_exact val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f} eval_time:95000ms\")")},
          log_kwargs={"tag": "legal_ttt_exact"})
    write("illegal_over_cap", "Artifact over the decimal cap",
          "Every seed logs a total above 16,000,000 bytes (ARTIFACT-CAP-16MB).", {"train_gpt.py": legal},
          log_kwargs={"model_bytes": 16_020_000})
    stub = 'exec(open(__file__.replace("train_gpt.py", "train_gpt_impl.py")).read())\n'
    write("illegal_exec_stub", "A loader stub over an uncounted sibling script",
          "train_gpt.py execs train_gpt_impl.py, whose bytes the logs do not count; counted, every seed is over "
          "the cap (CODE-COUNTING, ARTIFACT-CAP-16MB).", {"train_gpt.py": stub, "train_gpt_impl.py": legal},
          log_kwargs={"model_bytes": 15_997_000})
    write("warned_claim_mismatch", "Claimed score better than the logs",
          "submission.json claims 1.1500 while the three logs average about 1.2279: a SIGNIFICANCE warning (the "
          "rulebook rates claims that do not equal the logs as warning-strength; the record is not accepted as "
          "claimed).",
          {"train_gpt.py": legal}, claims={"val_bpb": 1.15, "seeds": {s: {"val_bpb": 1.15} for s in SEEDS}})
    write("illegal_over_time", "Training and evaluation over their budgets",
          "The training loop ran 652 s and the scored evaluation 701 s (TRAIN-TIME-600, EVAL-TIME-600).",
          {"train_gpt.py": legal}, log_kwargs={"train_ms": 652_000, "eval_ms": 701_000})
    write("illegal_byte_denominator", "Inflated byte denominator",
          "The reported bpb implies 164.6 M validation bytes instead of about 151.07 M (BPB-BYTE-LUT).",
          {"train_gpt.py": legal}, log_kwargs={"denominator": 164_594_398})
    write("illegal_log_code_mismatch", "Logs produced by other code",
          "The source dumped at the top of every log is not the shipped train_gpt.py (LOG-CODE-CONSISTENCY).",
          {"train_gpt.py": legal}, code_for_logs=script("", NGRAM))
    write("illegal_layout", "Missing files",
          "No train logs and no README.md; submission.json is not valid JSON (SUBMISSION-FORMAT).",
          {"train_gpt.py": legal}, omit=("train_seed1337.log", "train_seed42.log", "train_seed2025.log", "README.md"))
    (HERE / "illegal_layout" / "submission.json").write_text('{"name": "Missing files", "val_bpb": 1.2,\n')


if __name__ == "__main__":
    main()
