"""TTT-WARMUP-ON-VAL: compile warm-ups that train a throwaway adapter on validation tokens."""

from __future__ import annotations

from rules.analysis.evidence import describe_path
from rules.base import Invalid, Rule, Valid

_WARMUP_VAL = '''import torch
def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    for bsz in [64]:
        adapter = torch.nn.Linear(4, 4)
        opt = torch.optim.AdamW(adapter.parameters())
        row = val_tokens[:1025]
        model(row[:-1], row[1:], lora=adapter).sum().backward()
        opt.step()
        del adapter, opt
    total = 0.0
    for i in range(0, val_tokens.numel(), 1024):
        with torch.no_grad():
            total += model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]).item()
    print(total)
main()
'''

_WARMUP_HELPER = '''import torch
def warm_up(model, row):
    adapter = torch.nn.Linear(4, 4)
    opt = torch.optim.AdamW(adapter.parameters())
    model(row[:-1], row[1:], lora=adapter).sum().backward()
    opt.step()
    del adapter, opt
def main():
    val_tokens = torch.load("fineweb_val_000000.bin")
    model = torch.nn.Linear(4, 4)
    warm_up(model, val_tokens[:1025])
    total = 0.0
    for i in range(0, val_tokens.numel(), 1024):
        with torch.no_grad():
            total += model(val_tokens[i:i + 1024], val_tokens[i + 1:i + 1025]).item()
    print(total)
main()
'''


class WarmupOnVal(Rule):
    """Flags a compile warm-up that runs backward and an optimizer step on validation tokens with a freshly built
    adapter that is deleted afterwards.

    Why: disputed in the PR #1530 thread (dexhunter: it matches the #677 adapt-before-score pattern; msisovic: the
    state is discarded); maintainers merged it, later stacks switched to random tokens. Community dispute, tolerated:
    a warning. Warm-ups whose trained state survives into scoring are TTT-PREEVAL-VAL errors instead.

    Instead: warm up with `torch.randint` tokens and log that no validation data was used (#1855).
    """

    ID = "TTT-WARMUP-ON-VAL"
    CODE = "PG205"
    MESSAGE = "Compile warm-up trains a throwaway adapter on validation tokens."
    VALID = [Valid(_WARMUP_VAL.replace('row = val_tokens[:1025]', 'row = torch.randint(0, 1024, (1025,))'),
                   name="warm-up on random tokens"),
             Valid(_WARMUP_HELPER.replace("warm_up(model, val_tokens[:1025])",
                                          'warm_up(model, torch.load("fineweb_train_000000.bin")[:1025])'),
                   name="warm-up helper fed training tokens")]
    INVALID = [Invalid(_WARMUP_VAL, expected_line=9, expected_severity="warning", name="warm-up on val, deleted"),
               Invalid(_WARMUP_HELPER, expected_line=5, expected_severity="warning",
                       name="warm-up helper fed validation tokens")]

    def finish(self) -> None:
        for site in self.facts.causality.sites:
            if not site.throwaway or not site.pre_eval_paths:
                continue
            path = site.pre_eval_paths[0]
            severity, guards = self.gated_severity(path.nodes, "warning")
            evidence, _ = describe_path(self.facts, site, path)
            evidence.append((site.step.line, f"trains `{site.throwaway}`, built locally and deleted afterwards"))
            self.report(site.backward.node, f"Warm-up trains a throwaway `{site.throwaway}` on validation data "
                        f"(line {site.backward.line}); use random tokens.", severity=severity,
                        evidence=evidence + guards)
