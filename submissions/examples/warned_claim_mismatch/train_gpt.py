"""Example submission: a compact GPT trainer in the baseline's shape (logs its own source, key:value lines)."""
import glob
import io
import math
import os
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn.functional as F


class Hyperparameters:
    data_path = os.environ.get("DATA_PATH", "./data/datasets/fineweb10B_sp1024")
    train_files = os.path.join(data_path, "fineweb_train_*.bin")
    val_files = os.path.join(data_path, "fineweb_val_*.bin")
    seed = int(os.environ.get("SEED", 1337))
    seq_len = int(os.environ.get("TRAIN_SEQ_LEN", 1024))
    iterations = int(os.environ.get("ITERATIONS", 20000))
    max_wallclock_seconds = float(os.environ.get("MAX_WALLCLOCK_SECONDS", 600.0))
    eval_stride = int(os.environ.get("EVAL_STRIDE", 64))
    lr = float(os.environ.get("LR", 0.04))


def load_data_shard(path):
    header = np.fromfile(path, dtype="<i4", count=256)
    assert header[0] == 20240520 and header[1] == 1
    return torch.from_numpy(np.fromfile(path, dtype="<u2", count=int(header[2]), offset=1024).astype(np.int64))


def load_validation_tokens(pattern):
    return torch.cat([load_data_shard(f) for f in sorted(glob.glob(pattern))])


class TokenStream:
    def __init__(self, pattern):
        self.tokens = torch.cat([load_data_shard(f) for f in sorted(glob.glob(pattern))])
        self.pos = 0

    def next_batch(self, n):
        if self.pos + n + 1 > self.tokens.numel():
            self.pos = 0
        chunk = self.tokens[self.pos:self.pos + n + 1]
        self.pos += n
        return chunk[:-1], chunk[1:]


class GPT(torch.nn.Module):
    def __init__(self, vocab=1024, dim=64):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.mix = torch.nn.Linear(dim, dim)

    def forward(self, x, y=None):
        h = torch.cumsum(self.emb(x), dim=-1 if x.dim() == 1 else 1)
        logits = self.mix(h) @ self.emb.weight.T
        if y is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.view(-1))


def eval_val_sliding(model, val_tokens, seq_len, stride):
    loss_sum, token_count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for ws in range(0, val_tokens.numel() - seq_len, stride):
            x = val_tokens[ws:ws + seq_len]
            y = val_tokens[ws + 1:ws + seq_len + 1]
            nll = F.cross_entropy(model(x).float(), y, reduction="none")
            s = 0 if ws == 0 else seq_len - stride
            loss_sum += nll[s:].sum().item()
            token_count += seq_len - s
    return loss_sum / token_count



def serialize(model):
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return zlib.compress(buf.getvalue(), 9)


def main():
    args = Hyperparameters()
    code = open(__file__).read()
    print(code)
    print("=" * 100)
    torch.manual_seed(args.seed)
    model = GPT()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    train_stream = TokenStream(args.train_files)
    val_tokens = load_validation_tokens(args.val_files)
    print(f"val_loader:shards pattern={args.val_files} tokens:{val_tokens.numel()}")
    print(f"seed:{args.seed}")
    t0 = time.perf_counter()
    for step in range(args.iterations):
        x, y = train_stream.next_batch(args.seq_len)
        loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if time.perf_counter() - t0 > args.max_wallclock_seconds:
            print(f"stopping_early: wallclock_cap train_time:{1000 * (time.perf_counter() - t0):.0f}ms step:{step}")
            break
    blob = serialize(model)
    print(f"Serialized model int8+zlib: {len(blob)} bytes")
    print(f"Code size: {len(code.encode())} bytes")
    print(f"Total submission size int8+zlib: {len(blob) + len(code.encode())} bytes")
    t1 = time.perf_counter()
    val_loss = eval_val_sliding(model, val_tokens, args.seq_len, args.eval_stride)
    val_bpb = val_loss / math.log(2) * 0.41053
    print(f"final_sliding_window_exact val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f} "
          f"eval_time:{1000 * (time.perf_counter() - t1):.0f}ms")


if __name__ == "__main__":
    main()
