"""What each Dockerfile instruction does, following Docker's reference ("Dockerfile
reference", docs.docker.com) and the classic builder's behaviour.

Each instruction is handled in two halves, because of the cache:

- ``prepare_<kw>(build, stage, inst) -> Step`` expands the instruction's words and says
  what the step *is* (its text after expansion, and for COPY/ADD a digest of the files):
  that is what the cache key is made of. Things that are not part of the image but of the
  Dockerfile's own scope (declaring an ARG, "CMD was set in this stage") happen here,
  hit or miss.
- ``Step.apply()`` does the work: changes ``stage.config`` and maybe adds a layer. It
  runs only when the cache has no result for the key.

Which words are expanded (``$VAR``) is Docker's list: ADD, COPY, ENV, EXPOSE, FROM,
LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ARG (and ONBUILD's trigger, later). RUN, CMD,
ENTRYPOINT, SHELL and HEALTHCHECK are *not* expanded by the builder: the shell in the
container does it when the command runs.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import signal
import stat
import tempfile
from dataclasses import dataclass, field
from typing import Callable

from . import remote
from .cache import SourcesDigest
from .context import clean_path, go_match, has_wildcards
from .expand import ExpansionError, process_word, process_words
from .files import (ImageView, copy_host_entries, copy_image_tree,
                    extract_archive, is_local_archive, parse_chown, parse_user)
from .parser import Instruction
from ..errors import InvalidInput

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]


@dataclass
class Step:
    """One build step, ready for the cache lookup."""

    text: str                               # the instruction after expansion
    apply: Callable[[], None] | None = None  # do the work (cache miss)
    sources: str = ""                        # COPY/ADD: digest of the copied files
    creates_layer: bool = False              # RUN/COPY/ADD/WORKDIR may add a layer
    history: str = ""                        # the image history's created_by


# --------------------------------------------------------------------------- helpers
def expand(stage, inst: Instruction, word: str) -> str:
    try:
        return process_word(word, stage.expansion_env(), stage.escape)
    except ExpansionError as e:
        raise inst.error(str(e)) from None


def expand_words(stage, inst: Instruction, word: str) -> list[str]:
    try:
        return process_words(word, stage.expansion_env(), stage.escape)
    except ExpansionError as e:
        raise inst.error(str(e)) from None


def cfg(stage) -> dict:
    """The ``config`` part of the image config (Env, Cmd, ...), created if missing."""
    return stage.config.setdefault("config", {})


def shell_or_exec(stage, inst: Instruction) -> list[str]:
    """RUN/CMD/ENTRYPOINT: exec form as written; shell form wrapped in the SHELL
    (``["/bin/sh", "-c", "<the text>"]``). A shell-form heredoc (``RUN <<EOF``) runs its
    body as the script."""
    if inst.json:
        return list(inst.args)
    shell = cfg(stage).get("Shell") or DEFAULT_SHELL
    text = " ".join(inst.args)
    if inst.heredocs:
        if re.fullmatch(r"<<-?['\"]?" + re.escape(inst.heredocs[0][0]) + r"['\"]?", text.strip()):
            text = inst.heredocs[0][1]          # the heredoc *is* the script
        else:                                   # a heredoc fed to a command: the shell reads it
            text = inst.original.split(None, 1)[1]
    return list(shell) + [text]


def key_value_pairs(stage, inst: Instruction) -> list[tuple[str, str]]:
    """ENV and LABEL: Docker's parser already split ``K=V K2="v 2"`` (and the old
    ``ENV K some value`` form) into key, value, key, value...; both get expanded, which
    also removes their quotes."""
    if len(inst.args) % 2:
        raise inst.error(f"{inst.keyword} requires at least one argument")
    pairs = []
    for i in range(0, len(inst.args), 2):
        key = expand(stage, inst, inst.args[i])
        value = expand(stage, inst, inst.args[i + 1])
        if not key:
            raise inst.error(f"{inst.keyword} names can not be blank")
        pairs.append((key, value))
    return pairs


def set_env(env: list[str], key: str, value: str) -> list[str]:
    """Replace ``key`` in place (its position in Env is kept), or append it."""
    out = list(env)
    for i, item in enumerate(out):
        if item.partition("=")[0] == key:
            out[i] = f"{key}={value}"
            return out
    out.append(f"{key}={value}")
    return out


def json_list(values) -> str:
    return json.dumps(list(values))


# --------------------------------------------------------------------------- metadata
def prepare_env(build, stage, inst: Instruction) -> Step:
    pairs = key_value_pairs(stage, inst)
    text = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)

    def apply():
        env = cfg(stage).get("Env") or []
        for key, value in pairs:
            env = set_env(env, key, value)
        cfg(stage)["Env"] = env
    return Step(text, apply)


def prepare_label(build, stage, inst: Instruction) -> Step:
    pairs = key_value_pairs(stage, inst)
    text = "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)

    def apply():
        labels = dict(cfg(stage).get("Labels") or {})
        labels.update(pairs)
        cfg(stage)["Labels"] = labels
    return Step(text, apply)


def prepare_maintainer(build, stage, inst: Instruction) -> Step:
    author = expand(stage, inst, " ".join(inst.args))

    def apply():
        stage.config["author"] = author
    return Step(f"MAINTAINER {author}", apply)


def prepare_cmd(build, stage, inst: Instruction) -> Step:
    cmd = shell_or_exec(stage, inst)
    stage.cmd_set = True

    def apply():
        cfg(stage)["Cmd"] = cmd
    return Step(f"CMD {json_list(cmd)}", apply)


def prepare_entrypoint(build, stage, inst: Instruction) -> Step:
    entrypoint = shell_or_exec(stage, inst)
    cmd_set_here = stage.cmd_set

    def apply():
        cfg(stage)["Entrypoint"] = entrypoint or None
        # Docker: "If CMD is defined from the base image, setting ENTRYPOINT will reset
        # CMD to an empty value" -- unless this Dockerfile's stage set CMD already.
        if not cmd_set_here:
            cfg(stage)["Cmd"] = None
    return Step(f"ENTRYPOINT {json_list(entrypoint)}", apply)


def prepare_shell(build, stage, inst: Instruction) -> Step:
    if not inst.json:
        raise inst.error("SHELL requires the arguments to be in JSON form")
    if not inst.args:
        raise inst.error("SHELL requires at least one argument")
    shell = list(inst.args)

    def apply():
        cfg(stage)["Shell"] = shell
    return Step(f"SHELL {json_list(shell)}", apply)


def normalise_port(inst: Instruction, spec: str) -> list[str]:
    """``80`` -> ``80/tcp``; ``8000-8002/udp`` -> three ports (Docker expands ranges)."""
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise inst.error(f"invalid proto: {proto}")
    low, dash, high = port.partition("-")
    try:
        first, last = int(low), int(high) if dash else int(low)
    except ValueError:
        raise inst.error(f"invalid containerPort: {port}") from None
    if not (0 < first <= last <= 65535):
        raise inst.error(f"invalid containerPort: {port}")
    return [f"{p}/{proto}" for p in range(first, last + 1)]


def prepare_expose(build, stage, inst: Instruction) -> Step:
    if not inst.args:
        raise inst.error("EXPOSE requires at least one argument")
    ports = []
    for word in inst.args:
        for spec in expand_words(stage, inst, word):
            if ":" in spec:
                raise inst.error("EXPOSE does not publish ports: use -p when running "
                                 f"({spec!r} has a host part)")
            ports += normalise_port(inst, spec)

    def apply():
        exposed = dict(cfg(stage).get("ExposedPorts") or {})
        for port in ports:
            exposed[port] = {}
        cfg(stage)["ExposedPorts"] = exposed
    return Step("EXPOSE " + " ".join(sorted(set(ports))), apply)


def prepare_volume(build, stage, inst: Instruction) -> Step:
    volumes = [expand(stage, inst, v) for v in inst.args]
    if not volumes or any(not v.strip() for v in volumes):
        raise inst.error("VOLUME specified can not be an empty string")

    def apply():
        current = dict(cfg(stage).get("Volumes") or {})
        for v in volumes:
            current[v] = {}
        cfg(stage)["Volumes"] = current
    return Step(f"VOLUME {json_list(volumes)}", apply)


def prepare_user(build, stage, inst: Instruction) -> Step:
    """``USER name[:group]``. Docker counts the arguments *before* expansion: ``USER``
    alone is an error, but ``USER $EMPTY`` (a word that expands to nothing) is one
    argument, and sets the user to "" -- unset, so the next RUN and the container run
    as root, whatever an earlier USER said."""
    if not inst.args:
        raise inst.error("USER requires exactly one argument")
    user = expand(stage, inst, " ".join(inst.args)).strip()

    def apply():
        cfg(stage)["User"] = user
    return Step(f"USER {user}", apply)


SIGNALS = {s.name: s for s in signal.Signals}


def prepare_stopsignal(build, stage, inst: Instruction) -> Step:
    sig = expand(stage, inst, " ".join(inst.args)).strip()
    name = sig.upper()
    valid = sig.isdigit() and 0 < int(sig) < 65 or name in SIGNALS or "SIG" + name in SIGNALS \
        or re.fullmatch(r"(SIG)?RTM(IN|AX)([+-]\d+)?", name) is not None
    if not valid:
        raise inst.error(f"Invalid signal: {sig}")

    def apply():
        cfg(stage)["StopSignal"] = sig
    return Step(f"STOPSIGNAL {sig}", apply)


DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
UNIT_NS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10 ** 6, "s": 10 ** 9, "m": 60 * 10 ** 9,
           "h": 3600 * 10 ** 9}


def parse_duration(inst: Instruction, flag: str, text: str) -> int:
    """A Go duration (``30s``, ``1m30s``) in nanoseconds, as stored in Healthcheck."""
    if not text:
        return 0
    pos, total = 0, 0
    for m in DURATION.finditer(text):
        if m.start() != pos:
            break
        total += int(float(m.group(1)) * UNIT_NS[m.group(2)])
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise inst.error(f"invalid duration for --{flag}: {text!r}")
    return total


def prepare_healthcheck(build, stage, inst: Instruction) -> Step:
    args = list(inst.args)
    if not args:
        raise inst.error("HEALTHCHECK requires an argument")
    kind = args[0].upper()
    if kind == "NONE":
        if len(args) > 1 or inst.flags:
            raise inst.error("HEALTHCHECK NONE takes no arguments")
        check = {"Test": ["NONE"]}
    elif kind == "CMD":
        rest = args[1:]
        if not rest:
            raise inst.error("Missing command after HEALTHCHECK CMD")
        test = ["CMD"] + rest if inst.json else ["CMD-SHELL", " ".join(rest)]
        check = {"Test": test}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                          ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
            if flag in inst.flags:
                check[key] = parse_duration(inst, flag, str(inst.flags[flag]))
        if "retries" in inst.flags:
            try:
                check["Retries"] = int(inst.flags["retries"])
            except ValueError:
                raise inst.error(f"invalid --retries: {inst.flags['retries']}") from None
            if check["Retries"] < 0:
                raise inst.error("--retries cannot be negative")
    else:
        raise inst.error(f"Unknown type {args[0]!r} in HEALTHCHECK (try CMD)")

    def apply():
        cfg(stage)["Healthcheck"] = check
    return Step(f"HEALTHCHECK {json.dumps(check, sort_keys=True)}", apply)


def prepare_onbuild(build, stage, inst: Instruction) -> Step:
    trigger = inst.original.split(None, 1)[1]

    def apply():
        cfg(stage)["OnBuild"] = list(cfg(stage).get("OnBuild") or []) + [trigger]
    return Step(f"ONBUILD {trigger}", apply)


def prepare_arg(build, stage, inst: Instruction) -> Step:
    """``ARG NAME[=default]``: declares a build argument for the rest of the stage.

    Its value: ``--build-arg NAME=...`` if given, else the default, else (for a name
    declared before the first FROM) the global value. An ARG is *not* stored in the
    image's Env; RUN sees it in its environment, and it is part of RUN's cache key."""
    texts = []
    for word in inst.args:
        name, eq, default = word.partition("=")
        if not name:
            raise inst.error("ARG requires a name")
        if name in build.build_args:
            value = build.build_args[name]
        elif eq:
            value = expand(stage, inst, default)
        else:
            value = build.meta_args.get(name)
        build.used_args.add(name)
        stage.args[name] = value
        texts.append(f"{name}={value}" if value is not None else name)
    return Step("ARG " + " ".join(texts), lambda: None)


# --------------------------------------------------------------------------- WORKDIR
def prepare_workdir(build, stage, inst: Instruction) -> Step:
    """``WORKDIR path``: relative paths build on the previous WORKDIR. Docker: "If the
    WORKDIR doesn't exist, it will be created even if it's not used in any subsequent
    Dockerfile instruction" -- a layer with just that directory, owned by the USER."""
    path = expand(stage, inst, " ".join(inst.args))
    if not path:
        raise inst.error("WORKDIR requires exactly one argument")
    current = cfg(stage).get("WorkingDir") or "/"
    workdir = clean_path(posixpath.join(current, path))

    def apply():
        cfg(stage)["WorkingDir"] = workdir
        view = stage.view()
        real = view.resolve(workdir)
        if view.lstat(real) is None:
            # BuildKit (today's docker build) and buildah make it as the current USER
            try:
                owner = parse_user(cfg(stage).get("User") or "root", view)
            except InvalidInput as e:
                raise inst.error(str(e)) from None
            staging = stage.new_staging()
            staging.ensure_dir(real, owner)
            stage.add_layer_from(staging)
    return Step(f"WORKDIR {workdir}", apply, creates_layer=True)


