"""``ADD <URL> <dest>``: fetch a file over HTTP(S) the way Docker's classic builder does.

The rules (Docker's, from its ``ADD`` documentation and builder):

* the file's name is the last part of the URL's path (``http://host/a/b.txt`` ->
  ``b.txt``; a trailing ``/`` is ignored; the query string is not part of it). It is
  used when the destination is a directory (ends in ``/``, or is one in the image);
  otherwise the destination itself is the file. A URL with no name in its path
  (``http://host/``) is an error;
* the file is written with mode 0600 (``--chmod`` and ``--chown`` apply as for a
  local file), and its mtime is the response's ``Last-Modified`` (the Unix epoch when
  there is none);
* it is copied as it is: an archive is *not* extracted, unlike a local one;
* it is downloaded at every build, and the step's cache key is made from what came
  (name, mode and bytes: not the mtime, not the URL), so the same bytes again hit the
  cache and new bytes miss it;
* a response other than 2xx, or a server that cannot be reached, stops the build with
  one line; the half-downloaded file goes away with the build's scratch space.

The standard library's ``urllib`` does the fetching (imported here, only when a
Dockerfile has a URL). Like Go's HTTP client, which Docker uses, it honours
``http_proxy``/``https_proxy`` but never sends a request for the loopback through one.
"""

from __future__ import annotations

import email.utils
import ipaddress
import os
import posixpath
import shutil
import urllib.parse

#: Seconds to wait for the server to connect or to send the next bytes.
TIMEOUT = 60


class FetchError(Exception):
    """A URL that could not be fetched; the message is one line."""


def is_url(text: str) -> bool:
    """Docker's test (``urlutil.IsURL``): only ``http://`` and ``https://`` are fetched."""
    return text.startswith(("http://", "https://"))


def filename_of(url: str) -> str:
    """The file name a URL gives (see the module's docstring)."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    if path.endswith("/"):
        path = path[:-1]
    name = posixpath.basename(path)
    if not name:
        raise FetchError(f"cannot determine filename from url: {url}")
    return name


def fetch(url: str, directory: str) -> str:
    """Download ``url`` into ``directory`` under its file name; returns the path.
    The file gets mode 0600 and the ``Last-Modified`` time (or 0) as its mtime."""
    import http.client  # lazy, with urllib below: only a build with ADD <URL> pays for them
    import urllib.error
    name = filename_of(url)
    path = os.path.join(directory, name)
    try:
        with _opener(url).open(url, timeout=TIMEOUT) as response:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
                got = out.tell()
            # http.client's read(n) takes a closed connection for the end of the body:
            # a body shorter than its Content-Length is the server going away.
            expected = response.headers.get("Content-Length")
            if expected and expected.isdigit() and got != int(expected):
                raise http.client.IncompleteRead(b"\0" * got, int(expected) - got)
            mtime = _last_modified(response.headers.get("Last-Modified"))
    except BaseException as e:
        if os.path.lexists(path):
            os.unlink(path)              # nothing half-downloaded stays
        if isinstance(e, urllib.error.HTTPError):
            raise FetchError(f"failed to GET {url} with status {e.code} {e.reason}") from None
        if isinstance(e, urllib.error.URLError):
            raise FetchError(f'Get "{url}": {_reason(e.reason)}') from None
        if isinstance(e, http.client.IncompleteRead):
            raise FetchError(f'Get "{url}": unexpected EOF (the body ended after '
                             f"{len(e.partial)} of {len(e.partial) + (e.expected or 0)} bytes)") from None
        if isinstance(e, (OSError, ValueError, http.client.HTTPException)):
            raise FetchError(f'Get "{url}": {_reason(e)}') from None
        raise
    os.chmod(path, 0o600)                 # whatever the umask took away or left
    os.utime(path, (mtime, mtime))
    return path


def _opener(url: str):
    """urllib's opener: the environment's proxies, except for a loopback host."""
    import urllib.request
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    handlers = [urllib.request.ProxyHandler({})] if loopback else []
    return urllib.request.build_opener(*handlers)


def _last_modified(value: str | None) -> float:
    """``Last-Modified: Wed, 21 Oct 2015 07:28:00 GMT`` -> seconds since the epoch; 0
    when absent or unreadable (Docker then sets the epoch too)."""
    if not value:
        return 0
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 0


def _reason(reason) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__
