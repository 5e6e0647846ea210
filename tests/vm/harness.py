"""Run minidocker's kernel-facing tests inside a pure cgroup-v2 virtual machine.

This machine (and many CI machines) mounts cgroup v1 ("hybrid"), while most learners'
laptops are pure cgroup v2. To try the v2 code for real we boot a small Linux VM:

* the kernel is Debian's *cloud* kernel package, downloaded with ``apt-get download``
  and unpacked with ``dpkg -x`` into the work dir (never installed on the host);
* a tiny initramfs (busybox + the virtio, virtiofs and overlay modules, written here as
  a "newc" cpio archive) mounts the host's own ``/`` read-only over virtiofs with a RAM
  overlay on top, so the guest runs the very same Python and ``.venv`` as the host;
* the checkout is shared writable at the same path as on the host, and a per-run
  directory carries the pytest arguments in and the exit status out;
* the kernel command line says ``cgroup_no_v1=all``: no v1 controller can be mounted,
  the guest's init mounts cgroup2 at ``/sys/fs/cgroup`` and enables memory, pids and
  cpu for its children, as systemd does on a v2 machine.

``tests/vm/run [PYTEST ARGS]`` is the command; this module holds its pieces so that
``tests/test_vm_harness.py`` can check them on the host without booting anything.
Only the standard library is used: the harness must work on a fresh machine.
"""

from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import glob
import gzip
import hashlib
import io
import lzma
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GUEST_DIR = os.path.join(HERE, "guest")
SELECTION_FILE = os.path.join(HERE, "kernel-tests.txt")

DEFAULT_WORKDIR = "/var/tmp/minidocker-vm"
DEFAULT_TIMEOUT = 900          # seconds for boot + tests + power-off, then qemu is killed
DEFAULT_MEMORY_MB = 2048
KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX = "/bin/busybox"       # busybox-static: a statically linked binary, so it runs alone

# Exit statuses of the harness itself (pytest's own are 0-5).
EXIT_TIMEOUT = 124             # as timeout(1)
EXIT_HARNESS_ERROR = 125       # as docker/minidocker for an engine error

# Modules the initramfs loads before it can mount anything: the virtio PCI transport,
# FUSE and virtiofs on top of it, and overlayfs for the RAM layer over the read-only root.
# The cloud kernel builds them as modules (ext4, cgroups and namespaces are built in).
INITRAMFS_MODULES = ("virtio_pci", "virtiofs", "overlay")

# Modules loaded by the guest's init before the tests start (the kernel also loads
# modules on demand through /proc/sys/kernel/modprobe, but a test should not pay for it).
GUEST_PRELOAD_MODULES = ("veth", "bridge")


class HarnessError(Exception):
    """A clear, one-line reason why the VM could not run the tests."""


# --------------------------------------------------------------------------- settings
@dataclasses.dataclass
class Settings:
    workdir: str = DEFAULT_WORKDIR
    accel: str = "auto"
    timeout: int = DEFAULT_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    cpus: int = 0               # 0: as many as the host has, at most 4
    cpu_model: str = "max"      # qemu -cpu under TCG
    keep: bool = False          # keep the run dir (console log, junit.xml) for inspection
    setup_only: bool = False    # prepare qemu, kernel and initramfs, boot nothing
    reboot: bool = False        # the power-cut pass instead: see reboot_test()


HARNESS_OPTIONS = {
    "--vm-workdir": ("workdir", str), "--vm-accel": ("accel", str),
    "--vm-timeout": ("timeout", int), "--vm-memory": ("memory_mb", int),
    "--vm-cpus": ("cpus", int), "--vm-cpu-model": ("cpu_model", str),
}
HARNESS_FLAGS = {"--vm-keep": "keep", "--vm-setup-only": "setup_only", "--vm-reboot": "reboot"}

USAGE = """\
usage: tests/vm/run [VM OPTIONS] [PYTEST ARGS]

Boot a pure cgroup-v2 VM and run pytest inside on the tests listed in
tests/vm/kernel-tests.txt (or on the tests named in PYTEST ARGS).

VM options (environment variable in brackets):
  --vm-workdir DIR   kernel, initramfs and run dirs [MINIDOCKER_VM_DIR] (default %s)
  --vm-accel MODE    auto, kvm or tcg [MINIDOCKER_VM_ACCEL] (default auto: kvm only on
                     hardware KVM, kvm_intel/kvm_amd)
  --vm-timeout SEC   kill the VM after SEC seconds [MINIDOCKER_VM_TIMEOUT] (default %d)
  --vm-memory MB     guest memory [MINIDOCKER_VM_MEMORY] (default %d)
  --vm-cpus N        guest CPUs [MINIDOCKER_VM_CPUS] (default: the host's, at most 4)
  --vm-cpu-model M   qemu -cpu model under TCG [MINIDOCKER_VM_CPU_MODEL] (default max)
  --vm-keep          keep the run dir (console.log, junit.xml, status) afterwards
  --vm-setup-only    install and prepare everything, boot nothing
  --vm-reboot        the power-cut pass: boot, cut the power in the middle of a pull,
                     boot again, check and pull again (tests/test_vm_reboot.py)
Exit status: pytest's, %d if the VM timed out, %d if the VM could not run the tests.
""" % (DEFAULT_WORKDIR, DEFAULT_TIMEOUT, DEFAULT_MEMORY_MB, EXIT_TIMEOUT, EXIT_HARNESS_ERROR)


