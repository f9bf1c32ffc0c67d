"""Token storages: the interface, the lock mixins, memory, Redis and Django caches.

Every module here is private; import the public names from :mod:`requestforge`.
"""
