"""Unit tests of the SDK's pure parts, on the machine's own Python with componentize-py's
generated bindings on the path (scripts/test.sh generates them): the bindings' imports are
stubs there, so only what does not call the host runs."""

import json
import unittest

from componentize_py_types import Err
from wit_world.imports import osprey_plugin_types as wit

from osprey_sdk import Context, Error, ErrorKind, Plugin
from osprey_sdk.http import Response, split_url, status_kind

OBJECT = {"type": "object"}


def greeter() -> Plugin:
    plugin = Plugin("greeter", "1.2.3", "Says hello")

    @plugin.action("greet", description="Greets someone", input=OBJECT, output=OBJECT)
    def greet(ctx, input):
        if input.get("name") == "":
            raise Error.rate_limited("slow down", retry_after=1500)
        if input.get("name") == "bug":
            raise KeyError("oops")
        if input.get("name") == "set":
            return {"x": {1, 2}}
        return {"greeting": f"hello {input['name']}", "run": f"{ctx.run_id}/{ctx.idempotency_key}"}

    return plugin


CTX = Context("run-1", "run-1/3")


class PluginTests(unittest.TestCase):
    def test_describe_lists_the_actions_with_their_schemas_as_json_text(self):
        d = greeter().describe()
        self.assertEqual((d.name, d.version, d.description), ("greeter", "1.2.3", "Says hello"))
        self.assertEqual([a.name for a in d.actions], ["greet"])
        self.assertEqual(json.loads(d.actions[0].input_schema), OBJECT)

    def test_run_calls_the_named_action_with_the_context(self):
        out = greeter().run("greet", '{"name":"ana"}', CTX)
        self.assertEqual(json.loads(out), {"greeting": "hello ana", "run": "run-1/run-1/3"})

    def test_failures_are_typed(self):
        p = greeter()
        cases = [
            ("wave", "{}", ErrorKind.INVALID_INPUT, "plugin 'greeter' has no action 'wave'; it has: greet"),
            ("greet", "{", ErrorKind.INVALID_INPUT, "input: "),
            ("greet", '{"name":""}', ErrorKind.RATE_LIMITED, "slow down"),
            ("greet", '{"name":"bug"}', ErrorKind.INTERNAL, "greeter/greet raised KeyError: 'oops'"),
            ("greet", '{"name":"set"}', ErrorKind.INTERNAL, "the output is not JSON"),
        ]
        for action, input, kind, says in cases:
            with self.subTest(input=input), self.assertRaises(Error) as caught:
                p.run(action, input, CTX)
            self.assertEqual(caught.exception.kind, kind)
            self.assertIn(says, caught.exception.message)

    def test_an_action_declared_twice_or_with_a_non_dict_schema_is_refused(self):
        p = greeter()
        with self.assertRaisesRegex(ValueError, "defined twice"):
            p.action("greet", description="again", input=OBJECT, output=OBJECT)
        with self.assertRaisesRegex(TypeError, "input schema must be a dict"):
            p.action("other", description="x", input='{"type":"object"}', output=OBJECT)

    def test_the_export_raises_the_wit_error_record(self):
        world = greeter().export()()
        with self.assertRaises(Err) as caught:
            world.invoke("greet", '{"name":""}', wit.Context("r", "k"))
        record = caught.exception.value
        self.assertEqual((record.kind, record.message, record.retryable), (wit.ErrorKind.RATE_LIMITED, "slow down", True))


class ErrorTests(unittest.TestCase):
    def test_only_the_kinds_where_waiting_helps_are_retryable_by_default(self):
        retryable = [k for k in ErrorKind if Error(k, "x").retryable]
        self.assertEqual(retryable, [ErrorKind.UNAVAILABLE, ErrorKind.RATE_LIMITED, ErrorKind.TIMEOUT])
        self.assertFalse(Error(ErrorKind.UNAVAILABLE, "down", retryable=False).retryable)

    def test_every_kind_crosses_the_wit_boundary_and_retry_after_is_dropped_on_0_1_0(self):
        for kind in ErrorKind:
            e = Error(kind, f"{kind.value} happened", retryable=kind is ErrorKind.INTERNAL, retry_after=5)
            record = e.to_wit(wit)
            self.assertFalse(hasattr(record, "retry_after"))
            back = Error.from_wit(record)
            self.assertEqual((back.kind, back.message, back.retryable), (e.kind, e.message, e.retryable))


class HttpTests(unittest.TestCase):
    def test_urls_are_split_as_wasi_http_takes_them(self):
        t = split_url("https://Bücher.Example:8443/a/c?q=1#frag")
        self.assertEqual((t.scheme, t.authority, t.path_and_query), ("https", "xn--bcher-kva.example:8443", "/a/c?q=1"))
        self.assertEqual(t.shown, "https://xn--bcher-kva.example:8443/a/c")
        self.assertEqual(split_url("http://[::1]:9").authority, "[::1]:9")
        self.assertEqual(split_url("http://10.0.0.1").path_and_query, "/")

    def test_unusable_urls_are_invalid_input_saying_why(self):
        for raw, why in [
            ("ftp://example.com/", "only http and https"),
            ("https://user:pw@example.com/", "credentials in URLs"),
            ("https:///nohost", "no host"),
            ("http://h:99999/", "is not a usable URL"),
        ]:
            with self.subTest(raw=raw), self.assertRaises(Error) as caught:
                split_url(raw)
            self.assertEqual(caught.exception.kind, ErrorKind.INVALID_INPUT)
            self.assertIn(why, caught.exception.message)

    def test_statuses_map_to_the_kinds_playbooks_act_on(self):
        for status, kind in [(401, "DENIED"), (403, "DENIED"), (404, "NOT_FOUND"), (429, "RATE_LIMITED"), (503, "UNAVAILABLE"), (418, "UPSTREAM")]:
            self.assertEqual(status_kind(status), ErrorKind[kind])
        r = Response("https://v.example/x", 500, [("x-id", "1")], "é".encode() * 400)
        with self.assertRaises(Error) as caught:
            r.raise_for_status()
        self.assertEqual(caught.exception.message.count("é"), 300)
        self.assertEqual(r.header("X-ID"), "1")
        with self.assertRaises(Error) as caught:
            Response("u", 200, [], b"<html>").json()
        self.assertEqual(caught.exception.kind, ErrorKind.UPSTREAM)


if __name__ == "__main__":
    unittest.main()
