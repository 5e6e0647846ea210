"""minidocker.api: the Docker Engine API (v1.41), so that the unchanged ``docker`` CLI,
docker-compose and docker-py drive minidocker.

A front end beside :mod:`minidocker.cli`: a handler translates one HTTP request into
calls to the engine, image, network, build and registry functions the CLI uses, and
their results back into Docker's JSON. No engine logic lives here.

Read :mod:`.http` (requests, responses, streams, hijacking), then :mod:`.router` (paths
and the API version), then :mod:`.server` (sockets, threads, errors), then the handlers:
:mod:`.system` (``/_ping``, ``/version``), :mod:`.containers`, :mod:`.exec`, ...
``minidocker system service`` runs it.
"""
