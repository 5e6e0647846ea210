"""The cgroup-v2 VM harness (tests/vm/), checked piece by piece on the host.

Nothing here boots the VM (``tests/vm/run`` does that, in CI after the host pass):
these tests check the parts a broken harness would get wrong silently — which
accelerator it picks, how it splits its options from pytest's, that the test selection
names tests that exist, the module load order and the cpio archive of the initramfs,
the qemu command, and that it cleans up after a failed or timed-out run.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, _kernel_selection

sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
import harness  # noqa: E402
from harness import HarnessError, Settings  # noqa: E402

RUN = os.path.join(REPO, "tests", "vm", "run")


# --------------------------------------------------------------------------- options
def test_vm_options_are_taken_out_and_the_rest_goes_to_pytest():
    s, args = harness.parse_command_line(
        ["-x", "--vm-timeout", "300", "-k", "oom and not v1", "--vm-accel=tcg", "--vm-keep",
         "--vm-memory=1024", "tests/test_cgroups.py", "--vm-cpu-model", "qemu64"], environ={})
    assert args == ["-x", "-k", "oom and not v1", "tests/test_cgroups.py"]
    assert (s.timeout, s.accel, s.keep, s.memory_mb, s.setup_only) == (300, "tcg", True, 1024, False)
    assert harness.accel_arguments("tcg", s.cpu_model)[-2:] == ["-cpu", "qemu64"]
    assert s.workdir == harness.DEFAULT_WORKDIR


def test_environment_sets_defaults_and_options_win(tmp_path):
    env = {"MINIDOCKER_VM_DIR": str(tmp_path / "w"), "MINIDOCKER_VM_TIMEOUT": "1200",
           "MINIDOCKER_VM_ACCEL": "tcg"}
    s, args = harness.parse_command_line(["--vm-timeout", "60"], environ=env)
    assert (s.workdir, s.timeout, s.accel, args) == (str(tmp_path / "w"), 60, "tcg", [])


@pytest.mark.parametrize("argv,message", [
    (["--vm-accel", "hvf"], "auto, kvm or tcg"),
    (["--vm-timeout"], "needs a value"),
    (["--vm-timeout", "ten"], "whole number"),
    (["--vm-memory", "128"], "at least 512 MB"),
    (["--vm-frobnicate"], "unknown VM option --vm-frobnicate"),
    (["-k", "a\nb"], "newline"),
])
def test_bad_options_are_one_line_errors(argv, message):
    with pytest.raises(HarnessError, match=message):
        harness.parse_command_line(argv, environ={})


def test_run_reports_bad_options_with_125_and_one_line():
    r = subprocess.run([RUN, "--vm-accel", "hvf"], capture_output=True, text=True, timeout=60)
    assert r.returncode == harness.EXIT_HARNESS_ERROR == 125
    assert r.stderr.strip().splitlines() == ["vm: error: --vm-accel must be auto, kvm or tcg, not 'hvf'"]
    assert r.stdout == ""


def test_run_help_lists_the_vm_options():
    r = subprocess.run([RUN, "--vm-help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for option in ("--vm-workdir", "--vm-accel", "--vm-timeout", "--vm-keep", "--vm-setup-only"):
        assert option in r.stdout


# --------------------------------------------------------------------------- selection
def test_selection_file_is_read_like_the_conftest_reads_it(tmp_path):
    listing = tmp_path / "kernel-tests.txt"
    listing.write_text("# the cgroup tool\ntests/test_a.py\n\n  tests/test_b.py::test_x   # why\n")
    assert harness.read_selection(str(listing)) == ["tests/test_a.py", "tests/test_b.py::test_x"]
    # the conftest marks exactly what the harness runs
    assert harness.read_selection() == _kernel_selection()


def test_the_real_selection_names_tests_that_exist():
    selection = harness.read_selection()
    assert selection, "tests/vm/kernel-tests.txt selects nothing"
    assert harness.selection_problems(selection) == []


def test_selection_problems_name_the_entry(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_here():\n    pass\n\nclass TestK:\n"
                                                  "    def test_m(self):\n        pass\n")
    problems = harness.selection_problems(
        ["tests/test_a.py::test_here", "tests/test_a.py::test_here[1]", "tests/test_a.py::TestK::test_m",
         "tests/test_a.py::test_gone", "tests/test_nope.py", "tests/test_a.py::test_here"], repo=str(tmp_path))
    assert problems == ["tests/test_a.py::test_gone: tests/test_a.py defines no test_gone",
                        "tests/test_nope.py: no such file tests/test_nope.py",
                        "tests/test_a.py::test_here: listed twice"]


def test_named_tests_replace_the_selection():
    assert harness.names_tests(["-x", "tests/test_cgroups.py"])
    assert harness.names_tests(["tests/test_cgroups.py::test_format_bytes"])
    assert not harness.names_tests(["-x", "-k", "oom"])
    # an option's value is not a test to run
    assert not harness.names_tests(["--deselect", "tests/test_cgroups.py::test_format_bytes",
                                    "-k", "tests", "--junitxml", "tests/x.xml", "--durations", "5"])
    assert harness.names_tests(["--deselect", "tests/test_cgroups.py::test_x", "tests/test_cgroups.py"])
    assert not harness.names_tests([])


# --------------------------------------------------------------------------- accelerator
@pytest.fixture
def fake_kvm(tmp_path):
    """A /sys/module and a /dev/kvm stand-in: which modules back KVM is all that counts."""
    modules = tmp_path / "module"
    modules.mkdir()
    dev = tmp_path / "kvm"
    dev.write_text("")

    def with_modules(*names):
        for name in names:
            (modules / name).mkdir()
        return str(modules), str(dev)
    return with_modules


@pytest.mark.parametrize("modules,expected", [
    (("kvm", "kvm_intel"), "kvm"),
    (("kvm", "kvm_amd"), "kvm"),
    (("kvm", "kvm_pvm"), "tcg"),            # nested PVM: cannot boot a stock kernel
    (("kvm",), "tcg"),
])
def test_kvm_only_on_hardware_kvm(fake_kvm, modules, expected):
    sys_module, dev = fake_kvm(*modules)
    accel, why = harness.choose_accel("auto", sys_module, dev)
    assert accel == expected
    if modules == ("kvm", "kvm_pvm"):
        assert "kvm_pvm" in why


def test_no_dev_kvm_means_tcg_and_asking_for_kvm_then_fails(fake_kvm, tmp_path):
    sys_module, _ = fake_kvm("kvm", "kvm_intel")
    missing = str(tmp_path / "no-kvm")
    assert harness.choose_accel("auto", sys_module, missing)[0] == "tcg"
    assert harness.choose_accel("tcg", sys_module, missing)[0] == "tcg"
    with pytest.raises(HarnessError, match="missing or not usable"):
        harness.choose_accel("kvm", sys_module, missing)


def test_this_machine_gets_an_accelerator_qemu_accepts():
    accel, why = harness.choose_accel()
    assert accel in ("kvm", "tcg") and why
    args = harness.accel_arguments(accel)
    assert args[:2] == ["-accel", "kvm" if accel == "kvm" else "tcg,thread=multi"]


# --------------------------------------------------------------------------- kernel modules
MODULES_DEP = """\
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/fs/fuse/fuse.ko:
kernel/fs/fuse/virtiofs.ko: kernel/fs/fuse/fuse.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko
"""


def test_modules_load_after_what_they_need():
    deps = harness.parse_modules_dep(MODULES_DEP)
    assert deps["virtio_rng"] == ["virtio"]            # file virtio-rng.ko, module virtio_rng
    order = harness.load_order(["virtio_pci", "virtiofs", "overlay"], deps, builtin={"overlay"})
    assert sorted(order) == ["fuse", "virtio", "virtio_pci", "virtio_pci_modern_dev", "virtio_ring", "virtiofs"]
    for module, needs in deps.items():
        if module in order:
            assert all(order.index(n) < order.index(module) for n in needs), (module, order)


def test_unknown_module_and_dependency_loop_are_errors():
    with pytest.raises(HarnessError, match="nope is neither a module nor built in"):
        harness.load_order(["nope"], {})
    with pytest.raises(HarnessError, match="loop"):
        harness.load_order(["a"], {"a": ["b"], "b": ["a"]})


def test_compressed_modules_are_made_plain_for_busybox(tmp_path):
    (tmp_path / "kernel").mkdir()
    with lzma.open(tmp_path / "kernel" / "veth.ko.xz", "wb") as f:
        f.write(b"\x7fELF module")
    harness.decompress_modules(str(tmp_path))
    assert os.listdir(tmp_path / "kernel") == ["veth.ko"]
    assert (tmp_path / "kernel" / "veth.ko").read_bytes() == b"\x7fELF module"


def test_newest_complete_kernel_is_found(tmp_path):
    for version, complete in (("6.1.0-9-cloud-amd64", True), ("6.1.0-56-cloud-amd64", True),
                              ("6.1.0-60-cloud-amd64", False)):
        k = harness.Kernel(version, str(tmp_path / "kernel" / version))
        os.makedirs(k.modules_dir)
        os.makedirs(os.path.dirname(k.vmlinuz), exist_ok=True)
        open(k.vmlinuz, "w").close()
        if complete:
            open(os.path.join(k.modules_dir, "modules.dep"), "w").close()
    assert harness.find_kernel(str(tmp_path)).version == "6.1.0-56-cloud-amd64"
    assert harness.find_kernel(str(tmp_path / "empty")) is None


# --------------------------------------------------------------------------- initramfs
def test_cpio_archive_is_newc_as_cpio_reads_it(tmp_path):
    if not os.access(harness.BUSYBOX, os.X_OK):
        pytest.skip(f"needs {harness.BUSYBOX} (busybox-static)")
    cpio = harness.Cpio()
    cpio.directory("bin")
    cpio.file("bin/hello", b"#!/bin/sh\necho hi\n", 0o755)
    cpio.file("odd", b"x" * 5)
    cpio.char_device("console", 5, 1)
    archive = tmp_path / "a.cpio"
    archive.write_bytes(cpio.finish())
    listing = subprocess.run([harness.BUSYBOX, "cpio", "-t", "-v", "-F", str(archive)],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert [line.split()[-1] for line in listing] == ["bin", "bin/hello", "odd", "console"]
    assert listing[0].startswith("d") and listing[1].startswith("-rwxr-xr-x")
    assert listing[3].startswith("crw-------")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([harness.BUSYBOX, "cpio", "-i", "-d", "-F", str(archive), "bin/hello", "odd"],
                   cwd=out, check=True, capture_output=True)
    assert (out / "bin" / "hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (out / "odd").read_bytes() == b"xxxxx"


def test_initramfs_holds_init_busybox_and_modules_in_order(tmp_path, monkeypatch):
    if not os.access(harness.BUSYBOX, os.X_OK):
        pytest.skip(f"needs {harness.BUSYBOX} (busybox-static)")
    modules = []
    for name in ("virtio_ring", "virtio"):
        path = tmp_path / f"{name}.ko"
        path.write_bytes(f"module {name}".encode())
        modules.append((name, str(path)))
    recipe = {"init": os.path.join(harness.GUEST_DIR, "initramfs-init"), "modules": modules}
    archive = tmp_path / "initrd.cpio"
    archive.write_bytes(gzip.decompress(harness.build_initramfs(recipe)))
    names = subprocess.run([harness.BUSYBOX, "cpio", "-t", "-F", str(archive)],
                           capture_output=True, text=True, check=True).stdout.split()
    for name in ("init", "bin/busybox", "dev/console", "modules/virtio_ring.ko", "modules/virtio.ko",
                 "modules/order", "newroot", "lower", "rw"):
        assert name in names
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([harness.BUSYBOX, "cpio", "-i", "-d", "-F", str(archive), "modules/order"],
                   cwd=out, check=True, capture_output=True)
    assert (out / "modules" / "order").read_text() == "virtio_ring\nvirtio\n"


def test_guest_scripts_are_executable_and_parse():
    guest = harness.GUEST_DIR
    for name in ("init", "initramfs-init", "modprobe"):
        assert os.access(os.path.join(guest, name), os.X_OK), name
    assert os.access(RUN, os.X_OK)
    subprocess.run(["bash", "-n", os.path.join(guest, "init")], check=True)
    if os.access(harness.BUSYBOX, os.X_OK):
        subprocess.run([harness.BUSYBOX, "sh", "-n", os.path.join(guest, "initramfs-init")], check=True)


# --------------------------------------------------------------------------- the boot
def test_kernel_command_line_makes_a_pure_cgroup_v2_guest(tmp_path):
    kernel = harness.Kernel("6.1.0-56-cloud-amd64", "/var/tmp/vm/kernel/6.1.0-56-cloud-amd64")
    line = harness.kernel_command_line("/work/main", "/var/tmp/vm/runs/r1", kernel).split()
    assert "cgroup_no_v1=all" in line and "console=ttyS0" in line and "panic=-1" in line
    assert "mdvm.checkout=/work/main" in line and "mdvm.run=/var/tmp/vm/runs/r1" in line
    assert "mdvm.init=/work/main/tests/vm/guest/init" in line
    assert "mdvm.modules=/var/tmp/vm/kernel/6.1.0-56-cloud-amd64/lib/modules" in line
    with pytest.raises(HarnessError, match="spaces"):
        harness.kernel_command_line("/home/me/my checkout", "/r", kernel)


def test_qemu_gets_no_network_card_and_one_share_per_socket():
    kernel = harness.Kernel("v", "/k")
    argv = harness.qemu_command("tcg", kernel, "/i.gz", "console=ttyS0",
                                {"hostroot": "/r/hostroot.sock", "run": "/r/run.sock"}, 2048, 2)
    assert "-nodefaults" in argv and "-no-reboot" in argv
    assert not any(a.startswith(("-net", "-nic")) for a in argv)
    assert "memory-backend-memfd,id=mem,size=2048M,share=on" in argv    # virtiofs needs it
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    assert devices == ["vhost-user-fs-pci,chardev=fs0,tag=hostroot", "vhost-user-fs-pci,chardev=fs1,tag=run"]
    assert argv[argv.index("-kernel") + 1] == "/k/boot/vmlinuz-v"


def test_the_power_cut_pass_gets_a_disk_and_its_own_option():
    s, args = harness.parse_command_line(["--vm-reboot"], environ={})
    assert s.reboot and args == []
    kernel = harness.Kernel("v", "/k")
    argv = harness.qemu_command("tcg", kernel, "/i.gz", "console=ttyS0", {}, 2048, 2,
                                disks=["/r/disk.img"])
    assert argv[argv.index("-drive") + 1] == "file=/r/disk.img,if=virtio,format=raw,cache=writeback"
    assert "--vm-reboot" in harness.USAGE
    with open(os.path.join(REPO, harness.REBOOT_TESTS)) as f:
        source = f.read()
    assert "def test_phase1(" in source and "def test_phase2(" in source
    assert harness.POWER_CUT_MARK.decode() in source


def test_a_boot_that_prints_the_mark_loses_its_power_at_once(tmp_path):
    vm = harness.Run(Settings(workdir=str(tmp_path / "w"), timeout=60), lambda m: None)
    start = time.monotonic()
    try:
        status = vm.boot(["sh", "-c", "echo up; echo CUT-NOW; exec sleep 60"],
                         str(tmp_path / "console.log"), cut_power_on=b"CUT-NOW")
    finally:
        vm.close()
    assert status == -signal.SIGKILL and time.monotonic() - start < 30
    assert (tmp_path / "console.log").read_text() == "up\nCUT-NOW\n"


def test_virtiofsd_shares_with_the_chroot_sandbox():
    for binary in harness.VIRTIOFSD_PATHS:
        argv = harness.virtiofsd_command(binary, "/s.sock", "/", "always")
        assert "sandbox=chroot" in " ".join(argv)
        assert "--socket-path=/s.sock" in argv


def test_guest_settings_survive_bash_quoting(tmp_path):
    args = ["-k", "oom and not v1", "it's", "$HOME", "tests/test_cgroups.py::test_x[a b]"]
    settings = tmp_path / "settings.sh"
    settings.write_text(harness.guest_settings(Settings(timeout=900), args, "the selection's",
                                               {"MINIDOCKER_VM_REBOOT": "it's 1"}))
    out = subprocess.run(["bash", "-c", f'. {settings}; printf "%s\\0" "${{PYTEST_ARGS[@]}}"; '
                          'printf "%s\\0%s\\0" "$PYTEST_SUMMARY" "$PYTEST_DEADLINE"; '
                          'bash -c \'printf %s "$MINIDOCKER_VM_REBOOT"\''],
                         capture_output=True, text=True, check=True).stdout
    *got, summary, deadline, exported = out.split("\0")
    assert got == args
    assert summary == "the selection's"
    assert int(deadline) < 900
    assert exported == "it's 1"


# --------------------------------------------------------------------------- cleaning up
def test_a_daemon_that_dies_is_reported_and_nothing_is_left(tmp_path):
    fake = tmp_path / "fake-virtiofsd"
    fake.write_text("#!/bin/sh\necho 'virtiofsd: cannot share /nowhere' >&2\nexit 1\n")
    fake.chmod(0o755)
    vm = harness.Run(Settings(workdir=str(tmp_path / "w")), lambda m: None)
    try:
        sockets = {"x": vm.share(str(fake), "x", "/nowhere", "auto")}
        with pytest.raises(HarnessError, match="cannot share /nowhere"):
            vm.wait_for_sockets(sockets, timeout=30)
    finally:
        vm.close()
    assert os.listdir(tmp_path / "w" / "runs") == []


def test_a_timed_out_boot_is_killed(tmp_path):
    vm = harness.Run(Settings(workdir=str(tmp_path / "w"), timeout=1), lambda m: None)
    try:
        status = vm.boot(["sh", "-c", "echo booting; exec sleep 60"], str(tmp_path / "console.log"))
        pid = vm.processes[-1].pid
    finally:
        vm.close()
    assert status is None
    assert vm.processes[-1].returncode == -signal.SIGKILL
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert (tmp_path / "console.log").read_text() == "booting\n"


def test_stale_runs_are_cleaned_but_live_ones_left_alone(tmp_path):
    runs = tmp_path / "runs"
    stale, live = runs / "run-stale", runs / "run-live"
    stale.mkdir(parents=True)
    live.mkdir()
    leftover = subprocess.Popen(["sleep", "60"])
    try:
        dead = subprocess.Popen(["true"])
        dead.wait()
        (stale / "processes").write_text(f"{dead.pid} 1 harness\n")
        harness.record_process(str(stale), "virtiofsd hostroot", leftover.pid)
        (stale / "hostroot.sock").write_text("")
        harness.record_process(str(live), "harness", os.getpid())
        messages = []
        harness.clean_stale_runs(str(tmp_path), messages.append)
        assert leftover.wait(timeout=10) == -signal.SIGKILL
        assert messages == [f"stopping virtiofsd hostroot (pid {leftover.pid}) left by an earlier run"]
        assert sorted(os.listdir(runs)) == ["run-live"]
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def test_a_reused_pid_is_not_killed(tmp_path):
    """A record whose pid now belongs to another process (another start time) is
    someone else's process: only the run dir goes."""
    stale = tmp_path / "runs" / "run-old"
    stale.mkdir(parents=True)
    other = subprocess.Popen(["sleep", "60"])
    try:
        (stale / "processes").write_text(f"999999999 1 harness\n{other.pid} 12345 qemu\n")
        harness.clean_stale_runs(str(tmp_path), lambda m: None)
        time.sleep(0.1)
        assert other.poll() is None
        assert not stale.exists()
    finally:
        other.kill()
        other.wait()


def test_an_ordinary_user_is_told_it_needs_root(tmp_path):
    """virtiofsd must read the whole host root: the harness refuses at once, with a
    one-line reason, before it installs or starts anything."""
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to run the harness as uid 1000")
    r = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                        "/usr/bin/python3", RUN, "--vm-setup-only", f"--vm-workdir={tmp_path}/w"],
                       capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    if "Permission denied" in r.stderr and "harness" not in r.stderr:
        pytest.skip(f"uid 1000 cannot read the checkout: {r.stderr.strip()}")
    assert r.returncode == 125, r.stderr
    assert r.stderr.strip().splitlines() == ["vm: error: the VM harness needs root (virtiofsd shares the host's /)"]
    assert not os.path.exists(tmp_path / "w")


def test_workdir_layout_is_inside_the_workdir(tmp_path):
    vm = harness.Run(Settings(workdir=str(tmp_path)), lambda m: None)
    try:
        assert os.path.dirname(vm.dir) == str(tmp_path / "runs")
        with open(os.path.join(vm.dir, "processes")) as f:
            assert f.read().split()[::2] == [str(os.getpid()), "harness"]
    finally:
        vm.close()
    assert not os.path.exists(vm.dir)
    shutil.rmtree(tmp_path / "runs")
