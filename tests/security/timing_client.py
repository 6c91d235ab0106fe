"""A client in a process of its own for the timing tests: an attacker is not inside the server.

Reads one JSON request a line on stdin (``{"path", "form", "headers"}``), sends it as a
url-encoded POST over one kept-alive HTTP connection, and writes one JSON line back: the wall
time of the request (``time.perf_counter`` from sending to the last byte of the body), status,
headers and body. Run as ``python -m tests.security.timing_client HOST PORT``.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from urllib.parse import urlencode


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    connection = http.client.HTTPConnection(host, port, timeout=120)
    for line in sys.stdin:
        asked = json.loads(line)
        body = urlencode(asked["form"])
        headers = {"Content-Type": "application/x-www-form-urlencoded", **asked.get("headers", {})}
        start = time.perf_counter()
        connection.request("POST", asked["path"], body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8")
        took = time.perf_counter() - start
        answer = {"wall": took, "status": response.status, "headers": response.getheaders(), "body": text}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
