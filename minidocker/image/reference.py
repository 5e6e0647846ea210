"""Image references, parsed the way Docker parses them.

A reference names an image: ``busybox``, ``busybox:1.36``, ``john1/cowsay``,
``localhost:5000/team/app:v2``, ``ubuntu@sha256:<64 hex>``. Docker's grammar
(distribution/reference, ``reference.go``) is::

    reference   := name [ ":" tag ] [ "@" digest ]
    name        := [domain "/"] path
    domain      := host [":" port]          e.g. localhost:5000, registry.example.com
    path        := component ("/" component)*
    component   := [a-z0-9]+ (separator [a-z0-9]+)*      separator: "." "_" "__" "-"+
    tag         := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest      := algorithm ":" hex

and then *normalised* (``ParseNormalizedNamed``):

- the first path part is a registry only if it contains ``.`` or ``:`` or is
  ``localhost`` (or has upper-case letters); otherwise the registry is ``docker.io``;
- on ``docker.io`` a one-part name lives under ``library/`` (the "official" images);
- with neither tag nor digest, the tag is ``latest``.

:func:`familiar` undoes the normalisation for display, as ``docker images`` does:
``docker.io/library/busybox:latest`` is shown as ``busybox:latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidInput

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# The whole reference, with the three parts captured (Docker's ReferenceRegexp).
REFERENCE_RE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
TAG_RE = re.compile(rf"^{_TAG}$")
DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
PATH_RE = re.compile(rf"^{_PATH}$")
# A bare 64-hex string is an image id, never a repository name (Docker refuses it).
ID_RE = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    """A normalised image reference.

    ``domain`` is the registry (``docker.io``, ``localhost:5000``), ``path`` the
    repository inside it (``library/busybox``), ``tag`` (``latest``) and ``digest``
    (``sha256:...``) may each be None once a digest is given (``name@sha256:...``).
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Fully qualified repository name: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def repository(self) -> str:
        """The repository path *inside* the registry (``library/busybox``): what the
        Distribution API puts in its URLs (``/v2/<repository>/manifests/<tag>``)."""
        return self.path

    @property
    def familiar_name(self) -> str:
        """The repository as Docker shows it: ``busybox``, ``john1/cowsay``,
        ``localhost:5000/x``."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_REPO_PREFIX) and path.count("/") == 1:
                path = path[len(OFFICIAL_REPO_PREFIX):]
            return path
        return self.name

    @property
    def registry_host(self) -> str:
        """Host[:port] to talk to for this reference (Docker Hub's API lives at
        ``registry-1.docker.io``, not at ``docker.io``)."""
        return "registry-1.docker.io" if self.domain == DEFAULT_DOMAIN else self.domain

    def familiar(self) -> str:
        """``busybox:latest``, ``john1/cowsay:latest``, ``x@sha256:...``."""
        return self._render(self.familiar_name)

    def __str__(self) -> str:
        return self._render(self.name)

    def _render(self, name: str) -> str:
        out = name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def with_tag(self, tag: str) -> "Reference":
        return Reference(self.domain, self.path, tag, None)


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's ``splitDockerDomain``: is the first part a registry host or a user name?"""
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"
                   and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse(ref: str, default_tag: bool = True) -> Reference:
    """Parse and normalise ``ref``; raise :class:`InvalidInput` with Docker's messages.

    With ``default_tag`` (the default) a reference with neither tag nor digest gets
    ``latest``, as every Docker command that names an image does.
    """
    if not isinstance(ref, str) or not ref:
        raise InvalidInput("invalid reference format")
    if ID_RE.match(ref):
        raise InvalidInput(f"invalid repository name ({ref}), "
                           "cannot specify 64-byte hexadecimal strings")
    # Docker checks the case first, on the normalised name without the tag.
    domain, remainder = _split_domain(ref)
    remote_name = remainder.split(":", 1)[0].split("@", 1)[0]
    if remote_name.lower() != remote_name:
        raise InvalidInput(f"invalid reference format: repository name ({remote_name}) "
                           "must be lowercase")
    match = REFERENCE_RE.match(f"{domain}/{remainder}")
    if not match:
        raise InvalidInput("invalid reference format")
    name, tag, digest = match.group("name"), match.group("tag"), match.group("digest")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidInput(f"invalid reference format: repository name must not be "
                           f"more than {NAME_TOTAL_LENGTH_MAX} characters")
    domain, _, path = name.partition("/")
    if digest:
        algorithm, _, hexpart = digest.partition(":")
        if algorithm == "sha256" and len(hexpart) != 64:
            raise InvalidInput("invalid reference format")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def familiar(ref: str | Reference) -> str:
    """The form Docker prints: ``familiar("busybox") == "busybox:latest"``,
    ``familiar("docker.io/john1/cowsay") == "john1/cowsay:latest"``,
    ``familiar("localhost:5000/x:1") == "localhost:5000/x:1"``."""
    if isinstance(ref, str):
        ref = parse(ref)
    return ref.familiar()


def familiar_name(ref: str | Reference) -> str:
    """Just the repository, as in the REPOSITORY column: ``busybox``."""
    if isinstance(ref, str):
        ref = parse(ref)
    return ref.familiar_name


def split_familiar(key: str) -> tuple[str, str]:
    """Split a stored familiar ``repo:tag`` (or ``repo@digest``) into (repo, tag-or-digest)."""
    if "@" in key:
        repo, _, digest = key.partition("@")
        return repo, digest
    slash = key.rfind("/")
    colon = key.rfind(":")
    if colon > slash:
        return key[:colon], key[colon + 1:]
    return key, ""


def is_valid_tag(tag: str) -> bool:
    return bool(TAG_RE.match(tag))
