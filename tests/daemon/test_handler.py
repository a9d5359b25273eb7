"""The API's handler: its method table is the protocol's, name for name and param for param."""

from __future__ import annotations

import inspect

from freight import config
from freight.daemon import protocol as api
from freight.daemon.events import Hub, Session
from freight.daemon.handler import ApiHandler
from freight.daemon.scheduler import Scheduler
from freight.store import Store


def make_handler(tmp_path) -> tuple[ApiHandler, Store]:
    paths = config.paths_from_env({"FREIGHT_HOME": str(tmp_path / "freight")}).ensure()
    store = Store(paths.database)
    hub = Hub()
    return ApiHandler(paths, store, Scheduler(store, hub), hub), store


def test_the_handler_serves_exactly_the_protocols_methods(tmp_path) -> None:
    handler, store = make_handler(tmp_path)
    try:
        assert set(handler.methods) == set(api.METHODS)
        for name, method in handler.methods.items():
            assert inspect.ismethod(method) and method.__self__ is handler, name
    finally:
        store.close()


def test_every_method_takes_every_param_its_protocol_entry_may_pass(tmp_path) -> None:
    """What check_params may hand over (all optional params at once, ``ids`` for the
    "id or ids" methods) binds to the method's signature, after the session."""
    handler, store = make_handler(tmp_path)
    try:
        for name, spec in api.METHODS.items():
            params = [*spec.required, *spec.optional, *(["ids"] if spec.targets else [])]
            signature = inspect.signature(handler.methods[name])
            signature.bind(Session("test"), **dict.fromkeys(params))  # raises TypeError if not
    finally:
        store.close()
