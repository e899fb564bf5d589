"""Create a file in system and user folders outside the work folder."""
import json
import os

T = json.loads(os.environ["HOSTILE"])
for folder in T["outside"]:
    target = os.path.join(folder, ".pgolf-hostile-" + T["token"])
    try:
        with open(target, "w") as fh:
            fh.write("planted by an untrusted run")
        print("LEAK wrote", target)
    except OSError as exc:
        print("refused:", folder, exc)
