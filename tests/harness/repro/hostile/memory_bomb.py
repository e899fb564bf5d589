"""Allocate and touch memory in 32 MiB steps up to T["limit_mb"]."""
import json
import os

T = json.loads(os.environ["HOSTILE"])
chunks = []
for step in range(1, T["limit_mb"] // 32 + 1):
    block = bytearray(32 * 2**20)
    block[::4096] = b"1" * len(block[::4096])
    chunks.append(block)
    print("allocated", step * 32, flush=True)
print("LEAK allocated everything")
