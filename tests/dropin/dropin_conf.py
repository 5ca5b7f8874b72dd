"""A config module for ``-c python:dropin_conf`` (issue H)."""

max_requests = 1000


def on_starting(server):
    server.log.info("--max-requests %d from the module", server.cfg.max_requests)
