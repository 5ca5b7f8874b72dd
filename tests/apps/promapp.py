"""An application with prometheus_client metrics in multiprocess mode (PROMETHEUS_MULTIPROC_DIR)."""

from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess

HITS = Counter("app_hits", "Hits handled by the application")


def app(environ, start_response):
    if environ["PATH_INFO"] == "/app-metrics":
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        HITS.inc()
        body = b"hit"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
