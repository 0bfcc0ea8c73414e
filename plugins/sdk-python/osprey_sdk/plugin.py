"""A plugin and its actions, and the `describe` and `invoke` exports componentize-py calls."""

import json
import sys
import traceback
from typing import Any, Callable, Dict, List, Optional

from componentize_py_types import Err
from wit_world.imports import osprey_plugin_types as _wit

from .errors import Error, ErrorKind
from .webhook import Request, Response

Handler = Callable[["Context", Dict[str, Any]], Any]


class Context:
    """Where a call comes from: the playbook run, and an idempotency key that stays the same
    when the host retries the same step (pass it to vendors that support one)."""

    def __init__(self, run_id: str, idempotency_key: str):
        self.run_id = run_id
        self.idempotency_key = idempotency_key


class _Action:
    def __init__(self, name: str, description: str, input: dict, output: dict, handler: Handler):
        self.name = name
        self.description = description
        # Encoded once, at build time: `describe` then only copies strings.
        self.input_schema = json.dumps(input, separators=(",", ":"))
        self.output_schema = json.dumps(output, separators=(",", ":"))
        self.handler = handler


class Plugin:
    """A plugin: its name, version, description and actions. `name` and `version` must match
    `plugin.toml`. Declare actions with `@plugin.action(...)` and export the plugin with
    `WitWorld = plugin.export()` in the module componentize-py builds."""

    def __init__(self, name: str, version: str, description: str):
        self.name = name
        self.version = version
        self.description = description
        self._actions: List[_Action] = []
        self._webhook: Optional[Callable[[Context, Request], Response]] = None

    def action(self, name: str, *, description: str, input: dict, output: dict):
        """Declare the action `name`, run by the decorated function `f(ctx, input) -> output`.
        `input` and `output` are JSON Schemas (draft 2020-12) as dicts; the host validates
        every input against `input` before the function runs. The function returns anything
        `json.dumps` accepts, or raises `Error`."""
        if any(a.name == name for a in self._actions):
            raise ValueError(f"action '{name}' is defined twice")
        for which, schema in (("input", input), ("output", output)):
            if not isinstance(schema, dict):
                raise TypeError(f"action '{name}': the {which} schema must be a dict (a JSON Schema)")

        def register(handler: Handler) -> Handler:
            self._actions.append(_Action(name, description, input, output, handler))
            return handler

        return register

    def describe(self):
        """The `describe` export: uses no import, as the contract requires."""
        return _wit.Descriptor(
            name=self.name,
            version=self.version,
            description=self.description,
            actions=[
                _wit.Action(
                    name=a.name,
                    description=a.description,
                    input_schema=a.input_schema,
                    output_schema=a.output_schema,
                )
                for a in self._actions
            ],
        )

    def run(self, action: str, input: str, context: Context) -> str:
        """Run `action` on the JSON text `input`; the output as JSON text, or a typed `Error`
        raised. Any other exception becomes an `internal` error naming it (its traceback goes
        to stderr, which reaches Osprey's log)."""
        found = next((a for a in self._actions if a.name == action), None)
        if found is None:
            known = ", ".join(a.name for a in self._actions)
            raise Error.invalid_input(f"plugin '{self.name}' has no action '{action}'; it has: {known}")
        try:
            value = json.loads(input)
        except ValueError as e:
            raise Error.invalid_input(f"input: {e}") from None
        try:
            output = found.handler(context, value)
        except Error:
            raise
        except MemoryError:
            raise Error(
                ErrorKind.LIMIT_EXCEEDED,
                f"{self.name}/{action} ran out of memory: a Python plugin needs more than a Rust one; "
                "ask for more with `memory_mib` under [requests.limits] in plugin.toml",
            ) from None
        except RecursionError:
            raise Error(ErrorKind.LIMIT_EXCEEDED, f"{self.name}/{action}: recursion too deep") from None
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            raise Error.internal(f"{self.name}/{action} raised {type(e).__name__}: {e}") from None
        try:
            return json.dumps(output, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            raise Error.internal(f"{self.name}/{action}: the output is not JSON: {e}") from None

    def webhook(self, handler: Callable[[Context, Request], Response]):
        """Declare the function `f(ctx, request) -> Response` that answers requests the vendor
        sends to `/hooks/PLUGIN/...` (the operator must grant `webhooks`, which plugin.toml
        requests as `[requests] webhooks = true`). It must check the vendor's signature first
        (`osprey_sdk.webhook.verify_hmac_sha256`). Without one, the plugin answers 404."""
        if self._webhook is not None:
            raise ValueError("the webhook handler is defined twice")
        self._webhook = handler
        return handler

    def handle(self, request: Request, context: Context) -> Response:
        """Answer one webhook request, or raise a typed `Error` (which the host answers with
        a status of its own: 404 for not-found, 400 invalid-input, 502 internal...)."""
        if self._webhook is None:
            raise Error.not_found(f"plugin '{self.name}' takes no webhooks")
        try:
            response = self._webhook(context, request)
        except Error:
            raise
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            raise Error.internal(f"{self.name} webhook raised {type(e).__name__}: {e}") from None
        if not isinstance(response, Response):
            raise Error.internal(f"{self.name} webhook returned {type(response).__name__}, not a Response")
        return response

    def export(self):
        """The class componentize-py calls for the world's exports: assign it to `WitWorld`
        at the top of the module you build (`WitWorld = plugin.export()`)."""
        plugin = self

        class WitWorld:
            def describe(self):
                return plugin.describe()

            def invoke(self, action: str, input: str, context) -> str:
                try:
                    return plugin.run(action, input, Context(context.run_id, context.idempotency_key))
                except Error as e:
                    raise Err(e.to_wit(_wit)) from None

            def handle_webhook(self, request, context):
                req = Request(request.method, request.path, request.query, list(request.headers), bytes(request.body))
                try:
                    res = plugin.handle(req, Context(context.run_id, context.idempotency_key))
                except Error as e:
                    raise Err(e.to_wit(_wit)) from None
                return _wit.WebhookOutcome(
                    response=_wit.WebhookResponse(status=res.status, headers=res.headers, body=res.body),
                    events=[_wit.Event_Alert(value=a) for a in res.alerts],
                )

        return WitWorld
