"""Token management: data, manager, providers, OAuth 2.0, pipelines and storages.

Every module here is private; import the public names from :mod:`requestforge`.
"""
