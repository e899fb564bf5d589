"""Fork until refused (bounded by T["limit"]); every child sleeps, so the harness must kill them."""
import json
import os
import sys
import time

T = json.loads(os.environ["HOSTILE"])
forked, refused = 0, None
for _ in range(T["limit"]):
    try:
        pid = os.fork()
    except OSError as exc:
        refused = exc
        break
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    forked += 1
print("forked", forked, "refused:", refused)
sys.stdout.flush()
if refused is None:
    print("LEAK not refused")
