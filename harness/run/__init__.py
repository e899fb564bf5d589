"""Running submission code: the sandbox, the phase clock, `reproduce`, and the runtime probe with the code injected
into the probed process (inject/)."""
