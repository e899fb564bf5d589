"""Tests for reference/bundle.py: one deterministic, self-contained train_gpt.py."""

from __future__ import annotations

from pathlib import Path

from reference.bundle import MODULE_ORDER, bundle

ROOT = Path(__file__).resolve().parents[2]


class TestBundle:
    """Determinism, self-containment and the committed submission."""

    def test_deterministic(self):
        """Two bundles of the same modules are byte-identical."""
        assert bundle() == bundle()

    def test_self_contained_and_compiles(self):
        """The bundle has no intra-package imports, one __future__ import, every module banner, and compiles."""
        text = bundle()
        assert "from reference" not in text and "import reference" not in text
        assert text.count("from __future__ import annotations") == 1
        assert all(f"# reference/{name}.py" in text for name in MODULE_ORDER)
        compile(text, "train_gpt.py", "exec")

    def test_committed_submission_matches(self):
        """submissions/my_run/train_gpt.py equals a fresh bundle (re-run the README command after edits)."""
        committed = ROOT / "submissions" / "my_run" / "train_gpt.py"
        assert committed.read_text(encoding="utf-8") == bundle()

    def test_line_budgets(self):
        """model.py and train_gpt.py stay within the house-style budget of about 400 lines."""
        for name, budget in (("model.py", 400), ("train_gpt.py", 465)):
            assert len((ROOT / "reference" / name).read_text().splitlines()) <= budget
