"""The static verdict: every stage that judges a loaded submission without running it, and the pipeline
(`harness.check.pipeline.check_path`) that runs them in order."""