# --------------------------------------------------------------------------- RUN
def prepare_run(build, stage, inst: Instruction) -> Step:
    if inst.flags:
        raise inst.error(f"RUN --{next(iter(inst.flags))} is not supported by minidocker")
    command = shell_or_exec(stage, inst)
    args = stage.run_args()
    # Docker's history and cache key for RUN: "|N K=V ... /bin/sh -c <cmd>" when build
    # args are in scope, since they change what the command sees.
    prefix = f"|{len(args)} " + " ".join(args) + " " if args else ""
    text = prefix + " ".join(command)

    def apply():
        build.run_command(stage, inst, command, args)
    return Step(f"RUN {text}", apply, creates_layer=True, history=text)


# --------------------------------------------------------------------------- COPY / ADD
@dataclass
class Source:
    kind: str                 # "context", "image", "heredoc" or "url" (ADD, downloaded)
    rel: str                  # context-relative or image-absolute path; heredoc name
    host: str | None = None   # host path of the bytes (context or extracted layer)
    st: os.stat_result | None = None
    content: str = ""         # heredoc body


@dataclass
class CopyPlan:
    sources: list[Source] = field(default_factory=list)
    dest: str = "/"
    dest_is_dir: bool = False


def _context_sources(build, inst, pattern: str, keyword: str) -> list[Source]:
    ctx = build.context
    if re.match(r"^[a-z]+://", pattern):
        raise inst.error(f"{keyword} from a URL: only http:// and https:// are fetched: {pattern}")
    cleaned = clean_path(pattern)
    if cleaned == ".." or cleaned.startswith("../"):
        raise inst.error(f"forbidden path outside the build context: {pattern}")
    rel = cleaned.lstrip("/")
    rel = "" if rel == "." else rel
    if has_wildcards(rel):
        matches = ctx.glob(rel)
        if not matches:
            raise inst.error(f"{keyword} failed: no source files were specified "
                             f"(nothing in the context matches {pattern})")
        # a matched directory brings its contents; keep the top-most matches only
        tops = [m for m in matches if not any(m.startswith(o + "/") for o in matches)]
        return [Source("context", m, os.path.join(ctx.root, m)) for m in tops]
    # a directory that is itself ignored still exists if a '!' line kept something in it
    if rel and rel not in ctx.file_set and not any(f.startswith(rel + "/") for f in ctx.files):
        raise inst.error(f"{keyword} failed: file not found in build context or excluded "
                         f"by .dockerignore: stat {rel}: file does not exist")
    host = os.path.join(ctx.root, rel) if rel else ctx.root
    # a top-level symlink in the context must stay inside it
    real = os.path.realpath(host)
    if real != ctx.root and not real.startswith(ctx.root + "/"):
        raise inst.error(f"forbidden path outside the build context: {pattern}")
    return [Source("context", rel, host)]