def parse_command_line(argv: list[str], environ=os.environ) -> tuple[Settings, list[str]]:
    """Split ``argv`` into the harness's ``--vm-*`` options and pytest's arguments.

    Every argument the harness does not know goes to pytest unchanged, in order, so
    ``tests/vm/run -x -k oom`` means what ``pytest -x -k oom`` means."""
    s = Settings(
        workdir=environ.get("MINIDOCKER_VM_DIR") or DEFAULT_WORKDIR,
        accel=environ.get("MINIDOCKER_VM_ACCEL") or "auto",
        timeout=_int_setting("MINIDOCKER_VM_TIMEOUT", environ.get("MINIDOCKER_VM_TIMEOUT"), DEFAULT_TIMEOUT),
        memory_mb=_int_setting("MINIDOCKER_VM_MEMORY", environ.get("MINIDOCKER_VM_MEMORY"), DEFAULT_MEMORY_MB),
        cpus=_int_setting("MINIDOCKER_VM_CPUS", environ.get("MINIDOCKER_VM_CPUS"), 0),
        cpu_model=environ.get("MINIDOCKER_VM_CPU_MODEL") or "max")
    pytest_args: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name in HARNESS_OPTIONS:
            field, kind = HARNESS_OPTIONS[name]
            if not eq:
                if not args:
                    raise HarnessError(f"{name} needs a value")
                value = args.pop(0)
            setattr(s, field, _int_setting(name, value, None) if kind is int else value)
        elif arg in HARNESS_FLAGS:
            setattr(s, HARNESS_FLAGS[arg], True)
        elif arg.startswith("--vm-"):
            raise HarnessError(f"unknown VM option {arg} (see tests/vm/run --vm-help)")
        else:
            pytest_args.append(arg)
    if s.accel not in ("auto", "kvm", "tcg"):
        raise HarnessError(f"--vm-accel must be auto, kvm or tcg, not {s.accel!r}")
    for field in ("timeout", "memory_mb"):
        if getattr(s, field) <= 0:
            raise HarnessError(f"the VM {field.replace('_mb', '')} must be a positive number")
    if s.memory_mb < 512:
        raise HarnessError("the VM needs at least 512 MB of memory (the root overlay lives in RAM)")
    if s.cpus < 0:
        raise HarnessError("--vm-cpus must be 0 (automatic) or more")
    if any("\n" in a for a in pytest_args):
        raise HarnessError("pytest arguments cannot contain a newline")
    s.workdir = os.path.abspath(s.workdir)
    return s, pytest_args


def _int_setting(name, value, default):
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise HarnessError(f"{name} must be a whole number, not {value!r}") from None


# --------------------------------------------------------------------------- the selection
def read_selection(path: str = SELECTION_FILE) -> list[str]:
    """The pytest node ids / file paths listed in ``kernel-tests.txt``.

    One entry per line, relative to the checkout; ``#`` starts a comment; blank lines
    are ignored (the same rule as the suite's conftest, which marks these tests
    ``kernel``)."""
    with open(path) as f:
        entries = [line.split("#", 1)[0].strip() for line in f]
    return [e for e in entries if e]


def selection_problems(entries: list[str], repo: str = REPO) -> list[str]:
    """Entries that cannot be right: a missing file, a test function the file does not
    define, or an entry listed twice. A renamed test must not silently drop out of the
    VM pass."""
    problems, seen = [], set()
    for entry in entries:
        if entry in seen:
            problems.append(f"{entry}: listed twice")
        seen.add(entry)
        path, _, rest = entry.partition("::")
        full = os.path.join(repo, path)
        if not os.path.exists(full):
            problems.append(f"{entry}: no such file {path}")
            continue
        if rest:
            if not os.path.isfile(full):
                problems.append(f"{entry}: {path} is not a file")
                continue
            name = rest.split("::")[-1].split("[")[0]
            with open(full) as f:
                source = f.read()
            if not re.search(rf"^\s*(async\s+)?def {re.escape(name)}\(|^class {re.escape(name)}\b",
                             source, re.M):
                problems.append(f"{entry}: {path} defines no {name}")
    return problems


# pytest options whose value is the next argument (``-k EXPR``, ``--deselect NODEID``):
# that value names no test to run, even when it looks like a path or a node id.
PYTEST_OPTIONS_WITH_A_VALUE = {
    "-k", "-m", "-p", "-o", "-c", "-W", "-r", "--deselect", "--ignore", "--ignore-glob",
    "--durations", "--durations-min", "--maxfail", "--junitxml", "--junit-xml", "--rootdir",
    "--basetemp", "--confcutdir", "--tb", "--color", "--code-highlight", "--import-mode",
    "--override-ini", "--log-level", "--log-file", "--log-cli-level", "--log-format",
    "--capture", "--runxfail-reason", "--pythonwarnings", "--config-file", "--inifile",
}


