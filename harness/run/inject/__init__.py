"""Code that runs inside the submission's own process during `probe` (never imported by the rest of harness/).

`launch.py` is the entry point of the probe subprocess; `tracer.py` installs the instrumentation (torch is imported
there, lazily). Neither imports anything from harness/: the probe process runs with the submission's sys.path only.
"""