def _url_source(build, inst, url: str, keyword: str) -> Source:
    """``ADD <URL>``: downloaded now, at every build, into the build's scratch space (see
    :mod:`minidocker.build.remote`); the step's cache key is then made from the bytes."""
    if keyword != "ADD":
        raise inst.error(f"source can't be a URL for {keyword}")
    directory = tempfile.mkdtemp(dir=build.tmp_dir, prefix="remote-")
    build.scratch_dirs.append(directory)
    try:
        host = remote.fetch(url, directory)
    except remote.FetchError as e:
        raise inst.error(f"{keyword} failed: {e}") from None
    return Source("url", os.path.basename(host), host)


def _image_sources(view: ImageView, inst, pattern: str, keyword: str) -> list[Source]:
    path = clean_path("/" + pattern)
    if not has_wildcards(path):
        real = view.resolve(path)
        host = view.host_path(real)
        if host is None:
            raise inst.error(f"{keyword} failed: stat {path}: file does not exist "
                             "in the source stage or image")
        return [Source("image", real, host)]
    # wildcards: expand element by element over the image's merged directories
    candidates = ["/"]
    for part in [p for p in path.split("/") if p]:
        nxt = []
        for base in candidates:
            names = view.children(base) if has_wildcards(part) else [part]
            for name in names:
                if go_match(part, name) or name == part:
                    child = posixpath.join(base, name)
                    if view.lstat(child) is not None:
                        nxt.append(child)
        candidates = nxt
    if not candidates:
        raise inst.error(f"{keyword} failed: no source files were specified")
    return [Source("image", c, view.host_path(c)) for c in candidates]


