"""Offline acceptance estimation for a draft/target pair (or n-gram) on the user's own prompts.

``specwise estimate`` generates (or reads) target continuations, runs one teacher-forced forward pass of
each model over every sequence, and derives the acceptance a speculative decoder would see at every
temperature from those logits (:mod:`.acceptance`, :mod:`.ngram`). :mod:`.validate` proves the estimate
with a real speculative sampling loop. torch/transformers are imported lazily: only :mod:`.models`,
:mod:`.pipeline` and :mod:`.validate` need them.
"""
