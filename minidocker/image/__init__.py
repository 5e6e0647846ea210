"""minidocker.image: the content store (blobs, layers, image configs, tags) and base images."""