def names_tests(pytest_args: list[str], repo: str = REPO) -> bool:
    """True when ``pytest_args`` already name what to run (a path or a node id), so the
    selection file is not added: ``tests/vm/run tests/test_cgroups.py -x``."""
    args = iter(pytest_args)
    for arg in args:
        if arg in PYTEST_OPTIONS_WITH_A_VALUE:
            next(args, None)
            continue
        if arg.startswith("-"):
            continue
        if "::" in arg or os.path.exists(os.path.join(repo, arg)):
            return True
    return False


# --------------------------------------------------------------------------- acceleration
def choose_accel(requested: str = "auto", sys_module: str = "/sys/module",
                 dev_kvm: str = "/dev/kvm") -> tuple[str, str]:
    """Pick qemu's accelerator: ``("kvm" | "tcg", why)``.

    ``/dev/kvm`` alone proves little: a nested-virtualization module such as kvm_pvm
    also provides it, but can only run guest kernels built for it (stock kernels hang
    at boot). So KVM is used only when the hardware modules, ``kvm_intel`` or
    ``kvm_amd``, back it; otherwise qemu's software emulator TCG (slower, always works).
    """
    if requested == "tcg":
        return "tcg", "asked for"
    usable = os.path.exists(dev_kvm) and os.access(dev_kvm, os.R_OK | os.W_OK)
    hardware = [m for m in ("kvm_intel", "kvm_amd") if os.path.isdir(os.path.join(sys_module, m))]
    others = [m for m in ("kvm_pvm",) if os.path.isdir(os.path.join(sys_module, m))]
    if requested == "kvm":
        if not usable:
            raise HarnessError(f"--vm-accel kvm: {dev_kvm} is missing or not usable")
        return "kvm", "asked for"
    if not usable:
        return "tcg", f"no usable {dev_kvm}"
    if others:
        return "tcg", f"{dev_kvm} is {others[0]} (nested), which cannot boot a stock kernel"
    if not hardware:
        return "tcg", f"{dev_kvm} is not backed by kvm_intel or kvm_amd"
    return "kvm", f"hardware KVM ({hardware[0]})"


def accel_arguments(accel: str, cpu_model: str = "max") -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    # thread=multi: one host thread per guest CPU; "max" gives the guest every CPU
    # feature TCG can emulate (x86-64-v2 and more, which Python's builds expect).
    return ["-accel", "tcg,thread=multi", "-cpu", cpu_model]


# --------------------------------------------------------------------------- host setup
def run(argv, **kw) -> subprocess.CompletedProcess:
    """Run a setup command; a failure becomes a HarnessError naming the command."""
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        detail = (r.stderr or r.stdout).strip().splitlines()
        raise HarnessError(f"{' '.join(argv)} failed: {detail[-1] if detail else f'exit {r.returncode}'}")
    return r


VIRTIOFSD_PATHS = ("/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd")


def find_virtiofsd() -> str | None:
    """The virtiofs daemon: Debian 12 ships the C one with qemu (/usr/lib/qemu), later
    releases the Rust one as its own package (/usr/libexec)."""
    for path in VIRTIOFSD_PATHS:
        if os.access(path, os.X_OK):
            return path
    return None


def missing_host_packages() -> list[str]:
    missing = []
    if not shutil.which("qemu-system-x86_64"):
        missing.append("qemu-system-x86")
    if not os.access(BUSYBOX, os.X_OK):
        missing.append("busybox-static")
    for tool in ("apt-get", "dpkg"):
        if not shutil.which(tool):
            raise HarnessError(f"{tool} not found: the VM harness needs a Debian-like host")
    return missing


def ensure_host_packages(log) -> None:
    """Install qemu (without its recommends: no GUI, no firmware we do not use) and
    busybox-static, once. virtiofsd comes with qemu on Debian 12, separately later."""
    missing = missing_host_packages()
    if missing or not find_virtiofsd():
        if not find_virtiofsd() and "qemu-system-x86" not in missing:
            missing.append("virtiofsd")
        log(f"installing {' '.join(missing)} (apt, --no-install-recommends)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], env=env)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)
        if not find_virtiofsd():
            run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "virtiofsd"], env=env)
    if not find_virtiofsd():
        raise HarnessError("virtiofsd not found after installing qemu")


@dataclasses.dataclass
class Kernel:
    version: str          # e.g. 6.1.0-56-cloud-amd64
    tree: str             # the unpacked package: boot/, lib/modules/<version>/

    @property
    def vmlinuz(self) -> str:
        return os.path.join(self.tree, "boot", f"vmlinuz-{self.version}")

    @property
    def modules_dir(self) -> str:
        return os.path.join(self.tree, "lib", "modules", self.version)


def find_kernel(workdir: str) -> Kernel | None:
    """The newest kernel already unpacked in ``workdir/kernel`` (complete ones only:
    an unpack is renamed into place when it is finished)."""
    base = os.path.join(workdir, "kernel")
    found = []
    for name in os.listdir(base) if os.path.isdir(base) else ():
        k = Kernel(name, os.path.join(base, name))
        if os.path.isfile(k.vmlinuz) and os.path.isfile(os.path.join(k.modules_dir, "modules.dep")):
            found.append(k)
    found.sort(key=lambda k: [int(p) if p.isdigit() else p for p in re.split(r"[.-]", k.version)])
    return found[-1] if found else None


