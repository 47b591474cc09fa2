"""nginx as the local gateways start it (serving/nginx.py: `make serve-cluster`, `make serve-ab`): a
request body and an answer too large for its memory buffers go through its temp files, also where its
prefix is under a folder that only the user who started it can enter (a 0700 temp folder, a checkout
under /root)."""
import http.server
import os
import socket
import threading
import urllib.request

import pytest

from serving import nginx

pytestmark = [pytest.mark.deploy, pytest.mark.e2e]


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers a POST with its body four times over."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])) * 4
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_large_bodies_and_answers_pass_with_the_prefix_in_a_private_folder(tmp_path, upstream):
    os.chmod(tmp_path, 0o700)
    prefix, port = str(tmp_path / "gateway"), free_port()
    temp_paths = " ".join(f"{name}_temp_path {prefix}/{name};" for name in nginx.TEMP_FOLDERS)
    nginx.start(f"""pid {prefix}/nginx.pid; error_log {prefix}/error.log; daemon on;
        events {{}}
        http {{
            access_log off; client_max_body_size 16m; {temp_paths}
            server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://127.0.0.1:{upstream}; }} }}
        }}""", prefix)
    try:
        body = os.urandom(300_000)  # past client_body_buffer_size: nginx writes it to client_body/
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:  # 1.2 MB: through proxy/
            assert answer.status == 200 and answer.read() == body * 4
    finally:
        nginx.stop(prefix)
