"""The engine: one download from probe to finished file, with no daemon in sight.

`freight get` runs it in the foreground and the daemon runs one per active download. It
imports only the shared top of :mod:`freight`, never the daemon, the tray or the CLI.
"""