def kernel_package_name() -> str:
    """The versioned package behind Debian's ``linux-image-cloud-amd64`` meta package."""
    def depends():
        r = subprocess.run(["apt-cache", "depends", KERNEL_META_PACKAGE], capture_output=True, text=True)
        return re.findall(r"Depends:\s*(linux-image-\S+)", r.stdout)
    names = depends()
    if not names:   # a fresh machine may have no package lists yet
        run(["apt-get", "update", "-qq"])
        names = depends()
    if not names:
        raise HarnessError(f"apt knows no {KERNEL_META_PACKAGE} (is this Debian on amd64?)")
    return names[0]


def ensure_kernel(workdir: str, log) -> Kernel:
    """Debian's cloud kernel, unpacked (not installed) into ``workdir/kernel/<version>``.

    The cloud flavour is small (virtio drivers, no hardware drivers) and boots fast.
    Its modules are made usable by busybox's insmod/modprobe: decompressed if the
    package ships them compressed, and indexed in ``modules.dep``."""
    kernel = find_kernel(workdir)
    if kernel:
        return kernel
    package = kernel_package_name()
    version = package.removeprefix("linux-image-")
    log(f"downloading {package} (apt-get download; it is unpacked, not installed)")
    scratch = os.path.join(workdir, "kernel", f".unpack-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    try:
        run(["apt-get", "download", "-qq", package], cwd=scratch)
        debs = [f for f in os.listdir(scratch) if f.endswith(".deb")]
        if len(debs) != 1:
            raise HarnessError(f"apt-get download {package} gave {debs}")
        tree = os.path.join(scratch, "tree")
        run(["dpkg", "-x", os.path.join(scratch, debs[0]), tree])
        kernel = Kernel(version, tree)
        if not os.path.isfile(kernel.vmlinuz):
            raise HarnessError(f"{package} has no boot/vmlinuz-{version}")
        decompress_modules(kernel.modules_dir)
        run([BUSYBOX, "depmod", "-b", tree, version])
        final = os.path.join(workdir, "kernel", version)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tree, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Kernel(version, final)


def decompress_modules(modules_dir: str) -> None:
    """Turn ``*.ko.xz`` / ``*.ko.zst`` into ``*.ko``: busybox's insmod and modprobe read
    plain ELF modules only (newer Debian kernels compress them)."""
    for dirpath, _, files in os.walk(modules_dir):
        for name in files:
            path = os.path.join(dirpath, name)
            if name.endswith(".ko.xz"):
                with lzma.open(path) as src, open(path[:-3], "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.unlink(path)
            elif name.endswith(".ko.zst"):
                run(["zstd", "-q", "-d", "--rm", path])


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """``modules.dep`` as ``{module name: [module names it needs]}``.

    Each line is ``path/to/a.ko: path/to/b.ko path/to/c.ko``; the kernel's module name
    is the file name without ``.ko``, with ``-`` read as ``_``."""
    deps = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        module, _, needs = line.partition(":")
        deps[module_name(module)] = [module_name(n) for n in needs.split()]
    return deps


def module_name(path: str) -> str:
    return os.path.basename(path.strip()).split(".ko")[0].replace("-", "_")


def module_paths(text: str) -> dict[str, str]:
    return {module_name(line.partition(":")[0]): line.partition(":")[0].strip()
            for line in text.splitlines() if ":" in line}


def load_order(wanted, deps: dict[str, list[str]], builtin=frozenset()) -> list[str]:
    """The modules to insmod for ``wanted``, each after the modules it needs.

    ``insmod`` (unlike ``modprobe``) loads exactly one file and fails if a symbol it
    uses is not loaded yet, so the initramfs must go in dependency order: a depth-first
    walk that emits a module after its dependencies. Built-in "modules" need nothing."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name):
        name = name.replace("-", "_")
        if name in order or name in builtin:
            return
        if name not in deps:
            raise HarnessError(f"kernel module {name} is neither a module nor built in")
        if name in visiting:
            raise HarnessError(f"kernel modules depend on each other in a loop at {name}")
        visiting.add(name)
        for dep in deps[name]:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name)
    return order


def builtin_modules(modules_dir: str) -> set[str]:
    try:
        with open(os.path.join(modules_dir, "modules.builtin")) as f:
            return {module_name(line) for line in f if line.strip()}
    except FileNotFoundError:
        return set()


# --------------------------------------------------------------------------- initramfs
class Cpio:
    """A cpio archive in the "newc" format, the one the kernel unpacks an initramfs from.

    Every entry is a 110-byte ASCII header (magic ``070701`` and 13 fields of 8 hex
    digits), the NUL-terminated name padded to 4 bytes, then the data padded to 4
    bytes; ``TRAILER!!!`` ends the archive. Writing it ourselves lets an ordinary file
    list hold a device node (``/dev/console``) without root and without a cpio tool."""

    def __init__(self):
        self.out = io.BytesIO()
        self.ino = 0

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev=(0, 0), nlink=1):
        self.ino += 1
        encoded = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0]
        self.out.write(b"070701" + b"".join(b"%08x" % f for f in fields) + encoded)
        self._pad()
        self.out.write(data)
        self._pad()

    def _pad(self):
        self.out.write(b"\0" * (-self.out.tell() % 4))

    def directory(self, name, mode=0o755):
        self._entry(name, 0o040000 | mode, nlink=2)

    def file(self, name, data: bytes, mode=0o644):
        self._entry(name, 0o100000 | mode, data)

    def char_device(self, name, major, minor, mode=0o600):
        self._entry(name, 0o020000 | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.out.getvalue()


def initramfs_recipe(kernel: Kernel) -> dict:
    """What goes into the initramfs: busybox, the init script and the modules in
    load order. Its digest names the archive, so a change to any input rebuilds it."""
    with open(os.path.join(kernel.modules_dir, "modules.dep")) as f:
        dep_text = f.read()
    order = load_order(INITRAMFS_MODULES, parse_modules_dep(dep_text), builtin_modules(kernel.modules_dir))
    paths = module_paths(dep_text)
    modules = [(name, os.path.join(kernel.modules_dir, paths[name])) for name in order]
    init = os.path.join(GUEST_DIR, "initramfs-init")
    digest = hashlib.sha256()
    for path in [BUSYBOX, init] + [p for _, p in modules]:
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return {"init": init, "modules": modules, "digest": digest.hexdigest()[:16]}


def build_initramfs(recipe: dict) -> bytes:
    cpio = Cpio()
    for d in ("bin", "dev", "proc", "sys", "lower", "rw", "newroot", "modules"):
        cpio.directory(d)
    cpio.char_device("dev/console", 5, 1)
    with open(BUSYBOX, "rb") as f:
        cpio.file("bin/busybox", f.read(), 0o755)
    with open(recipe["init"], "rb") as f:
        cpio.file("init", f.read(), 0o755)
    for name, path in recipe["modules"]:
        with open(path, "rb") as f:
            cpio.file(f"modules/{name}.ko", f.read())
    cpio.file("modules/order", "".join(f"{name}\n" for name, _ in recipe["modules"]).encode())
    return gzip.compress(cpio.finish(), compresslevel=6, mtime=0)


def ensure_initramfs(workdir: str, kernel: Kernel, log) -> str:
    recipe = initramfs_recipe(kernel)
    path = os.path.join(workdir, f"initrd-{kernel.version}-{recipe['digest']}.gz")
    if not os.path.exists(path):
        log(f"building the initramfs ({', '.join(n for n, _ in recipe['modules'])})")
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(build_initramfs(recipe))
        os.rename(tmp, path)
        for old in os.listdir(workdir):
            if old.startswith("initrd-") and os.path.join(workdir, old) != path:
                os.unlink(os.path.join(workdir, old))
    return path


# --------------------------------------------------------------------------- one run
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """Run in a child before exec: the kernel sends it SIGKILL when the harness dies,
    however it dies, so no qemu or virtiofsd outlives a killed run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: tells a process apart from a later one with its pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def record_process(run_dir: str, role: str, pid: int) -> None:
    with open(os.path.join(run_dir, "processes"), "a") as f:
        f.write(f"{pid} {process_start_time(pid)} {role}\n")


def clean_stale_runs(workdir: str, log) -> None:
    """Remove what runs killed without a chance to clean up left behind: their
    qemu and virtiofsd (only if still the very same processes) and their run dirs.
    A run whose harness is alive is someone else's, running now: left alone."""
    runs = os.path.join(workdir, "runs")
    for name in os.listdir(runs) if os.path.isdir(runs) else ():
        run_dir = os.path.join(runs, name)
        records = []
        try:
            with open(os.path.join(run_dir, "processes")) as f:
                records = [line.split() for line in f if line.strip()]
        except FileNotFoundError:
            pass
        harness = [r for r in records if r[2:] == ["harness"]]
        if harness and process_start_time(int(harness[0][0])) == harness[0][1]:
            continue
        for pid, started, *role in records:
            if role != ["harness"] and process_start_time(int(pid)) == started:
                log(f"stopping {' '.join(role)} (pid {pid}) left by an earlier run")
                os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(run_dir, ignore_errors=True)


def virtiofsd_command(binary: str, socket: str, source: str, cache: str) -> list[str]:
    """The daemon that serves one host directory to the guest over vhost-user.

    ``sandbox=chroot``: the default sandbox pivots into the shared directory, which
    fails for ``/`` itself. ``cache=always`` lets the guest cache the read-only host
    root (twice as fast); the writable shares use ``auto`` so both sides see changes."""
    if binary.endswith("/usr/libexec/virtiofsd"):       # the Rust daemon's spelling
        return [binary, f"--socket-path={socket}", f"--shared-dir={source}",
                "--sandbox=chroot", f"--cache={cache}", "--rlimit-nofile=0"]
    return [binary, f"--socket-path={socket}", "-o", f"source={source}", "-o", "sandbox=chroot",
            "-o", f"cache={cache}", "--rlimit-nofile=0"]


def kernel_command_line(checkout: str, run_dir: str, kernel: Kernel) -> str:
    """What the guest kernel and our two init scripts read from /proc/cmdline.

    ``cgroup_no_v1=all`` keeps every controller off cgroup v1, so the guest is a pure
    cgroup-v2 machine whatever the host is; ``panic=-1`` plus qemu's ``-no-reboot``
    turn a crash of init into qemu exiting instead of a hang."""
    for value in (checkout, run_dir, kernel.modules_dir):
        if re.search(r"\s", value):
            raise HarnessError(f"paths with spaces cannot go on the kernel command line: {value!r}")
    return " ".join([
        "console=ttyS0", "quiet", "panic=-1", "cgroup_no_v1=all",
        "mdvm.hostroot=hostroot",
        f"mdvm.modules={os.path.dirname(kernel.modules_dir)}",
        f"mdvm.checkout={checkout}", f"mdvm.run={run_dir}",
        f"mdvm.init={os.path.join(checkout, 'tests', 'vm', 'guest', 'init')}",
    ])


def qemu_command(accel: str, kernel: Kernel, initrd: str, cmdline: str, sockets: dict[str, str],
                 memory_mb: int, cpus: int, cpu_model: str = "max", disks=()) -> list[str]:
    """qemu with nothing but what the guest needs: no default devices (so no network
    card: the guest cannot reach any network but its own), a serial console on stdio,
    and one vhost-user-fs device per share. virtiofs needs the guest's RAM to be
    shared memory (memfd) so virtiofsd can read and write the guest's buffers."""
    argv = ["qemu-system-x86_64", *accel_arguments(accel, cpu_model), "-machine", "q35",
            "-m", str(memory_mb), "-smp", str(cpus),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", "stdio", "-monitor", "none",
            "-object", f"memory-backend-memfd,id=mem,size={memory_mb}M,share=on",
            "-numa", "node,memdev=mem",
            "-kernel", kernel.vmlinuz, "-initrd", initrd, "-append", cmdline]
    for i, (tag, sock) in enumerate(sockets.items()):
        argv += ["-chardev", f"socket,id=fs{i},path={sock}",
                 "-device", f"vhost-user-fs-pci,chardev=fs{i},tag={tag}"]
    for image in disks:     # raw disk images: /dev/vda, /dev/vdb... in the guest
        argv += ["-drive", f"file={image},if=virtio,format=raw,cache=writeback"]
    return argv


def guest_settings(s: Settings, pytest_args: list[str], summary: str = "",
                   environment: dict[str, str] | None = None) -> str:
    """``settings.sh`` for the guest's init (it sources it): the pytest arguments, what
    to print for them, and a deadline for pytest a little before the harness kills the
    VM, so that pytest is interrupted (SIGINT) and can still print its summary;
    ``environment``: variables exported to pytest."""
    deadline = max(60, s.timeout - 60)
    lines = [f"PYTEST_DEADLINE={deadline}",
             "PYTEST_ARGS=(" + " ".join(shlex.quote(a) for a in pytest_args) + ")",
             f"PYTEST_SUMMARY={shlex.quote(summary or ' '.join(pytest_args))}"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in (environment or {}).items()]
    return "\n".join(lines) + "\n"


class Run:
    """One boot: a run dir with the job, the virtiofsd daemons and qemu; ``close()``
    stops every process and removes the sockets, whatever happened."""

    def __init__(self, s: Settings, log):
        self.s, self.log = s, log
        self.processes: list[subprocess.Popen] = []
        os.makedirs(os.path.join(s.workdir, "runs"), exist_ok=True)
        self.dir = os.path.join(s.workdir, "runs", f"run-{os.getpid()}-{int(time.time())}")
        os.makedirs(self.dir)
        record_process(self.dir, "harness", os.getpid())

    def spawn(self, role, argv, **kw) -> subprocess.Popen:
        proc = subprocess.Popen(argv, preexec_fn=_die_with_parent, stdin=subprocess.DEVNULL, **kw)
        self.processes.append(proc)
        record_process(self.dir, role, proc.pid)
        return proc

    def share(self, virtiofsd: str, tag: str, source: str, cache: str) -> str:
        sock = os.path.join(self.dir, f"{tag}.sock")
        with open(os.path.join(self.dir, f"virtiofsd-{tag}.log"), "wb") as err:
            self.spawn(f"virtiofsd {tag}", virtiofsd_command(virtiofsd, sock, source, cache),
                       stdout=err, stderr=err)
        return sock

    def wait_for_sockets(self, sockets: dict[str, str], timeout=20.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(os.path.exists(s) for s in sockets.values()):
            for proc in self.processes:
                if proc.poll() is not None:
                    raise HarnessError(f"virtiofsd exited with {proc.returncode}: "
                                       f"{self._tail('virtiofsd-*.log')}")
            if time.monotonic() > deadline:
                raise HarnessError("virtiofsd did not create its socket")
            time.sleep(0.05)

    def _tail(self, pattern) -> str:
        text = ""
        for path in glob.glob(os.path.join(self.dir, pattern)):
            with open(path, errors="replace") as f:
                text += f.read()
        lines = text.strip().splitlines()
        return lines[-1] if lines else "(no output)"

    def boot(self, argv, console_path, cut_power_on: bytes | None = None) -> int | None:
        """Run qemu, copying the guest's console to our stdout and to ``console_path``.
        Returns qemu's exit status, or None if the timeout killed it. ``cut_power_on``:
        when the guest prints this, qemu is SIGKILLed at once (a power cut: the guest
        gets no chance to sync or unmount) and the status is ``-9``."""
        deadline = time.monotonic() + self.s.timeout
        qemu = self.spawn("qemu", argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = sys.stdout.buffer
        seen = b""
        with open(console_path, "ab") as console:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    qemu.kill()
                    qemu.wait()
                    return None
                ready, _, _ = select.select([qemu.stdout], [], [], min(left, 5.0))
                if ready:
                    chunk = os.read(qemu.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    # the serial line ends lines with \r\n; a log file wants \n
                    chunk = chunk.replace(b"\r\n", b"\n")
                    out.write(chunk)
                    out.flush()
                    console.write(chunk)
                    seen = (seen + chunk)[-4096:]
                    if cut_power_on and cut_power_on in seen:
                        qemu.kill()
                        qemu.wait()
                        return -signal.SIGKILL
        return qemu.wait()

    def stop(self) -> None:
        """Stop qemu and the virtiofsd daemons (the run dir stays)."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def close(self) -> None:
        self.stop()
        for name in os.listdir(self.dir):
            if name.endswith(".sock"):
                os.unlink(os.path.join(self.dir, name))
        if not self.s.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def read_status(run_dir: str) -> int | None:
    try:
        with open(os.path.join(run_dir, "status")) as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def keep_last_results(run_dir: str, workdir: str) -> str:
    """Copy the console log and junit.xml to ``workdir/last-run`` (for CI artifacts and
    for a look after the run); the run dir itself is removed."""
    last = os.path.join(workdir, "last-run")
    shutil.rmtree(last, ignore_errors=True)
    os.makedirs(last)
    for name in ("console.log", "junit.xml", "status"):
        if os.path.exists(os.path.join(run_dir, name)):
            shutil.copy(os.path.join(run_dir, name), os.path.join(last, name))
    return last


def log(message: str) -> None:
    print(f"vm: {message}", file=sys.stderr, flush=True)


class setup_lock:
    """An exclusive flock on ``WORKDIR/setup.lock``: two runs at once never unpack the
    same kernel, and a starting run's dir never looks stale to the other."""

    def __init__(self, workdir: str):
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, "setup.lock")

    def __enter__(self):
        self.file = open(self.path, "w")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.file.close()


@dataclasses.dataclass
class Prepared:
    kernel: Kernel
    initrd: str
    virtiofsd: str


def prepare(s: Settings) -> Prepared:
    """Everything a boot needs, set up once and reused (idempotent; under a lock so two
    runs at once do not unpack the same kernel)."""
    with setup_lock(s.workdir):
        ensure_host_packages(log)
        kernel = ensure_kernel(s.workdir, log)
        initrd = ensure_initramfs(s.workdir, kernel, log)
        clean_stale_runs(s.workdir, log)
    return Prepared(kernel, initrd, find_virtiofsd())


def main(argv: list[str]) -> int:
    if any(a in ("--vm-help",) for a in argv):
        print(USAGE, end="")
        return 0
    try:
        s, pytest_args = parse_command_line(argv)
        if os.geteuid() != 0:
            raise HarnessError("the VM harness needs root (virtiofsd shares the host's /)")
        selection = read_selection()
        problems = selection_problems(selection)
        if problems:
            raise HarnessError("tests/vm/kernel-tests.txt: " + "; ".join(problems))
        summary = " ".join(pytest_args)
        if not names_tests(pytest_args):
            summary = f"[{len(selection)} entries of tests/vm/kernel-tests.txt] {summary}".strip()
            pytest_args = selection + pytest_args
        prepared = prepare(s)
        accel, why = choose_accel(s.accel)
        if s.setup_only:
            log(f"ready: kernel {prepared.kernel.version}, {os.path.basename(prepared.initrd)}, "
                f"accel {accel} ({why})")
            return 0
        if s.reboot:
            return reboot_test(s, prepared, accel, why)
        return boot_and_test(s, prepared, accel, why, pytest_args, summary)
    except HarnessError as e:
        log(f"error: {e}")
        return EXIT_HARNESS_ERROR
    except KeyboardInterrupt:
        log("interrupted; the VM is stopped")
        return 130


def boot_and_test(s: Settings, prepared: Prepared, accel: str, why: str, pytest_args,
                  summary: str = "") -> int:
    cpus = s.cpus or min(os.cpu_count() or 1, 4)
    checkout = os.path.realpath(REPO)
    with setup_lock(s.workdir):
        vm = Run(s, log)
    previous_term = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        with open(os.path.join(vm.dir, "settings.sh"), "w") as f:
            f.write(guest_settings(s, pytest_args, summary))
        sockets = {
            "hostroot": vm.share(prepared.virtiofsd, "hostroot", "/", "always"),
            "checkout": vm.share(prepared.virtiofsd, "checkout", checkout, "auto"),
            "run": vm.share(prepared.virtiofsd, "run", vm.dir, "auto"),
        }
        vm.wait_for_sockets(sockets)
        argv = qemu_command(accel, prepared.kernel, prepared.initrd,
                            kernel_command_line(checkout, vm.dir, prepared.kernel),
                            sockets, s.memory_mb, cpus, s.cpu_model)
        log(f"booting kernel {prepared.kernel.version} with {accel} ({why}), {cpus} CPUs, "
            f"{s.memory_mb} MB; timeout {s.timeout} s")
        started = time.monotonic()
        qemu_status = vm.boot(argv, os.path.join(vm.dir, "console.log"))
        took = time.monotonic() - started
        last = keep_last_results(vm.dir, s.workdir)
        if qemu_status is None:
            log(f"timed out after {s.timeout} s: the VM was killed (console log in {last})")
            return EXIT_TIMEOUT
        status = read_status(vm.dir)
        if status is None:
            log(f"the guest stopped without a test status (qemu exit {qemu_status}); "
                f"console log in {last}")
            return EXIT_HARNESS_ERROR
        log(f"pytest in the VM exited with {status} after {took:.0f} s (console log in {last})")
        return status
    finally:
        vm.close()
        signal.signal(signal.SIGTERM, previous_term)


# --------------------------------------------------------------------------- the power cut
#: What the guest prints (tests/test_vm_reboot.py) when a pull is under way: the
#: harness cuts the power then.
POWER_CUT_MARK = b"MINIDOCKER-VM-CUT-THE-POWER-NOW"
REBOOT_TESTS = "tests/test_vm_reboot.py"
REBOOT_DISK_MB = 768


def _start_shares(vm: Run, prepared: Prepared, checkout: str) -> dict[str, str]:
    sockets = {
        "hostroot": vm.share(prepared.virtiofsd, "hostroot", "/", "always"),
        "checkout": vm.share(prepared.virtiofsd, "checkout", checkout, "auto"),
        "run": vm.share(prepared.virtiofsd, "run", vm.dir, "auto"),
    }
    vm.wait_for_sockets(sockets)
    return sockets


def reboot_test(s: Settings, prepared: Prepared, accel: str, why: str) -> int:
    """A machine that loses power in the middle of a ``pull`` (issue 15's "reboot").

    Boot 1 runs ``test_vm_reboot.py``'s first phase: a data root and a registry in the
    run dir (shared with the host, so they outlive the guest), a running container, and
    a pull of a large image; once the pull is writing, the guest prints
    :data:`POWER_CUT_MARK` and the harness SIGKILLs qemu. Boot 2, with the same run
    dir, runs the second phase: ``system check`` (clean or repaired to clean), the
    container reconciled to exited, the same pull again, a container from it."""
    cpus = s.cpus or min(os.cpu_count() or 1, 4)
    checkout = os.path.realpath(REPO)
    with setup_lock(s.workdir):
        vm = Run(s, log)
    previous_term = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    # The guest's disk: a real block device with a real filesystem, so that a power cut
    # loses what the guest had not written yet (a virtiofs share would not).
    disk = os.path.join(vm.dir, "reboot-disk.img")
    try:
        with open(disk, "wb") as f:
            f.truncate(REBOOT_DISK_MB << 20)
        run(["mkfs.ext4", "-q", "-F", disk])
        for phase in (1, 2):
            with open(os.path.join(vm.dir, "settings.sh"), "w") as f:
                f.write(guest_settings(s, [f"{REBOOT_TESTS}::test_phase{phase}", "-x"],
                                       f"power-cut pass, phase {phase}",
                                       {"MINIDOCKER_VM_REBOOT": str(phase)}))
            sockets = _start_shares(vm, prepared, checkout)
            argv = qemu_command(accel, prepared.kernel, prepared.initrd,
                                kernel_command_line(checkout, vm.dir, prepared.kernel),
                                sockets, s.memory_mb, cpus, s.cpu_model, disks=[disk])
            log(f"power-cut pass, boot {phase} ({accel}, {why})")
            qemu_status = vm.boot(argv, os.path.join(vm.dir, "console.log"),
                                  cut_power_on=POWER_CUT_MARK if phase == 1 else None)
            vm.stop()
            if qemu_status is None:
                keep_last_results(vm.dir, s.workdir)
                log(f"timed out after {s.timeout} s in boot {phase}")
                return EXIT_TIMEOUT
            status = read_status(vm.dir)
            if phase == 1 and qemu_status != -signal.SIGKILL:
                keep_last_results(vm.dir, s.workdir)
                log(f"boot 1 ended without a power cut (pytest status {status})")
                return status if status else EXIT_HARNESS_ERROR
            if phase == 1:
                sys.stdout.write("\n")
                sys.stdout.flush()
                log("the power was cut in the middle of the pull; booting again")
        last = keep_last_results(vm.dir, s.workdir)
        if status is None:
            log(f"boot 2 stopped without a test status; console log in {last}")
            return EXIT_HARNESS_ERROR
        log(f"power-cut pass: pytest exited with {status} (console log in {last})")
        return status
    finally:
        vm.close()
        signal.signal(signal.SIGTERM, previous_term)
