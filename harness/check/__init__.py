"""The static verdict: every stage that judges a loaded submission without running it, and the pipeline (`check_path`)."""
