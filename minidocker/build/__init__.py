"""minidocker.build: ``minidocker build``, a Dockerfile turned into an image, step by step.

The pieces, in the order a build uses them:

- :mod:`.parser`       Dockerfile text -> instructions (Docker's own Go parser, wrapped)
- :mod:`.expand`       ``$VAR`` / ``${VAR:-word}`` / quotes, exactly as Docker's shell lexer
- :mod:`.context`      the build context directory and its ``.dockerignore``
- :mod:`.instructions` what each instruction does to the image config or its files
- :mod:`.cache`        the step cache: (parent image, instruction, sources) -> image
- :mod:`.builder`      the step loop that prints Docker's classic build output
"""

from ..errors import MinidockerError


class BuildError(MinidockerError):
    """A build that cannot go on: a bad Dockerfile, a missing source, a failing RUN.

    ``docker build`` exits 1 for these (not 125): the engine worked, the build did not.
    """

    exit_code = 1


def at_line(path: str, line: int, message: str) -> BuildError:
    """An error that names the Dockerfile and the line, the way a compiler would."""
    return BuildError(f"{path}:{line}: {message}")
