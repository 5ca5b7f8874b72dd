"""Applications built by factories, for the MODULE:APP forms of the command line."""


def create_app(greeting="hi", punctuation="!"):
    body = f"{greeting}{punctuation}".encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    return app


application = create_app("default")
not_callable = 42
