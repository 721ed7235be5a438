"""A chat platform's receiving end for casebridge's deliveries.

Each request is verified with the official `standardwebhooks` package
(webhook-id, webhook-timestamp, webhook-signature over the raw body) before
it is trusted; a bad signature gets a 401, which casebridge dead-letters.
Answer 2xx quickly: casebridge retries anything else on its schedule.

    python receiver.py --port 8099 --secret whsec_...

The signing secret is in the answer to `PUT /v1/delivery` (shown once).
"""

import argparse
import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def serve(secret: str, port: int = 0, on_event=None) -> ThreadingHTTPServer:
    """Starts the receiver on 127.0.0.1:`port` (0: any free port) in a
    thread; `on_event(payload, headers)` gets each verified delivery."""
    hook = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            try:
                payload = hook.verify(body, dict(self.headers))
            except WebhookVerificationError as e:
                self.send_response(401)
                self.end_headers()
                self.wfile.write(f"bad signature: {e}".encode())
                return
            if on_event:
                on_event(payload, dict(self.headers))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--secret", required=True, help="the whsec_ signing secret")
    args = parser.parse_args()
    events = queue.Queue()
    server = serve(args.secret, args.port, lambda p, h: events.put((p, h)))
    print(f"Listening on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)")
    try:
        while True:
            payload, headers = events.get()
            print(headers.get("webhook-id"), json.dumps(payload))
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
