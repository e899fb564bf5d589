"""Static rules over submission source, one rule per module, over the shared analysis core in rules/analysis/."""
