"""The fakes' HTTP servers, each in a thread of its own."""

import threading
from socketserver import BaseServer

# How soon a server's loop notices ``shutdown()``. socketserver's default, half a second,
# was a quarter of a second on average in the teardown of nearly every test (the Graph
# API's fake is in every app's settings): minutes of the suite spent waiting.
POLL_SECONDS = 0.01


def serve(server: BaseServer) -> threading.Thread:
    """``server`` answering in a daemon thread, stopped within ``POLL_SECONDS`` of its
    ``shutdown()``."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True
    )
    thread.start()
    return thread
