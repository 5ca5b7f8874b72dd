# Example prefork configuration. The names are gunicorn's: a gunicorn.conf.py works the same way.
# Load it with `prefork -c conf/prefork.conf.py`, or name it ./prefork.conf.py to have it read by
# default. Every setting is in docs/settings.md; `prefork --print-config` shows the effective values.
import os

wsgi_app = "examples.hello:app"
bind = ["unix:/run/prefork/prefork.sock", "127.0.0.1:8000"]
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = "sync"  # "threaded" (or gunicorn's "gthread") with threads = N for I/O-bound apps
timeout = 30
graceful_timeout = 30
keepalive = 5  # nginx keeps upstream connections; give them some idle time
max_requests = 10000
max_requests_jitter = 1000
limit_request_body = 100 * 1024 * 1024
forwarded_allow_ips = "127.0.0.1,::1"  # nginx on the same host; unix-socket peers are trusted anyway
accesslog = "-"
loglevel = "info"


def post_fork(server, worker):
    server.log.info("worker %s forked", worker.pid)
