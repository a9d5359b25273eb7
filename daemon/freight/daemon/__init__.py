"""The daemon service: the JSON-RPC API, the queue, events to clients, the tray bridge and
the wiring of one long-running process. It imports the engine and the tray, never the CLI.
"""
