"""nginx run from a template in deploy/, with its files under one prefix folder."""
import os
import re
import shutil
import subprocess
import sys
import time

TEMP_FOLDERS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def render(template: str, values: dict) -> str:
    """The template's text with each ${NAME} of `values` filled in and everything else as written,
    as the pod's entrypoint does with envsubst (nginx's own $variables stay)."""
    with open(template) as f:
        text = f.read()
    return re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0),
                  text)


def binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not found:
        sys.exit("error: nginx is not installed (`make nginx` installs Debian's nginx-light)")
    return found


def start(conf_text: str, prefix: str):
    """nginx as a daemon on conf_text (which names prefix/nginx.pid), replacing the one there."""
    stop(prefix)
    for sub in TEMP_FOLDERS:
        os.makedirs(os.path.join(prefix, sub), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    # Started by root, nginx hands its workers to `nobody`, who may not reach the prefix (a checkout
    # under /root, a 0700 temp folder) and then fails every body or answer it must buffer to a file.
    # Its workers here are the user's own, as the other local servers are.
    as_starter = ["-g", "user root;"] if os.geteuid() == 0 else []
    subprocess.run([binary(), "-p", prefix, "-c", conf, *as_starter], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)


def stop(prefix: str):
    conf = os.path.join(prefix, "nginx.conf")
    if os.path.exists(os.path.join(prefix, "nginx.pid")):
        subprocess.run([binary(), "-p", prefix, "-c", conf, "-s", "stop"], check=False)
        for _ in range(50):
            if not os.path.exists(os.path.join(prefix, "nginx.pid")):
                break
            time.sleep(0.1)
