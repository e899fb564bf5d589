"""The shared analysis core of the static rules: one set of facts per Python unit (call graph, validation-data
taint, events, environment-flag guards, data flow, evaluation passes, score-before-update), computed once and read
by every rule through ``Rule.facts``. Rules ask; they never recompute."""
