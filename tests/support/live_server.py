"""Serve the app over real HTTP from a background thread, for the browser tests."""

import threading

from werkzeug.serving import make_server


class LiveServer:
    """The app on 127.0.0.1 and a free port, many requests at once (the page polls while it posts)."""

    def __init__(self, app, host="127.0.0.1"):
        self.server = make_server(host, 0, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()
