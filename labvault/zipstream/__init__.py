"""A streaming ZIP64 library: write an archive in one pass to any sink, read its directory and
entries back at a bounded cost.

It knows nothing of labvault and must never import from it (nor from anything but the standard
library), so it could be published on its own.
"""
