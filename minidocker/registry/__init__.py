"""Registries: how images travel between machines ("docker push", "docker pull").

A registry speaks the *Distribution API* (Docker's "registry v2" protocol, standardised
as the OCI distribution spec). It is plain HTTP over a content-addressed store:

    GET  /v2/                                   "do you speak v2?"  (and: who are you?)
    HEAD /v2/<name>/blobs/<digest>              "do you have this layer already?"
    POST /v2/<name>/blobs/uploads/              start an upload -> Location of a session
    PATCH <location>                            send a chunk
    PUT  <location>?digest=<digest>             finish; the registry checks the digest
    PUT  /v2/<name>/manifests/<tag>             the manifest last: it names the blobs
    GET  /v2/<name>/manifests/<tag>             pull starts here ...
    GET  /v2/<name>/blobs/<digest>              ... and fetches what the manifest names

Modules:

- :mod:`.digest`   digests, and readers that verify a digest while the bytes stream by
- :mod:`.server`   an embedded registry (``minidocker registry serve``)
- :mod:`.transport` one registry over HTTP(S): the ``/v2/`` ping, basic and bearer auth
- :mod:`.auth`     credentials (Docker's ``config.json``) and the token challenge flow
- :mod:`.client`   the client: ``pull`` and ``push``
- :mod:`.progress` the per-layer progress lines of ``docker pull`` / ``docker push``
"""
