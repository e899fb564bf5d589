"""Remount the read-only submission writable (mount(2) directly), then write into it."""
import ctypes
import json
import os

T = json.loads(os.environ["HOSTILE"])
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
path = T["submission"].encode()
if libc.mount(path, path, None, MS_REMOUNT | MS_BIND, None) != 0:
    print("remount refused: errno", ctypes.get_errno())
try:
    with open(os.path.join(T["submission"], "README.md"), "w") as fh:
        fh.write("forged")
    print("LEAK wrote the submission")
except OSError as exc:
    print("refused:", exc)
