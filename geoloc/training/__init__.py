"""Training as a library: build the objects of a config (:mod:`.build`), fit one model
(:mod:`.fit`), produce the outputs the policy is fitted on, cross-fitted or not
(:mod:`.calibrate`), and fit the char n-gram fusion (:mod:`.fusion`). ``geoloc-train``
(:mod:`geoloc.cli.train`) composes them; nothing here reads the command line."""
