"""List the home directory and read a file kept outside the run's folders."""
import json
import os

T = json.loads(os.environ["HOSTILE"])
try:
    print("LEAK home", json.dumps(sorted(os.listdir(T["home_dir"]))))
except OSError as exc:
    print("refused:", exc)
try:
    with open(T["secret_file"]) as fh:
        print("LEAK secret", fh.read().strip())
except OSError as exc:
    print("refused:", exc)
