"""An application module whose import fails inside its own code."""

raise RuntimeError("this module fails at import time")
