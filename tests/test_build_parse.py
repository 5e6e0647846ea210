"""Reading a Dockerfile and its context: directives, continuations, heredocs, errors with
the path and line; .dockerignore with Docker's pattern rules; the context's size."""

import os

import pytest

from minidocker.build import BuildError
from minidocker.build.context import BuildContext, go_match, is_ignored, parse_dockerignore
from minidocker.units import human_size
from minidocker.build.parser import parse_text


def test_continuations_comments_and_json_form():
    df = parse_text("FROM busybox\n"
                    "# a comment\n"
                    "RUN echo a \\\n"
                    "  # a comment inside a continued line is dropped\n"
                    "  && echo b\n"
                    'CMD ["echo", "x y"]\n', "/ctx/Dockerfile")
    run, cmd = df.instructions[1], df.instructions[2]
    assert (run.keyword, run.line, run.json) == ("RUN", 3, False)
    assert "echo a" in run.args[0] and "&& echo b" in run.args[0]
    assert (cmd.json, cmd.args) == (True, ["echo", "x y"])


def test_escape_directive_changes_the_continuation_character():
    df = parse_text("# escape=`\nFROM busybox\nRUN echo C:\\dir `\n  next\n", "Dockerfile")
    assert df.escape == "`"
    assert df.instructions[1].args == ["echo C:\\dir   next"]


def test_directive_only_counts_at_the_top():
    df = parse_text("FROM busybox\n# escape=`\n", "Dockerfile")
    assert df.escape == "\\"


def test_heredoc_is_kept():
    df = parse_text("FROM busybox\nRUN <<EOF\necho one\necho two\nEOF\n", "Dockerfile")
    run = df.instructions[1]
    assert run.heredocs == [("EOF", "echo one\necho two\n")]
    assert run.display() == "RUN <<EOF"


def test_flags_are_split_and_checked():
    df = parse_text("FROM busybox\nCOPY --chown=1:2 --from=build a /b\n", "Dockerfile")
    assert df.instructions[1].flags == {"chown": "1:2", "from": "build"}
    with pytest.raises(BuildError, match=r"^Dockerfile:2: Unknown flag: bogus$"):
        parse_text("FROM busybox\nCOPY --bogus=1 a /b\n", "Dockerfile")


