"""A mixed, realistic workload for locust against examples/bench_app.py (any server serving it).

Users browse: mostly small pages and JSON, some uploads, a few large downloads and slow (10 ms,
database-like) requests, with a short think time. Run headless, e.g.
``locust -f benchmarks/locustfile.py --headless -u 50 -r 50 -t 60s --host http://127.0.0.1:8000``,
or through ``benchmarks/soak.py``, which also reloads the server while the users run.
"""

from locust import HttpUser, between, task

UPLOAD = b"x" * 65536


class Visitor(HttpUser):
    wait_time = between(0.01, 0.05)

    @task(10)
    def hello(self):
        self.client.get("/")

    @task(5)
    def json(self):
        with self.client.get("/json", catch_response=True) as response:
            if response.ok and not response.json().get("items"):
                response.failure("JSON without items")

    @task(2)
    def upload(self):
        with self.client.post("/post", data=UPLOAD, catch_response=True) as response:
            if response.ok and response.text != str(len(UPLOAD)):
                response.failure(f"server read {response.text} bytes of {len(UPLOAD)}")

    @task(2)
    def slow(self):
        self.client.get("/sleep")

    @task(1)
    def download(self):
        with self.client.get("/file", catch_response=True) as response:
            if response.ok and len(response.content) != 1 << 20:
                response.failure(f"file of {len(response.content)} bytes")
