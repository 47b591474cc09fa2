"""A/B serving: version 2.0 of every endpoint beside 1.0, and nginx splitting clients between them.

    python -m scripts.ab start [--percent 10] [--archive featureviz_v2.mar] [--listen 127.0.0.1:8090]
    python -m scripts.ab stop

`start` expects the TorchServe of `python -m scripts.server start` (version 1.0 from config.properties),
registers the 2.0 archive under every model name through the management API, and starts nginx
on --listen: `/predictions/<name>` goes to `<name>/2.0` for `--percent` percent of clients,
chosen by a hash of the `X-Client-Id` header (the client address where there is none), so each
client stays on its version; `/predictions/<name>/<version>` passes through unchanged.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse

from scripts import server

ROOT = server.ROOT
NGINX_DIR = os.path.join(ROOT, "build", "nginx")

NGINX_CONF = """\
worker_processes 1;
daemon on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 512; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_max_body_size 8m;
    proxy_read_timeout 3600s;
    proxy_send_timeout 3600s;
    proxy_buffering off;  # streamed answers reach the client chunk by chunk
    # Slow and idle clients: as the cluster gateway (docs/reliability.md, "Slow and idle clients").
    client_header_timeout 15s;
    client_body_timeout 60s;
    send_timeout 120s;
    keepalive_timeout 75s;
    limit_conn_zone $binary_remote_addr zone=ab_per_address:1m;
    limit_conn ab_per_address 32;
    limit_conn_status 429;
    map $http_x_client_id $ab_client {{
        "" $remote_addr;
        default $http_x_client_id;
    }}
    split_clients "${{ab_client}}" $ab_version {{
{split}
    }}
    server {{
        listen {listen};
        location ~ ^/predictions/([A-Za-z0-9_.-]+)/?$ {{
            proxy_pass {upstream}/predictions/$1/$ab_version;
        }}
        location /predictions/ {{
            proxy_pass {upstream};
        }}
        location / {{
            return 404;
        }}
    }}
}}
"""


def nginx_conf(percent: float, listen: str, upstream: str, prefix: str) -> str:
    if percent <= 0:
        split = '        * "1.0";'
    elif percent >= 100:
        split = '        * "2.0";'
    else:
        split = f'        {percent:g}% "2.0";\n        * "1.0";'
    return NGINX_CONF.format(prefix=prefix, listen=listen, upstream=upstream, split=split)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not found:
        sys.exit("error: nginx is not installed (make serve-ab installs Debian's nginx-light)")
    return found


def start_nginx(conf_text: str, prefix: str = NGINX_DIR):
    stop_nginx(prefix)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(prefix, sub), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    subprocess.run([nginx_binary(), "-p", prefix, "-c", conf], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def stop_nginx(prefix: str = NGINX_DIR):
    conf = os.path.join(prefix, "nginx.conf")
    if os.path.exists(os.path.join(prefix, "nginx.pid")):
        subprocess.run([nginx_binary(), "-p", prefix, "-c", conf, "-s", "stop"], check=False)
        for _ in range(50):
            if not os.path.exists(os.path.join(prefix, "nginx.pid")):
                break
            time.sleep(0.1)


def _management(props, workdir, method, path):
    body = server.call(f"{props['management_address']}{path}", server.keys(workdir)["management"],
                       method, timeout=600)
    return json.loads(body or b"null")


def register_version(props: dict, workdir: str, archive: str, version: str = "2.0"):
    """Registers `archive` under every model name of the server, unless that version is there."""
    for name in server.registered_models(props):
        described = _management(props, workdir, "GET", f"/models/{name}/all")
        if any(entry["modelVersion"] == version for entry in described):
            continue
        query = urllib.parse.urlencode({"url": archive, "model_name": name, "initial_workers": 1,
                                        "synchronous": "true"})
        _management(props, workdir, "POST", f"/models?{query}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--percent", type=float, default=float(os.environ.get("AB_PERCENT", 10)))
    parser.add_argument("--archive", default="featureviz_v2.mar")
    parser.add_argument("--listen", default="127.0.0.1:8090")
    parser.add_argument("--config", default=os.path.join(ROOT, "config.properties"))
    args = parser.parse_args()
    if args.action == "stop":
        stop_nginx()
        return
    if not 0 <= args.percent <= 100:
        sys.exit("error: AB_PERCENT must be between 0 and 100")
    props = server.read_properties(args.config)
    register_version(props, ROOT, args.archive)
    start_nginx(nginx_conf(args.percent, args.listen, props["inference_address"], NGINX_DIR))
    print(f"A/B proxy on http://{args.listen}: {args.percent:g}% of clients (by X-Client-Id) on 2.0, "
          f"the rest on 1.0; models {', '.join(server.registered_models(props))}")


if __name__ == "__main__":
    main()