@pytest.mark.parametrize("text, line, message", [
    ("FROM busybox\nFOOBAR x\n", 2, "unknown instruction: FOOBAR"),
    ("FROM busybox\nRUN true\nENV\n", 3, "ENV requires at least one argument"),
    ("FROM busybox\nLABEL a\n", 2, "LABEL must have two arguments"),
    ('FROM busybox\nRUN ["echo", 1]\n', 2, "arrays must be comprised of strings only"),
    ("FROM busybox\nONBUILD FROM x\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
])
def test_parse_errors_name_the_file_and_line(text, line, message):
    with pytest.raises(BuildError) as e:
        parse_text(text, "/ctx/Dockerfile")
    assert str(e.value).startswith(f"/ctx/Dockerfile:{line}: ")
    assert message in str(e.value)
    assert e.value.exit_code == 1


def test_empty_dockerfile():
    with pytest.raises(BuildError, match="cannot be empty"):
        parse_text("# only a comment\n", "Dockerfile")


# --------------------------------------------------------------------------- .dockerignore
@pytest.mark.parametrize("patterns, path, ignored", [
    (["*.log"], "a.log", True),
    (["*.log"], "sub/a.log", False),          # '*' stays in one path element
    (["**/*.log"], "sub/deep/a.log", True),
    (["**/*.log"], "a.log", True),            # '**' also matches no directory
    (["build"], "build/out/x.o", True),       # a matched directory takes its contents
    (["/build/"], "build", True),             # leading '/' and trailing '/' are cleaned
    (["./a//b"], "a/b", True),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md", "README*"], "README.md", True),  # the last match wins
    (["doc?"], "docs", True),
    (["doc?"], "doc", False),
    (["[a-c].txt"], "b.txt", True),
    (["[!a-c].txt"], "d.txt", False),          # Go has '^' for negation, not '!'
    (["[^a-c].txt"], "d.txt", True),
    (["\\*.txt"], "*.txt", True),
    (["#comment", "", "  x  "], "x", True),
])
def test_dockerignore_rules(patterns, path, ignored):
    assert is_ignored(parse_dockerignore("\n".join(patterns)), path) is ignored


def test_context_walk_honours_dockerignore_and_exceptions(tmp_path):
    for rel in ("keep.txt", "x.log", "logs/a.log", "logs/important.log", "node_modules/m/i.js"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / ".dockerignore").write_text("*.log\nlogs\n!logs/important.log\nnode_modules\n")
    ctx = BuildContext(str(tmp_path))
    assert "keep.txt" in ctx.files and ".dockerignore" in ctx.files
    assert "x.log" not in ctx.files
    assert "logs/a.log" not in ctx.files
    assert "logs/important.log" in ctx.files        # re-included below an excluded dir
    assert not any(f.startswith("node_modules") for f in ctx.files)


def test_context_size_is_the_tar_size(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    ctx = BuildContext(str(tmp_path))
    # one 512-byte header + one 512-byte data block + the 1024-byte end of archive
    assert ctx.tar_size() == 2048
    # "Sending build context": Docker's units.HumanSize, 4 significant digits
    assert human_size(ctx.tar_size(), 4) == "2.048kB"
    assert human_size(512, 4) == "512B"
    assert human_size(10240, 4) == "10.24kB"
    assert human_size(3_500_000, 4) == "3.5MB"


def test_missing_context_dir(tmp_path):
    with pytest.raises(BuildError, match="not found"):
        BuildContext(os.path.join(str(tmp_path), "nope"))


@pytest.mark.parametrize("pattern, name, match", [
    ("*.txt", "a.txt", True), ("*.txt", "d/a.txt", False), ("d/*.txt", "d/a.txt", True),
    ("fil?", "file", True), ("[ab]*", "bz", True), ("[ab]*", "cz", False),
])
def test_copy_wildcards_are_go_filepath_match(pattern, name, match):
    assert go_match(pattern, name) is match


# --------------------------------------------------------------------------- image files
def _fake_image(tmp_path):
    """Two extracted layers: the bottom one has /etc and a /usr/lib -> lib64 link."""
    bottom, top = tmp_path / "l0", tmp_path / "l1"
    (bottom / "etc").mkdir(parents=True)
    (bottom / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nweb:x:33:44::/var/www:/bin/false\n")
    (bottom / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    (bottom / "usr" / "lib64").mkdir(parents=True)
    os.symlink("lib64", bottom / "usr" / "lib")
    os.symlink("/usr", bottom / "opt")
    (top / "usr" / "lib64").mkdir(parents=True)
    (top / "usr" / "lib64" / "libx.so").write_text("x")
    from minidocker.build.files import ImageView
    return ImageView([str(bottom), str(top)])


def test_image_view_merges_layers_and_follows_links_inside_the_image(tmp_path):
    view = _fake_image(tmp_path)
    assert view.children("usr/lib64") == ["libx.so"]
    assert view.resolve("/usr/lib/libx.so") == "/usr/lib64/libx.so"
    assert view.resolve("/opt/lib") == "/usr/lib64"           # an absolute link stays inside
    assert view.resolve("/../../etc/passwd") == "/etc/passwd"   # '..' never leaves the root
    assert view.read_text("/etc/group").startswith("root:x:0:")


def test_chown_and_user_rules(tmp_path):
    from minidocker.build.files import parse_chown, parse_user
    view = _fake_image(tmp_path)
    assert parse_chown("web", view) == (33, 33)          # Docker: no group -> gid = uid
    assert parse_chown("web:staff", view) == (33, 50)
    assert parse_chown("1000:1001", view) == (1000, 1001)
    assert parse_user("web", view) == (33, 44)           # USER: the primary group
    assert parse_user("1234", view) == (1234, 0)
    with pytest.raises(Exception, match="no such user"):
        parse_chown("nobody-here", view)
