"""HTTP for the engine: one seam to open a byte range (:mod:`.source`), the checks of every
reply (:mod:`.validate`), the lean reader and httpx behind the seam, and a scripted source
for tests.
"""
