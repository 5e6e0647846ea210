"""minidocker: a container engine in Python, built to teach how Docker works.

The packages, from the kernel up:

* :mod:`minidocker.kernel`   - syscalls, namespaces, mounts, user ids, cgroups, capabilities
* :mod:`minidocker.runtime`  - runs ONE container from an OCI runtime bundle
* :mod:`minidocker.image`    - content store: blobs, layers, configs, tags
* :mod:`minidocker.network`  - bridge, veth, addresses, published ports
* :mod:`minidocker.engine`   - containers, their lifecycle, volumes and links
* :mod:`minidocker.registry` - Distribution v2 client and an embedded server
* :mod:`minidocker.build`    - Dockerfile -> image
* :mod:`minidocker.cli`      - the ``minidocker`` command, Docker's verbs

Shared by all: :mod:`minidocker.paths` (the data root, atomic writes, locks),
:mod:`minidocker.clock` (every timestamp, RFC 3339), ``units`` and ``errors``.

Their layers (which package may import which, and why) are declared once, as
import-linter contracts in ``pyproject.toml`` (``[tool.importlinter]``), and checked by
the test suite (``tests/test_import_layers.py``); docs/architecture.rst shows them.
"""

__version__ = "0.1.0"
