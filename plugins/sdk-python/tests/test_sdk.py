"""Unit tests of the SDK's pure parts, on the machine's own Python with componentize-py's
generated bindings on the path (scripts/test.sh generates them): the bindings' imports are
stubs there, so only what does not call the host runs."""

import json
import unittest

from componentize_py_types import Err
from wit_world.imports import osprey_plugin_types as wit

from osprey_sdk import Context, Error, ErrorKind, Plugin, webhook
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


class WebhookTests(unittest.TestCase):
    def request(self, body: bytes, signature):
        headers = [("content-type", "application/json")]
        if signature is not None:
            headers.append(("x-greeter-signature", signature))
        return wit.WebhookRequest("POST", "/events", "a=1", headers, body)

    def test_without_a_handler_the_plugin_answers_not_found(self):
        world = greeter().export()()
        with self.assertRaises(Err) as caught:
            world.handle_webhook(self.request(b"{}", None), wit.Context("hook-1", "hook-1"))
        self.assertEqual(caught.exception.value.kind, wit.ErrorKind.NOT_FOUND)
        self.assertIn("takes no webhooks", caught.exception.value.message)

    def test_a_handler_checks_the_signature_and_hands_alerts_to_the_host(self):
        p = greeter()

        @p.webhook
        def hook(ctx, request):
            if not webhook.verify_hmac_sha256("s3cret", request.body, request.header("X-Greeter-Signature")):
                return webhook.Response(401, "bad signature")
            return webhook.Response.json({"ok": True, "run": ctx.run_id}).alert(request.json())

        world = p.export()()
        body = b'{"title":"door opened"}'
        good = webhook.hmac_sha256_hex("s3cret", body)
        out = world.handle_webhook(self.request(body, good.upper()), wit.Context("hook-1", "hook-1"))
        self.assertEqual(out.response.status, 200)
        self.assertEqual(json.loads(out.response.body), {"ok": True, "run": "hook-1"})
        self.assertIn(("content-type", "application/json"), out.response.headers)
        self.assertEqual([e.value for e in out.events], ['{"title":"door opened"}'])
        self.assertIsInstance(out.events[0], wit.Event_Alert)
        for signature in [None, "", "00" * 32, good[:-1]]:
            with self.subTest(signature=signature):
                out = world.handle_webhook(self.request(body, signature), wit.Context("h", "h"))
                self.assertEqual((out.response.status, out.events), (401, []))
        with self.assertRaisesRegex(ValueError, "defined twice"):
            p.webhook(hook)

    def test_the_hmac_matches_rfc_4231_case_2(self):
        self.assertEqual(
            webhook.hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        )


class ErrorTests(unittest.TestCase):
    def test_only_the_kinds_where_waiting_helps_are_retryable_by_default(self):
        retryable = [k for k in ErrorKind if Error(k, "x").retryable]
        self.assertEqual(retryable, [ErrorKind.UNAVAILABLE, ErrorKind.RATE_LIMITED, ErrorKind.TIMEOUT])
        self.assertFalse(Error(ErrorKind.UNAVAILABLE, "down", retryable=False).retryable)

    def test_every_kind_crosses_the_wit_boundary_and_retry_after_only_where_the_contract_has_it(self):
        carries = "retry_after" in wit.Error.__dataclass_fields__
        for kind in ErrorKind:
            e = Error(kind, f"{kind.value} happened", retryable=kind is ErrorKind.INTERNAL, retry_after=5)
            record = e.to_wit(wit)
            if carries:  # 0.2.0 and later
                self.assertEqual(record.retry_after, 5)
            else:  # 0.1.0
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

    def test_a_429_or_5xx_carries_the_vendors_retry_after(self):
        def waited(status, value):
            r = Response("u", status, [("retry-after", value)] if value is not None else [], b"")
            with self.assertRaises(Error) as caught:
                r.raise_for_status()
            return caught.exception.retry_after

        self.assertEqual(waited(429, "30"), 30_000)
        self.assertEqual(waited(503, "7"), 7_000)
        self.assertEqual(waited(429, "99999999"), 86_400_000)
        self.assertIsNone(waited(429, None))
        self.assertIsNone(waited(429, "soon"))
        self.assertIsNone(waited(401, "30"))
        date = Response("u", 429, [("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")], b"")
        self.assertEqual(date.retry_after(now=1445412480 - 90), 90_000)
        self.assertEqual(date.retry_after(now=1445412480 + 5), 0)


if __name__ == "__main__":
    unittest.main()
