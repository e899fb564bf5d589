"""Write one byte at offset T["sparse_at"] (a file that large, no blocks used), then 8 MiB chunks into files of
T["fill_dir"] (a new file each T["file_mb"], or when one is too large) until refused or T["stop_mb"] is written, then
wait T["wait_s"] seconds for the harness."""
import errno
import json
import os
import time

T = json.loads(os.environ["HOSTILE"])
os.makedirs(T["fill_dir"], exist_ok=True)
if T.get("sparse_at"):
    with open(os.path.join(T["fill_dir"], "sparse.bin"), "wb", buffering=0) as fh:
        fh.seek(T["sparse_at"])
        try:
            fh.write(b"x")
            print("sparse write at", T["sparse_at"], "accepted", flush=True)
        except OSError as exc:
            print("sparse write at", T["sparse_at"], "refused: errno", exc.errno, flush=True)
chunk, written, index, stop = b"x" * (8 * 2**20), 0, 0, None
while written < T["stop_mb"] * 2**20 and stop is None:
    with open(os.path.join(T["fill_dir"], f"fill{index}.bin"), "wb", buffering=0) as fh:
        for _ in range(T["file_mb"] // 8):
            try:
                written += fh.write(chunk)
            except OSError as exc:
                if exc.errno == errno.EFBIG:
                    print("EFBIG at", fh.tell(), flush=True)
                else:
                    stop = exc
                break
    index += 1
print("written", written, "stopped:", stop, "errno", getattr(stop, "errno", None), flush=True)
if stop is None:
    print("LEAK wrote everything", flush=True)
time.sleep(T.get("wait_s", 0))
