"""The build loop: one Dockerfile instruction after the other, one image per step.

This is Docker's *classic* builder (``DOCKER_BUILDKIT=0 docker build``), the one on the
slide. Each step starts from the image the previous step made (its *parent*) and makes a
new image: a metadata instruction (ENV, CMD...) only changes the config; RUN runs the
command in a container and keeps what it changed as a new layer; COPY/ADD make a layer
from the context's files. Before doing a step the builder asks the cache whether that
exact step was already done on that exact parent (``---> Using cache``).

What it prints, line by line, is Docker's::

    Sending build context to Docker daemon  2.048kB
    Step 1/3 : FROM busybox
     ---> 3f57d9401f8d
    Step 2/3 : RUN echo hi
     ---> Running in 5a1d7e2b9c3f
    hi
    Removing intermediate container 5a1d7e2b9c3f
     ---> 1a2b3c4d5e6f
    Step 3/3 : CMD ["sh"]
     ---> Using cache
     ---> 0d9c7e3a2b1f
    Successfully built 0d9c7e3a2b1f
    Successfully tagged hello:latest

(One difference, on purpose: Docker also makes and removes a throw-away container for
a metadata-only step; nothing runs in it, so minidocker skips it.)

Multi-stage builds: every ``FROM`` starts a *stage*; ``COPY --from=<stage>`` reads
another stage's result; ``--target`` stops after the named stage. If the build fails,
the images this build made are removed again (and no tag is set), so a failed build
leaves nothing behind but the images earlier builds had already cached.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys

from . import BuildError
from .cache import StepCache, step_key
from ..units import human_size
from .context import BuildContext
from .expand import ExpansionError, env_dict, process_word
from .files import ImageView, Staging
from .instructions import DEFAULT_PATH, PREPARE, Step, cfg
from .parser import Instruction, parse_file, parse_instruction_text
from .. import clock, scratch
from ..crashpoint import reached as crash_point
from ..errors import MinidockerError, NotFound
from ..engine import commit as engine_commit
from ..engine import create as engine_create
from ..engine import lifecycle
from ..engine.commit import store_layer_from_upperdir
from ..kernel import processes
from ..image.store import Store, host_architecture, normalize_name, overlay_layer_dirs

STAGE_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")

#: Docker's predefined build args: usable by RUN without an ARG line, and left out of
#: the cache key and the history (a proxy setting must not change the image)
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
              "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


def scratch_config() -> dict:
    """The config of an empty image. Docker gives every build stage a PATH."""
    return {"architecture": host_architecture(), "os": "linux",
            "config": {"Env": [DEFAULT_PATH]},
            "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


class Stage:
    """The state of one build stage: the image so far, and the Dockerfile's scope."""

    def __init__(self, build: "Build", name: str | None, index: int):
        self.build = build
        self.store = build.store
        self.name = name
        self.index = index
        self.image_id: str | None = None
        self.config = scratch_config()
        self.layers: list[dict] = []
        self.args: dict[str, str | None] = {}   # ARGs declared in this stage
        self.cmd_set = False                      # "CMD was set in this stage"
        self.added_layer = False                  # did the current step add a layer
        self.escape = build.dockerfile.escape

    # -- the image so far
    def load_image(self, image_id: str) -> None:
        config = self.store.image_config(image_id)
        manifest = self.store.image_manifest(image_id)
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        self.layers = [dict(layer, diff_id=diff_id)
                       for layer, diff_id in zip(manifest.get("layers", []), diff_ids)]
        self.config = config
        self.image_id = image_id

    def layer_dirs(self) -> list[str]:
        return overlay_layer_dirs(self.store.layer_dir(layer["diff_id"]) for layer in self.layers)

    def view(self) -> ImageView:
        return ImageView(self.layer_dirs())

    def new_staging(self) -> Staging:
        path = scratch.mkdtemp(self.store.root, "staging")
        self.build.scratch_dirs.append(path)
        return Staging(path, self.view())

    def add_layer_from(self, staging: Staging) -> None:
        """Turn a staging dir (an overlay-upper-like tree) into a new layer on top."""
        self.add_layer_from_upper(staging.path)

    def add_layer_from_upper(self, upper: str, exclude=()) -> None:
        """Pack an upper dir into a new layer on top (streamed into the store, as
        ``commit`` does); ``exclude``: the engine's mount points, not part of an image."""
        descriptor = store_layer_from_upperdir(self.store, upper, self.layer_dirs(), exclude)
        self.layers.append(descriptor)
        rootfs = self.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        rootfs["diff_ids"] = [layer["diff_id"] for layer in self.layers]
        self.added_layer = True

    # -- the Dockerfile's scope
    def allowed_args(self) -> dict[str, str]:
        """Declared ARGs that have a value and are not shadowed by an ENV of the same
        name (Docker: "an ENV instruction always overrides an ARG of the same name")."""
        env = env_dict(cfg(self).get("Env") or [])
        return {k: v for k, v in self.args.items() if v is not None and k not in env}

    def expansion_env(self) -> dict[str, str]:
        env = env_dict(cfg(self).get("Env") or [])
        env.update(self.allowed_args())
        return env

    def run_args(self) -> list[str]:
        return [f"{k}={v}" for k, v in sorted(self.allowed_args().items())]


