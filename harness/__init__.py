"""The compliance harness: judges Parameter Golf submissions (docs/architecture.md names every room and module)."""
