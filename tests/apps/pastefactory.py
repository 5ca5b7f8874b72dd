"""A PasteDeploy app factory (tests of --paste)."""


def make_app(global_conf, greeting="?", **local_conf):
    body = f"{greeting} {global_conf.get('who', '')}".strip().encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    return app
