"""Issue I: scale-out, verified. Two prefork instances behind one real nginx upstream; one is reloaded
(HUP) and then stopped (TERM) while load runs: no request fails. And the Kubernetes manifest of
docs/deploying.md is valid YAML with the probes and grace period the text promises."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from helpers import NGINX, ROOT, free_port, running_nginx, start_server, wait_exit
from load import Load

HTTP = """
    upstream pool {{
        server 127.0.0.1:{a} max_fails=0;
        server 127.0.0.1:{b} max_fails=0;
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
"""


class Front:
    """What tests/load.py needs of a server: a way to connect."""

    def __init__(self, port: int) -> None:
        self.port = port

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


@pytest.mark.needs_root
@pytest.mark.skipif(NGINX is None, reason="needs nginx")
def test_two_instances_behind_nginx_one_reloaded_then_stopped_under_load(tmp_path):
    a = start_server(tmp_path, "-w", "2", "--keep-alive", "30")
    b = start_server(tmp_path, "-w", "2", "--keep-alive", "30", "--shutdown-delay", "1")
    port = free_port()
    try:
        with (
            running_nginx(tmp_path, HTTP.format(a=a.port, b=b.port, port=port), port),
            Load(Front(port), "/pid", clients=8) as load,
        ):
            load.wait_for(lambda s: s.ok > 100)
            b.signal(signal.SIGHUP)
            b.wait_log("Reload complete", timeout=30)
            load.wait_for(lambda s, seen=load.ok: s.ok > seen + 100)
            b.signal(signal.SIGTERM)
            assert wait_exit(b, 30) == 0
            load.wait_for(lambda s, seen=load.ok: s.ok > seen + 100)  # all on A now
        assert load.failures == [], load.failures[:5]
        assert load.ok > 300
        assert len(load.bodies) >= 3  # workers of both instances (and B's new generation) answered
    finally:
        a.stop()
        b.stop()


def test_the_kubernetes_manifest_is_valid_and_consistent():
    yaml = pytest.importorskip("yaml")
    documents = list(yaml.safe_load_all((Path(ROOT) / "docs" / "k8s" / "deployment.yaml").read_text()))
    kinds = {doc["kind"]: doc for doc in documents}
    assert set(kinds) == {"Deployment", "Service"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    assert container["command"] == ["prefork"]
    metrics_port = int(args[args.index("--metrics-bind") + 1].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == metrics_port
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    delay = float(args[args.index("--shutdown-delay") + 1])
    graceful = float(args[args.index("--graceful-timeout") + 1])
    assert pod["terminationGracePeriodSeconds"] > delay + graceful
    service_ports = kinds["Service"]["spec"]["ports"]
    assert [p["targetPort"] for p in service_ports] == ["http"]  # the metrics port stays internal
    # and prefork accepts the arguments as written
    from prefork.config import load

    settings, _ = load(args, {})
    assert settings.metrics_bind == "0.0.0.0:9100" and settings.shutdown_delay == delay
