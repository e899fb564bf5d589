"""Reading what a submission folder holds, never writing it: files, logs, submission.json, and every piece of code
that runs (self-extracting shims decoded statically)."""
