"""List the harness checkout and read its files."""
import json
import os

T = json.loads(os.environ["HOSTILE"])
try:
    print("LEAK listing", json.dumps(sorted(os.listdir(T["checkout"]))))
except OSError as exc:
    print("refused:", exc)
try:
    with open(os.path.join(T["checkout"], "pyproject.toml")) as fh:
        print("LEAK read", fh.readline().strip())
except OSError as exc:
    print("refused:", exc)