def plan_copy(build, stage, inst: Instruction, keyword: str) -> tuple[CopyPlan, ImageView | None]:
    # Docker's parser already split the words (on whitespace, or as a JSON array); each
    # is then expanded as *one* word: a value with a space does not split a path.
    args = [expand(stage, inst, a) for a in inst.args]
    if len(args) < 2:
        raise inst.error(f"{keyword} requires at least two arguments, but only one was provided"
                         if args else f"{keyword} requires at least two arguments")
    *patterns, dest = args
    plan = CopyPlan()
    heredocs = {name: body for name, body in inst.heredocs}
    source_view = None
    if "from" in inst.flags:
        source_view = build.source_view(expand(stage, inst, str(inst.flags["from"])), inst)
    for pattern in patterns:
        name = pattern[2:].lstrip("-").strip("'\"") if pattern.startswith("<<") else None
        if name is not None and name in heredocs:
            plan.sources.append(Source("heredoc", name, content=heredocs[name]))
        elif source_view is None and pattern.startswith(("http://", "https://")):
            plan.sources.append(_url_source(build, inst, pattern, keyword))
        elif source_view is not None:
            plan.sources.extend(_image_sources(source_view, inst, pattern, keyword))
        else:
            plan.sources.extend(_context_sources(build, inst, pattern, keyword))
    for source in plan.sources:
        if source.host is not None:
            source.st = os.stat(source.host) if source.kind == "context" else os.lstat(source.host)
    workdir = cfg(stage).get("WorkingDir") or "/"
    plan.dest_is_dir = dest.endswith("/") or dest.endswith("/.") or dest in (".", "")
    plan.dest = clean_path(posixpath.join(workdir, dest))
    # Docker: "If multiple <src> resources are specified, either directly or due to the
    # use of a wildcard, then <dest> must be a directory, and it must end with a slash"
    if len(plan.sources) > 1 and not plan.dest_is_dir:
        raise inst.error(f"When using {keyword} with more than one source file, the "
                         "destination must be a directory and end with a /")
    return plan, source_view


