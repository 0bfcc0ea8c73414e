"""Writing an Osprey integration in Python.

    from osprey_sdk import Plugin, Error, config, secrets, http, log

    plugin = Plugin("myvendor", "0.1.0", "What it connects to, in one line")

    @plugin.action(
        "lookup",
        description="What the vendor knows about a domain",
        input={"type": "object", "properties": {"domain": {"type": "string"}},
               "required": ["domain"], "additionalProperties": False},
        output={"type": "object"},
    )
    def lookup(ctx, input):
        key = secrets.get("api-key")
        base = config.require("base_url")
        resp = http.get(f"{base}/v1/domains/{input['domain']}", headers={"x-apikey": key.expose()})
        return resp.raise_for_status().json()

    WitWorld = plugin.export()

Build it with componentize-py (see README.md next to this package). Every call runs in a fresh
instance; what must last goes in `kv`.
"""

from . import config, http, kv, log, secrets, webhook
from .errors import Error, ErrorKind
from .plugin import Context, Plugin

__all__ = ["Context", "Error", "ErrorKind", "Plugin", "config", "http", "kv", "log", "secrets", "webhook"]
