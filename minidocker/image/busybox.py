"""Make a tiny root filesystem from the host's static busybox: the base image of the lab.

Like an ``lxc-create -t`` template on the LXC slide, but without the internet: one static
binary (``busybox-static`` on Debian) plus a symlink per applet, and the few files every
Linux userland expects (``/etc/passwd``, ``/etc/group``, empty mount points).
"""

from __future__ import annotations

import os
import shutil
import subprocess

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
nogroup:x:65534:
"""


def find_static_busybox() -> str:
    """Path of a *statically linked* busybox on the host (a dynamic one would need the
    host's libc inside the image)."""
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            with open(path, "rb") as f:
                head = f.read(1 << 16)
            # A dynamically linked ELF names its interpreter (ld-linux) near the start.
            if b"ld-linux" not in head and b"ld-musl" not in head:
                return path
    raise FileNotFoundError("no static busybox on this host: install it with "
                            "'apt-get install busybox-static'")


def make_busybox_rootfs(dest: str) -> None:
    """Fill the empty directory ``dest`` with a busybox userland."""
    busybox = find_static_busybox()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "proc", "sys",
              "dev", "var/log", "home"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    os.chmod(os.path.join(dest, "tmp"), 0o1777)
    os.chmod(os.path.join(dest, "root"), 0o700)
    shutil.copy2(busybox, os.path.join(dest, "bin/busybox"))
    applets = subprocess.run([busybox, "--list-full"], check=True, capture_output=True,
                             text=True).stdout.split()
    for applet in applets:
        link = os.path.join(dest, applet)
        if applet == "bin/busybox" or os.path.lexists(link):
            continue
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("/bin/busybox", link)
    with open(os.path.join(dest, "etc/passwd"), "w") as f:
        f.write(PASSWD)
    with open(os.path.join(dest, "etc/group"), "w") as f:
        f.write(GROUP)
