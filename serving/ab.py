"""A/B serving: version 2.0 of every endpoint beside 1.0, and nginx splitting clients between them.

    python -m serving ab start [--percent 10] [--archive featureviz_v2.mar] [--listen 127.0.0.1:8090]
    python -m serving ab stop

`start` expects the TorchServe of `python -m serving start` (version 1.0 from config.properties),
registers the 2.0 archive under every model name through the management API, and starts nginx from
deploy/ab/nginx.conf.template on --listen: `/predictions/<name>` goes to `<name>/2.0` for
`--percent` percent of clients, chosen by a hash of the `X-Client-Id` header (the client address
where there is none), so each client stays on its version; `/predictions/<name>/<version>` passes
through unchanged.
"""
import json
import os
import sys
import urllib.parse

from serving import ROOT, nginx, torchserve

TEMPLATE = os.path.join(ROOT, "deploy", "ab", "nginx.conf.template")
PREFIX = os.path.join(ROOT, "build", "nginx")


def nginx_conf(percent: float, listen: str, upstream: str, prefix: str) -> str:
    if percent <= 0:
        split = '* "1.0";'
    elif percent >= 100:
        split = '* "2.0";'
    else:
        split = f'{percent:g}% "2.0"; * "1.0";'
    return nginx.render(TEMPLATE, {"FEATUREVIZ_AB_PREFIX": prefix, "FEATUREVIZ_AB_LISTEN": listen,
                                   "FEATUREVIZ_AB_UPSTREAM": upstream, "FEATUREVIZ_AB_SPLIT": split})


def _management(props, workdir, method, path):
    body = torchserve.call(f"{props['management_address']}{path}", torchserve.keys(workdir)["management"],
                           method, timeout=600)
    return json.loads(body or b"null")


def register_version(props: dict, workdir: str, archive: str, version: str = "2.0"):
    """Registers `archive` under every model name of the server, unless that version is there."""
    for name in torchserve.registered_models(props):
        described = _management(props, workdir, "GET", f"/models/{name}/all")
        if any(entry["modelVersion"] == version for entry in described):
            continue
        query = urllib.parse.urlencode({"url": archive, "model_name": name, "initial_workers": 1,
                                        "synchronous": "true"})
        _management(props, workdir, "POST", f"/models?{query}")


def stop():
    nginx.stop(PREFIX)


def add_commands(commands):
    command = commands.add_parser("ab", help="version 2.0 beside 1.0 behind nginx (after `start`)")
    command.add_argument("action", choices=["start", "stop"])
    command.add_argument("--percent", type=float, default=float(os.environ.get("AB_PERCENT", 10)))
    command.add_argument("--archive", default="featureviz_v2.mar")
    command.add_argument("--listen", default="127.0.0.1:8090")
    command.add_argument("--config", default=os.path.join(ROOT, "config.properties"))
    command.set_defaults(run=run_command)


def run_command(args):
    if args.action == "stop":
        stop()
        return
    if not 0 <= args.percent <= 100:
        sys.exit("error: AB_PERCENT must be between 0 and 100")
    props = torchserve.read_properties(args.config)
    register_version(props, ROOT, args.archive)
    nginx.start(nginx_conf(args.percent, args.listen, props["inference_address"], PREFIX), PREFIX)
    print(f"A/B proxy on http://{args.listen}: {args.percent:g}% of clients (by X-Client-Id) on 2.0, "
          f"the rest on 1.0; models {', '.join(torchserve.registered_models(props))}")
