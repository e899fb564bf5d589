"""Create a file in the harness checkout."""
import json
import os

T = json.loads(os.environ["HOSTILE"])
target = os.path.join(T["checkout"], ".pgolf-hostile-" + T["token"])
try:
    with open(target, "w") as fh:
        fh.write("planted by an untrusted run")
    print("LEAK wrote", target)
except OSError as exc:
    print("refused:", exc)
