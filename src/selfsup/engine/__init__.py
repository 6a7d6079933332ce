"""Training on Lightning: the run folder (:mod:`selfsup.engine.run`), configs
(:mod:`~selfsup.engine.configure`), the module every method runs in, checkpoints, training
(:mod:`~selfsup.engine.train`) and the evaluation of a run (:mod:`~selfsup.engine.evaluate`)."""
