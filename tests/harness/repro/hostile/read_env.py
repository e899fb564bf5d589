"""Look for secret-bearing variables: its own environment and every /proc/*/environ it can read."""
import os
import re

LOOKS_SECRET = re.compile(rb"TOKEN|SECRET|KEY")
for name, value in os.environ.items():
    if LOOKS_SECRET.search(name.encode()):
        print("LEAK env", name, value)
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                block = fh.read()
        except OSError:
            continue
        for item in block.split(b"\0"):
            if LOOKS_SECRET.search(item.split(b"=", 1)[0]):
                print("LEAK proc", pid, item.decode(errors="replace"))
print("done")