#: flags Docker's parser knows but minidocker does not implement (``--link`` only
#: changes how BuildKit caches a layer, not what the layer holds, so it is accepted)
UNSUPPORTED_COPY_FLAGS = ("parents", "exclude", "checksum", "keep-git-dir")


def prepare_copy(build, stage, inst: Instruction, keyword: str = "COPY") -> Step:
    for flag in UNSUPPORTED_COPY_FLAGS:
        if flag in inst.flags:
            raise inst.error(f"{keyword} --{flag} is not supported by minidocker")
    plan, source_view = plan_copy(build, stage, inst, keyword)
    chown = expand(stage, inst, str(inst.flags["chown"])) if "chown" in inst.flags else None
    chmod = None
    if "chmod" in inst.flags:
        text = expand(stage, inst, str(inst.flags["chmod"]))
        if not re.fullmatch(r"[0-7]{3,4}", text):
            raise inst.error(f"invalid chmod value {text!r}: use octal, like --chmod=755")
        chmod = int(text, 8)

    # the cache digest: every file's path, type, mode and bytes (not mtimes)
    digest = SourcesDigest()
    digest.add_text(json.dumps([chown, chmod, keyword, plan.dest, plan.dest_is_dir]))
    for src in plan.sources:
        digest.add_text(f"{src.kind}:{src.rel}")
        if src.kind == "heredoc":
            digest.add_text(src.content)
        elif src.kind == "context" and stat.S_ISDIR(src.st.st_mode):
            prefix = src.rel + "/" if src.rel else ""
            for rel in build.context.files:
                if rel.startswith(prefix):
                    digest.add(rel, os.path.join(build.context.root, rel))
        elif src.kind in ("context", "url"):
            digest.add(src.rel, src.host, src.st)
        elif stat.S_ISDIR(src.st.st_mode):
            _digest_image_tree(source_view, src.rel, digest)
        else:
            digest.add(src.rel, src.host, src.st)

    flags = " ".join(f"--{k}={v}" for k, v in sorted(inst.flags.items()))
    names = " ".join(s.rel or "." for s in plan.sources)
    text = f"{keyword} {flags + ' ' if flags else ''}{names} {plan.dest}"

    def apply():
        view = stage.view()
        owner = parse_chown_for(inst, chown, view)
        staging = stage.new_staging()
        for src in plan.sources:
            copy_one(build, staging, view, source_view, plan, src, owner, chmod, keyword)
        stage.add_layer_from(staging)
    hist = f"/bin/sh -c #(nop) {keyword} {flags + ' ' if flags else ''}{digest.hexdigest()[:16]} in {plan.dest}"
    return Step(text, apply, sources=digest.hexdigest(), creates_layer=True, history=hist)


