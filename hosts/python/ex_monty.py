"""A small Python host for the ExMonty guest component, on wasmtime-py's
component model support (``wasmtime==50.0.1`` from PyPI).

Values cross as JSON text in the shape of guest/README.md ("Values as JSON").
wasmtime-py lowers WIT values dynamically: records are ``Record`` objects
whose attributes carry the WIT field names (``max-memory``), and a
variant/result is a tagged ``Variant`` only when its cases cannot be told
apart by Python type (``result<list<u8>, error>`` comes back as ``bytes`` or
the error itself). ``_result`` below handles both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component as wc

# Export names carry the WIT package version: a host states which one it speaks.
PACKAGE, VERSION = "ex-monty:sandbox", "0.4.0"
DEFAULT_GUEST = Path(__file__).resolve().parents[2] / "priv" / "ex_monty_guest.wasm"
MAGIC = b"EXMONTY"
SNAPSHOT = 2


class MontyError(Exception):
    """A Python exception (``type`` is its class name) or an invalid request (``type == "invalid"``)."""

    def __init__(self, type_name: str, message: str, rendered: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type = type_name
        self.message = message
        self.rendered = rendered


@dataclass
class Step:
    kind: str
    value: str | None = None
    name: str | None = None
    args: list[str] = field(default_factory=list)
    kwargs: dict[str, str] = field(default_factory=dict)
    output: str = ""


def _record(**fields: Any) -> wc.Record:
    record = wc.Record()
    for name, value in fields.items():
        setattr(record, name.replace("_", "-"), value)
    return record


def _raise_error(error: Any) -> None:
    if isinstance(error, wc.Variant):  # tagged form of the `error` variant
        error = error.payload
    if isinstance(error, str):
        raise MontyError("invalid", error)
    raise MontyError(getattr(error, "type-name"), error.message or "", error.rendered)


class Guest:
    """One instance of the guest component (one execution at a time)."""

    _engine = None
    _components: dict[str, wc.Component] = {}

    def __init__(self, wasm: str | os.PathLike[str] | None = None) -> None:
        path = str(wasm or os.environ.get("EX_MONTY_GUEST") or DEFAULT_GUEST)
        if Guest._engine is None:
            config = wasmtime.Config()
            # wasmtime's on-disk code cache: compiling the 13 MB component
            # takes seconds, loading it from the cache milliseconds.
            config.cache = True
            Guest._engine = wasmtime.Engine(config)
        component = self._components.get(path)
        if component is None:
            component = wc.Component.from_file(self._engine, path)
            self._components[path] = component
        linker = wc.Linker(self._engine)
        linker.add_wasip2()
        self._store = wasmtime.Store(self._engine)
        self._store.set_wasi(wasmtime.WasiConfig())
        self._instance = linker.instantiate(self._store, component)

    def _call(self, interface: str, name: str, *args: Any) -> Any:
        iface = self._instance.get_export_index(self._store, f"{PACKAGE}/{interface}@{VERSION}")
        index = None if iface is None else self._instance.get_export_index(self._store, name, iface)
        func = None if index is None else self._instance.get_func(self._store, index)
        if func is None:
            raise MontyError("invalid", f"the guest does not export {interface}.{name}")
        result = func(self._store, *args)
        func.post_return(self._store)
        return result

    def _result(self, result: Any, ok_type: type) -> Any:
        if isinstance(result, wc.Variant) and result.tag in ("ok", "err"):
            if result.tag == "err":
                _raise_error(result.payload)
            return result.payload
        if isinstance(result, ok_type):
            return result
        _raise_error(result)

    # -- values ------------------------------------------------------------
    def to_json(self, value: bytes) -> str:
        return self._result(self._call("values", "value-to-json", value), str)

    def from_json(self, text: str) -> bytes:
        return self._result(self._call("values", "value-from-json", text), bytes)

    # -- execution ---------------------------------------------------------
    @staticmethod
    def limits(
        max_duration_ms: int | None = None,
        max_memory: int | None = None,
        max_allocations: int | None = None,
    ) -> wc.Record:
        return _record(
            max_duration_us=None if max_duration_ms is None else max_duration_ms * 1000,
            max_memory=max_memory,
            max_recursion_depth=None,
            gc_interval=None,
            max_suspensions=None,
            max_output_bytes=None,
            max_total_sleep_us=None,
            max_allocations=max_allocations,
        )

    def _describe(self, progress: wc.Variant, output: str = "") -> Step:
        if progress.tag == "complete":
            return Step("complete", value=self.to_json(progress.payload), output=output)
        if progress.tag == "function-call":
            call = progress.payload
            return Step(
                "function-call",
                name=call.name,
                args=[self.to_json(a) for a in call.args],
                kwargs={k: self.to_json(v) for k, v in call.kwargs},
                output=output,
            )
        if progress.tag == "name-lookup":
            return Step("name-lookup", name=progress.payload, output=output)
        return Step(progress.tag, output=output)

    def _step(self, result: Any) -> Step:
        step = self._result(result, wc.Record)
        return self._describe(step.progress, step.output)

    def eval(self, code: str, inputs: dict[str, str] | None = None, **limits: int) -> Step:
        """Evaluates ``code`` with ``inputs`` (name -> JSON text); host calls pause."""
        inputs = inputs or {}
        values = [self.from_json(text) for text in inputs.values()]
        options = _record(interactive=True, cwd=None, typed_os_calls=False)
        return self._step(
            self._call("runtime", "eval", code, "main.py", list(inputs), values, self.limits(**limits), options)
        )

    def eval_same(self, code: str) -> Step:
        """Evaluates ``code`` with the limits and options of the last ``eval``."""
        return self._step(self._call("runtime", "eval-same", code, "main.py", [], []))

    def resume(self, json_value: str) -> Step:
        """Answers the pending call with a value (JSON text)."""
        return self._step(self._call("runtime", "resume", wc.Variant("value", self.from_json(json_value))))

    def raise_(self, type_name: str, message: str) -> Step:
        """Raises ``type_name(message)`` at the pending call."""
        answer = wc.Variant("raise", _record(type_name=type_name, message=message))
        return self._step(self._call("runtime", "resume", answer))

    def dump_snapshot(self) -> bytes:
        """The paused execution as an unsigned ExMonty snapshot dump."""
        payload = self._result(self._call("runtime", "dump-snapshot"), bytes)
        return MAGIC + bytes([1, SNAPSHOT, 0]) + payload

    def load_snapshot(self, dump: bytes) -> Step:
        """Loads an unsigned ExMonty snapshot dump; returns what it waits for."""
        if dump[: len(MAGIC)] != MAGIC or len(dump) < len(MAGIC) + 3:
            raise MontyError("invalid", "not an ExMonty dump")
        version, kind, flags = dump[len(MAGIC) : len(MAGIC) + 3]
        if version != 1 or kind != SNAPSHOT:
            raise MontyError("invalid", "not a version 1 snapshot dump")
        # Bit 0: signed (an HMAC follows). Bit 1: restored from an unsigned
        # dump at some point (still unsigned bytes here). Others: unknown.
        if flags & 1:
            raise MontyError("invalid", "signed dumps need the key: verify the HMAC before loading")
        if flags & ~3:
            raise MontyError("invalid", "corrupt ExMonty dump")
        result = self._call("runtime", "load-snapshot", dump[len(MAGIC) + 3 :], self.limits(), False)
        return self._describe(self._result(result, wc.Variant))
