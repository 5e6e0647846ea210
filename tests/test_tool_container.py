"""tools/container: the "Namespaces + cgroups: how can we bring this all together?" slide.

Run as a user would, reading what the container printed inside and checking that the
host is unchanged afterwards.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time

from conftest import TOOLS, needs_root, run_tool

pytestmark = needs_root


def env_with_tmpdir(tmp_path):
    env = dict(os.environ)
    env["TMPDIR"] = str(tmp_path)   # the tool's scratch dir goes here, to check it is removed
    return env


def test_help_names_the_slide_and_what_to_try():
    r = run_tool("container", "--help")
    assert r.returncode == 0
    assert "Namespaces + cgroups: how can we bring this all together?" in r.stdout
    assert "pivot_root" in r.stdout and "Try it:" in r.stdout and "--rootfs" in r.stdout


def test_all_namespaces_around_a_busybox_root(tmp_path, data_root):
    r = run_tool("container", "sh", "-c",
                 "echo $$; hostname; ls /sys/class/net; ps -o pid | wc -l; "
                 "grep -c ':/$' /proc/self/cgroup; ls /", env=env_with_tmpdir(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    # PID 1, its own hostname, only lo, and ps sees a header + sh, ps, wc: nothing else
    assert lines[:4] == ["1", "container", "lo", "4"]
    assert int(lines[4]) >= 5                            # every cgroup line is its root
    assert "bin" in lines and "etc" in lines
    assert os.listdir(tmp_path) == ["root"]              # its scratch dir is gone


def test_given_rootfs_is_not_modified(busybox_rootfs, tmp_path, data_root):
    before = sorted(os.listdir(busybox_rootfs))
    r = run_tool("container", "--rootfs", busybox_rootfs, "--hostname", "mybox", "sh", "-c",
                 "hostname; echo x > /written; rm /bin/ls; ls /written",
                 env=env_with_tmpdir(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["mybox", "/written"]
    assert sorted(os.listdir(busybox_rootfs)) == before
    assert os.path.lexists(os.path.join(busybox_rootfs, "bin/ls"))


def test_limits_and_the_oom_killer(busybox_rootfs, tmp_path, data_root):
    r = run_tool("container", "--rootfs", busybox_rootfs, "--pids", "12", "--cpus", "0.5",
                 "--memory", "64M", "sh", "-c",
                 "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
                 "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["12", "50000", str(64 << 20)]
    r = run_tool("container", "--rootfs", busybox_rootfs, "--memory", "16M", "tail", "/dev/zero")
    assert r.returncode == 137
    assert "container: killed by the OOM killer (memory limit 16M)" in r.stderr


def test_exit_codes(busybox_rootfs, data_root):
    assert run_tool("container", "--rootfs", busybox_rootfs, "sh", "-c", "exit 5").returncode == 5
    r = run_tool("container", "--rootfs", busybox_rootfs, "nosuchcommand")
    assert r.returncode == 127
    assert 'exec: "nosuchcommand": executable file not found in $PATH' in r.stderr
    r = run_tool("container", "--rootfs", "/nonexistent/dir", "true")
    assert r.returncode == 125
    assert r.stderr.strip() == "container: --rootfs /nonexistent/dir: not a directory"


def test_device_allowlist(busybox_rootfs, data_root):
    r = run_tool("container", "--rootfs", busybox_rootfs, "sh", "-c",
                 "mknod /dev/sda b 8 0 && head -c1 /dev/sda; echo rc=$?")
    assert r.stdout.strip() == "rc=1"
    assert "/dev/sda: Operation not permitted" in r.stderr


def test_interactive_shell_on_a_terminal(busybox_rootfs, data_root):
    """With a terminal, the container gets a pty of its own devpts: /dev/pts/0."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, os.path.join(TOOLS, "container"),
                                  "--rootfs", busybox_rootfs, "--hostname", "ttybox"])
    output = b""

    def read_until(token: bytes) -> bool:
        nonlocal output
        deadline = time.monotonic() + 20
        while token not in output and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                try:
                    output += os.read(fd, 4096)
                except OSError:
                    break
        return token in output

    try:
        assert read_until(b"# "), output
        os.write(fd, b"echo hello-$((6*7)); tty; hostname\r")
        assert read_until(b"ttybox\r\n"), output
        # The user resizes the window: the tool gets SIGWINCH and passes the size on.
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
        os.write(fd, b"stty size\r")
        assert read_until(b"50 132\r\n"), output
        os.write(fd, b"exit 3\r")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 3
    assert b"hello-42\r\n/dev/pts/0\r\nttybox\r\n" in output


def test_signals_to_the_tool_reach_the_container(busybox_rootfs, data_root):
    import signal
    import subprocess
    tool = subprocess.Popen(
        [sys.executable, os.path.join(TOOLS, "container"), "--rootfs", busybox_rootfs, "sh", "-c",
         "trap 'echo got TERM; exit 9' TERM; echo ready; while :; do sleep 0.1; done"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert tool.stdout.readline() == "ready\n"
        tool.send_signal(signal.SIGTERM)
        assert tool.wait(timeout=30) == 9
        assert tool.stdout.read() == "got TERM\n"
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
        tool.stdout.close()
        tool.stderr.close()


def test_seccomp_flag(busybox_rootfs, data_root):
    r = run_tool("container", "--rootfs", busybox_rootfs, "--seccomp", "sh", "-c",
                 "unshare -U true; echo rc=$?")
    assert r.stdout.strip() == "rc=1"
    assert "Operation not permitted" in r.stderr
