"""specwise: decide whether speculative decoding pays off on an LLM deployment.

Stages (each a subpackage): plan, estimate, simulate, bench produce typed results
(see :mod:`specwise.schemas`); decide, report and monitor consume them.
"""

__version__ = "0.1.0"
