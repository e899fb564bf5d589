"""Fixtures for the data-access and scoring rules: a runner over source text and small C/README fixtures."""

from __future__ import annotations

import pytest

from rules.engine import check_source


@pytest.fixture
def violations_of():
    """Return a function running all rules over TEXT and keeping the violations of one rule ID."""

    def run(rule_id: str, text: str):
        result = check_source(text)
        assert not result.problems, result.problems
        return [v for v in result.findings if v.rule == rule_id]

    return run


GATED_C = """\
int process(const unsigned short *tokens, long n, const unsigned char *boundary_lut, unsigned short *hint) {
    for (long i = 0; i < n; ++i) {
        const unsigned short tok = tokens[i];
        const unsigned char is_boundary = boundary_lut[tok];
        if (!is_boundary) {
            hint[i] = 7;
        } else {
            hint[i] = 0;
        }
    }
    return 0;
}
"""

CAUSAL_C = """\
void run(const unsigned short *tokens, const long *pos, int n, const unsigned char *bnd, int *hints) {
    for (int i = 0; i < n; i++) {
        long p = pos[i];
        unsigned short tok = tokens[p];
        unsigned short prev_tok = p > 0 ? tokens[p - 1] : 0;
        int is_bnd = bnd[prev_tok];
        hints[i] = is_bnd ? -1 : 3;
        int tok_is_bnd = bnd[tok];
        if (tok_is_bnd) { update(tok); }
    }
}
"""


@pytest.fixture(params=[("gated.c", GATED_C, 5), ("causal.cpp", CAUSAL_C, None)], ids=["gated", "causal"])
def native_case(request):
    """(path, C source, expected violation line or None)."""
    return request.param