class Build:
    """One ``minidocker build``."""

    def __init__(self, context_dir: str, dockerfile: str | None = None, tags=(),
                 build_args: dict[str, str] | None = None, target: str | None = None,
                 no_cache: bool = False, quiet: bool = False, network: str = "none",
                 out=None, store=None, labels: dict[str, str] | None = None):
        self.store = store or Store()
        self.tags = [normalize_name(t) for t in tags]   # bad names fail before any work
        self.context_dir = context_dir
        path = dockerfile or os.path.join(context_dir, "Dockerfile")
        self.context = BuildContext(context_dir)
        self.dockerfile = parse_file(path)
        if labels:
            # ``--label``: as Docker's classic builder, one more instruction at the end
            # of the Dockerfile (it shows as the last step).
            self.dockerfile.instructions.append(parse_instruction_text(
                "LABEL " + " ".join(f"{_quoted(k)}={_quoted(v)}" for k, v in sorted(labels.items())),
                path, len(self.dockerfile.instructions) + 1))
        self.build_args = dict(build_args or {})
        self.meta_args: dict[str, str | None] = {}
        self.used_args: set[str] = {a for a in PROXY_ARGS if a in self.build_args}
        self.target = target
        self.no_cache = no_cache
        self.quiet = quiet
        self.network = network
        self.out = out or sys.stdout
        self.cache = StepCache(self.store.root)
        self.tmp_dir = os.path.join(self.store.root, "tmp")
        os.makedirs(self.tmp_dir, exist_ok=True)
        self.scratch_dirs: list[str] = []
        self.created_images: list[str] = []
        self.images_before = set(self.store.image_ids())   # never discard one of these
        self.stages: list[Stage] = []

    # ------------------------------------------------------------------ output
    def say(self, text: str) -> None:
        if not self.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    # ------------------------------------------------------------------ plan
    def instructions_to_run(self) -> list[Instruction]:
        """All instructions, cut after the ``--target`` stage; checks that there is a
        FROM before anything but ARG."""
        insts = self.dockerfile.instructions
        seen_from = False
        for inst in insts:
            if inst.keyword == "FROM":
                seen_from = True
            elif not seen_from and inst.keyword != "ARG":
                raise inst.error(f"{inst.keyword} before the first FROM: a Dockerfile must "
                                 "start with FROM (only ARG may come before it)")
        if not seen_from:
            raise BuildError(f"{self.dockerfile.path}: no FROM instruction: nothing to build on")
        if self.target is None:
            return insts
        end = None
        for i, inst in enumerate(insts):
            if inst.keyword == "FROM" and self.stage_name_of(inst) == self.target.lower():
                end = i
            elif end is not None and inst.keyword == "FROM":
                return insts[:i]
        if end is None:
            raise BuildError(f"failed to reach build target {self.target} in Dockerfile")
        return insts

    @staticmethod
    def stage_name_of(inst: Instruction) -> str | None:
        args = inst.args
        if len(args) == 3 and args[1].upper() == "AS":
            return args[2].lower()
        return None

    # ------------------------------------------------------------------ run
    def run(self) -> str:
        """Build; returns the final image id (``sha256:...``)."""
        insts = self.instructions_to_run()
        self.say(f"Sending build context to Docker daemon  {human_size(self.context.tar_size(), 4)}")
        try:
            total = len(insts)
            stage = None
            for number, inst in enumerate(insts, 1):
                self.say(f"Step {number}/{total} : {inst.display()}")
                if inst.keyword == "FROM":
                    stage = self.begin_stage(inst)
                elif stage is None:   # ARG before the first FROM: a global ("meta") arg
                    self.declare_meta_arg(inst)
                    continue
                else:
                    self.do_step(stage, inst)
                self.say(f" ---> {short(stage.image_id)}")
            final = self.stages[-1]
            if final.image_id is None:
                raise BuildError("No image was generated. Is your Dockerfile empty?")
            unused = sorted(set(self.build_args) - self.used_args)
            if unused:
                self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
            for tag in self.tags:
                self.store.tag(final.image_id, tag)
            self.say(f"Successfully built {short(final.image_id)}")
            for tag in self.tags:
                self.say(f"Successfully tagged {tag}")
            if self.quiet:
                self.out.write(final.image_id + "\n")
                self.out.flush()
            return final.image_id
        except BaseException:
            self.discard_created_images()
            raise
        finally:
            for path in self.scratch_dirs:
                shutil.rmtree(path, ignore_errors=True)

    def discard_created_images(self) -> None:
        """A failed build takes back the images it made (newest first), so that it
        leaves no half-built result behind."""
        for image_id in reversed(self.created_images):
            try:
                if not self.store.tags_of(image_id):
                    self.store.delete_image(image_id, event=False)
            except (NotFound, OSError):
                pass

    # ------------------------------------------------------------------ FROM
    def declare_meta_arg(self, inst: Instruction) -> None:
        if inst.keyword != "ARG":
            raise inst.error("only ARG may come before the first FROM")
        for word in inst.args:
            name, eq, default = word.partition("=")
            if name in self.build_args:
                value = self.build_args[name]
            elif eq:
                value = self.expand_meta(inst, default)
            else:
                value = None
            self.meta_args[name] = value
            self.used_args.add(name)

    def expand_meta(self, inst: Instruction, word: str) -> str:
        env = {k: v for k, v in self.meta_args.items() if v is not None}
        try:
            return process_word(word, env, self.dockerfile.escape)
        except ExpansionError as e:
            raise inst.error(str(e)) from None

    def begin_stage(self, inst: Instruction) -> Stage:
        """``FROM image [AS name]``: a new stage starting from ``image``, ``scratch`` or
        an earlier stage. Only global ARGs (declared before the first FROM) expand here."""
        args = inst.args
        if len(args) not in (1, 3) or (len(args) == 3 and args[1].upper() != "AS"):
            raise inst.error("FROM requires either one or three arguments: FROM <image> [AS <name>]")
        name = self.stage_name_of(inst)
        if name is not None:
            if not STAGE_NAME.match(name):
                raise inst.error(f"invalid name for build stage: {args[2]!r}, "
                                 "name can't start with a number or contain symbols")
            if any(s.name == name for s in self.stages):
                raise inst.error(f"duplicate name {name!r} for build stage")
        if "platform" in inst.flags:
            platform = self.expand_meta(inst, str(inst.flags["platform"]))
            if platform not in ("linux", f"linux/{host_architecture()}"):
                raise inst.error(f"FROM --platform={platform}: minidocker builds only for "
                                 f"linux/{host_architecture()}")
        base = self.expand_meta(inst, args[0])
        if not base:
            raise inst.error("FROM: base name should not be blank")
        stage = Stage(self, name, len(self.stages))
        if base.lower() != "scratch":
            stage.load_image(self.base_image_id(inst, base))
        self.stages.append(stage)
        self.run_triggers(stage, inst)
        return stage

    def base_image_id(self, inst: Instruction, ref: str) -> str:
        for earlier in self.stages:
            if earlier.name == ref.lower() or str(earlier.index) == ref:
                if earlier.image_id is None:
                    raise inst.error(f"stage {ref!r} is empty (FROM scratch with no steps)")
                return earlier.image_id
        try:
            return self.store.resolve(ref)
        except NotFound as e:
            raise inst.error(f"{e} (minidocker builds only from local images: "
                             "pull or import it first)") from None
        except MinidockerError as e:
            raise inst.error(str(e)) from None

    def run_triggers(self, stage: Stage, from_inst: Instruction) -> None:
        """A base image's ONBUILD triggers run right after FROM, then are dropped from
        the new image (Docker: "triggers are not inherited by grand-children")."""
        triggers = list(cfg(stage).get("OnBuild") or [])
        if not triggers:
            return
        self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
        cfg(stage)["OnBuild"] = None
        for text in triggers:
            try:
                trigger = parse_instruction_text(text, from_inst.path, from_inst.line)
            except Exception as e:  # a broken trigger in someone else's image
                raise from_inst.error(f"invalid ONBUILD trigger {text!r}: {e}") from None
            if trigger.keyword in ("FROM", "ONBUILD", "MAINTAINER"):
                raise from_inst.error(f"{trigger.keyword} isn't allowed as an ONBUILD trigger")
            self.do_step(stage, trigger)

    # ------------------------------------------------------------------ one step
    def do_step(self, stage: Stage, inst: Instruction) -> None:
        step: Step = PREPARE[inst.keyword](self, stage, inst)
        text = step.text
        if inst.keyword == "ENTRYPOINT":
            text += f" (cmd set: {stage.cmd_set})"
        parent = stage.image_id or "scratch"
        key = step_key(parent, text, step.sources)
        if not self.no_cache:
            cached = self.cache.lookup(key, self.store)
            if cached is not None:
                self.say(" ---> Using cache")
                stage.load_image(cached)
                return
        stage.added_layer = False
        if step.apply is not None:
            step.apply()
        self.commit(stage, step)
        self.cache.record(key, stage.image_id)
        crash_point("step-committed")

    def commit(self, stage: Stage, step: Step) -> None:
        """Write the stage's current config and layers as a new image."""
        created = clock.rfc3339()
        stage.config["created"] = created
        # Docker's classic builder names the parent image in the config: what lets
        # ``images`` tell a build's intermediate steps from images people made
        cfg(stage)["Image"] = stage.image_id or ""
        entry = {"created": created,
                 "created_by": step.history if step.history else f"/bin/sh -c #(nop)  {step.text}"}
        if not stage.added_layer:
            entry["empty_layer"] = True
        stage.config["history"] = list(stage.config.get("history") or []) + [entry]
        stage.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        stage.config["rootfs"]["diff_ids"] = [layer["diff_id"] for layer in stage.layers]
        image_id = self.store.write_image(stage.config, stage.layers)
        if image_id not in self.images_before:
            self.created_images.append(image_id)
        stage.load_image(image_id)

    # ------------------------------------------------------------------ COPY --from
    def source_view(self, ref: str, inst: Instruction) -> ImageView:
        """The file tree of ``--from=<stage name, stage index or image>``."""
        for stage in self.stages:
            if stage.name == ref.lower() or str(stage.index) == ref:
                if stage is self.stages[-1]:
                    raise inst.error(f"circular dependency: --from={ref} is the current stage")
                return stage.view()
        try:
            image_id = self.store.resolve(ref)
        except MinidockerError:
            raise inst.error(f"--from={ref}: no build stage and no local image of that name") from None
        return ImageView(self.store.layer_dirs(image_id))

    # ------------------------------------------------------------------ RUN
    def run_command(self, stage: Stage, inst: Instruction, command: list[str],
                    args: list[str]) -> None:
        """RUN: the command in a container of the engine (same runtime, same isolation
        as ``minidocker run``), on top of the current image; what it changed (the
        container's overlay upper dir) becomes the step's layer."""
        if stage.image_id is None:
            # a container needs an image to start from: record the scratch stage first
            self.commit(stage, Step("(scratch)"))
        declared = {a.partition("=")[0] for a in args}
        proxies = [f"{k}={self.build_args[k]}" for k in PROXY_ARGS
                   if k in self.build_args and k not in declared]
        opts = {"entrypoint": "", "env": args + proxies, "network": self.network, "pull": False,
                "owner": processes.identity(),   # a killed build's container goes too
                "workdir": cfg(stage).get("WorkingDir") or None,
                "user": cfg(stage).get("User") or None}
        container = engine_create.create_container(self.store, stage.image_id, command, opts)
        self.say(f" ---> Running in {container.short_id}")
        try:
            with self.output_for_run():
                code = lifecycle.start(container, self.store, attach=True)
            if code != 0:
                shown = json.dumps(command) if inst.json else " ".join(command)
                raise BuildError(f"The command '{shown}' returned a non-zero code: {code}")
            # The files the engine mounts in every container (/etc/hosts...) are left
            # out, as Docker does: they belong to the container, not to the image. The
            # mount points of the image's VOLUMEs stay: Docker and buildah both leave
            # those directories in the layer (what the step wrote *into* a volume is
            # discarded with the volume: Docker's "changes to a volume after it is
            # declared are lost").
            volumes = {v.strip("/") for v in (cfg(stage).get("Volumes") or {})}
            exclude = {p for p in engine_commit.engine_made_paths(container)
                       if p not in volumes}
            stage.add_layer_from_upper(container.upper_dir, exclude=exclude)
        finally:
            lifecycle.remove(container.reload(), force=True, volumes=True)
            self.say(f"Removing intermediate container {container.short_id}")

    @contextlib.contextmanager
    def output_for_run(self):
        """The engine writes a container's output to our fds 1 and 2; with ``-q`` they
        point at /dev/null meanwhile, and our own buffered output goes first."""
        self.out.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        if not self.quiet:
            yield
            return
        saved = os.dup(1), os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 1)
            os.dup2(null, 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in (*saved, null):
                os.close(fd)


def _quoted(text: str) -> str:
    """A word for a LABEL line, taken literally: single quotes (no $ expansion there),
    or double quotes with the special characters escaped."""
    if "\n" in text:
        raise BuildError(f"a label cannot hold a newline: {text!r}")
    if "'" not in text:
        return f"'{text}'"
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def short(image_id: str | None) -> str:
    return image_id[7:19] if image_id else ""
