"""Where shipped code prints a setting, and which settings only pace output (harness.check.dump_diff)."""

from __future__ import annotations

import pytest

from harness.check.dump_diff import only_paces_output, print_keys

LOOP = '''import os
class Args:
    every = int(os.environ.get("EVERY", 100))
    lr = float(os.environ.get("LR", 0.02))
    tied = True
def main(args, model, opt):
    token_lr = args.lr if args.tied else 0.1
    print(f"tied:{args.tied} embed_lr:{token_lr}")
    elapsed = 0.0
    for step in range(1000):
        {BODY}
'''


@pytest.mark.parametrize("code, names, keys", [
    # a variable assigned from the setting is printed under its own key
    (LOOP.replace("{BODY}", "pass"), ("lr", "LR"), {"embed_lr"}),
    # printed under its own name
    ('print(f"lr:{args.lr:.4f}")\n', ("lr",), {"lr"}),
    # near-miss: a model built from the setting is not the setting; its printed size says nothing of the value
    ('model = GPT(num_layers=args.num_layers)\nprint(f"params:{model.n}")\n', ("num_layers",), set()),
])
def test_print_keys(code, names, keys):
    """The keys a setting is printed under come from the code's f-strings and plain variables derived from it."""
    assert print_keys(code, names) == keys


@pytest.mark.parametrize("body, paces", [
    # VALID: the setting decides when to evaluate and log; the evaluation time is added up in a local
    ("should = step % args.every == 0\n        if should:\n            print(step)\n"
     "            elapsed += 1.0", True),
    # VALID: read directly in the test
    ("if args.every > 0 and step % args.every == 0:\n            print(step)", True),
    # INVALID near-miss: the same cadence averages weights (SWA), which changes the model
    ("if step % args.every == 0:\n            swa[0] += model.weight", False),
    # INVALID near-miss: the cadence steps the optimizer (gradient accumulation)
    ("if step % args.every == 0:\n            opt.step()", False),
    # INVALID: the setting is used in arithmetic the model sees
    ("opt.lr = 0.1 * step / args.every", False),
])
def test_only_paces_output(body, paces):
    """A setting read only by `if` tests whose bodies log or evaluate paces output; anything else changes the run."""
    assert only_paces_output(LOOP.replace("{BODY}", body), ("every", "EVERY")) is paces