def prepare_add(build, stage, inst: Instruction) -> Step:
    if "from" in inst.flags:
        raise inst.error("ADD does not support --from (use COPY --from)")
    return prepare_copy(build, stage, inst, "ADD")


def parse_chown_for(inst, chown, view):
    if chown is None:
        return (0, 0)
    try:
        return parse_chown(chown, view)
    except InvalidInput as e:
        raise inst.error(str(e)) from None


def _digest_image_tree(view: ImageView, rel: str, digest: SourcesDigest) -> None:
    for child, host, st in view.walk(rel):
        digest.add(child, host, st)


def copy_one(build, staging, view: ImageView, source_view, plan: CopyPlan, src: Source,
             owner, chmod, keyword: str) -> None:
    """Copy one source the way Docker does:

    - a directory: its *contents* go into dest (created if needed);
    - a file: to ``dest/<name>`` if dest ends with ``/`` or is a directory in the image,
      else to dest itself;
    - ADD of a local tar archive: unpacked into dest (one from a URL is not)."""
    dest = view.resolve(plan.dest)
    dest_is_dir = plan.dest_is_dir or (
        view.lstat(dest) is not None and stat.S_ISDIR(view.lstat(dest).st_mode))
    if src.kind == "heredoc":
        target = posixpath.join(dest, src.rel) if dest_is_dir else dest
        staging.add_bytes(target, src.content.encode(), chmod if chmod is not None else 0o644, owner)
        return
    if stat.S_ISDIR(src.st.st_mode):
        staging.ensure_dir(dest, owner)   # an existing dest keeps its metadata
        if src.kind == "context":
            prefix = src.rel + "/" if src.rel else ""
            entries = [rel[len(prefix):] for rel in build.context.files if rel.startswith(prefix)]
            copy_host_entries(staging, src.host, entries, dest, owner, chmod)
        else:
            copy_image_tree(staging, source_view, src.rel, dest, owner, chmod)
        return
    if keyword == "ADD" and src.kind == "context" and is_local_archive(src.host):
        extract_archive(staging, src.host, dest, owner if owner != (0, 0) else None)
        return
    target = posixpath.join(dest, posixpath.basename(src.rel)) if dest_is_dir else dest
    if dest_is_dir:
        staging.ensure_dir(dest, owner)
    st = src.st
    host = src.host
    if src.kind == "image" and stat.S_ISLNK(st.st_mode):
        # a top-level symlink is followed, as for a context source
        real = source_view.resolve(src.rel)
        host = source_view.host_path(real)
        st = os.lstat(host)
    staging.add_file(target, host, st, owner, chmod)


PREPARE = {
    "ENV": prepare_env, "LABEL": prepare_label, "MAINTAINER": prepare_maintainer,
    "CMD": prepare_cmd, "ENTRYPOINT": prepare_entrypoint, "SHELL": prepare_shell,
    "EXPOSE": prepare_expose, "VOLUME": prepare_volume, "USER": prepare_user,
    "STOPSIGNAL": prepare_stopsignal, "HEALTHCHECK": prepare_healthcheck,
    "ONBUILD": prepare_onbuild, "ARG": prepare_arg, "WORKDIR": prepare_workdir,
    "RUN": prepare_run, "COPY": prepare_copy, "ADD": prepare_add,
}
