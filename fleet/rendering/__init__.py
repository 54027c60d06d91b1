"""Rendering: what a cluster should run at a revision.

- :mod:`.cluster`: a cluster's render at a revision, as registered there (the entry point);
- :mod:`.build`: kustomize builds of an overlay read from Git, cached by the content of their inputs;
- :mod:`.cache`: a cluster's whole render kept per commit;
- :mod:`.fluxtree` and :mod:`.fluxrender`: a Flux cluster directory expanded as Flux would apply it;
- :mod:`.substitute`: Flux ``postBuild.substitute`` semantics;
- :mod:`.confine`: what a build may read.
"""
