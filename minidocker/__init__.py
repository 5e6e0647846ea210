"""minidocker: a container engine in Python, built to teach how Docker works.

Layers, bottom-up (arrows point one way):

* :mod:`minidocker.kernel`   - syscalls, namespaces, mounts, user ids, cgroups, capabilities
* :mod:`minidocker.runtime`  - runs ONE container from an OCI runtime bundle
* :mod:`minidocker.image`    - content store: blobs, layers, configs, tags
* :mod:`minidocker.network`  - bridge, veth, addresses, published ports
* :mod:`minidocker.engine`   - containers, their lifecycle, volumes and links
* :mod:`minidocker.build`    - Dockerfile -> image
* :mod:`minidocker.registry` - Distribution v2 client and an embedded server
* :mod:`minidocker.cli`      - the ``minidocker`` command, Docker's verbs

Shared by all: :mod:`minidocker.paths` (the data root, atomic writes, locks) and
:mod:`minidocker.clock` (every timestamp, RFC 3339).
"""

__version__ = "0.1.0"
