"""Overwrite the harness's logs and reports next to the work folder (its own seed's, another seed's)."""
import json
import os

T = json.loads(os.environ["HOSTILE"])
for target in T["results_files"]:
    try:
        with open(target, "w") as fh:
            fh.write("forged")
        print("LEAK wrote", target)
    except OSError as exc:
        print("refused:", target, exc)
