"""minidocker.api: the Docker Engine API (v1.41), so that the unchanged ``docker`` CLI,
docker-compose and docker-py drive minidocker.

A front end beside :mod:`minidocker.cli`: a handler translates one HTTP request into
calls to the engine, image, network, build and registry functions the CLI uses, and
their results back into Docker's JSON. No engine logic lives here.

Read :mod:`minidocker.api.http` (requests, responses, streams, hijacking), then
:mod:`minidocker.api.router` (paths and the API version), then
:mod:`minidocker.api.server` (sockets, threads, errors), then the handlers:
:mod:`minidocker.api.system` (``/_ping``, ``/version``), :mod:`minidocker.api.containers`,
:mod:`minidocker.api.exec`, ...
``minidocker system service`` runs it.
"""
