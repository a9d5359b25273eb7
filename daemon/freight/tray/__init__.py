"""The tray icon: a sans-I/O model (:mod:`.model`) under a thin pystray layer (:mod:`.icon`).
It imports only the shared top of :mod:`freight`; the daemon drives it through a bridge.
"""
