"""test-echo-py: the Python counterpart of testing/echo for the benchmarks (a trivial
action through a fresh instance, and the load of an 18 MB CPython component)."""

from osprey_sdk import Error, Plugin, secrets, webhook

plugin = Plugin("test-echo-py", "0.1.0", "Well-behaved Python test plugin: noop, echo, a secret's length, an error")

OBJECT = {"type": "object"}


@plugin.action("noop", description="Does nothing: the benchmark's trivial action", input=OBJECT, output=OBJECT)
def noop(ctx, input):
    return {}


@plugin.action("echo", description="Returns its input", input=OBJECT, output=OBJECT)
def echo(ctx, input):
    return input


@plugin.action(
    "secret-length",
    description="The length of the granted secret 'greeting', never its value",
    input=OBJECT,
    output={"type": "object", "properties": {"length": {"type": "integer"}}, "required": ["length"]},
)
def secret_length(ctx, input):
    return {"length": len(secrets.get("greeting").expose())}


@plugin.action(
    "fail",
    description="Raises a rate-limited error with the given message",
    input={"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
    output=OBJECT,
)
def fail(ctx, input):
    raise Error.rate_limited(input["message"], retry_after=1500)



@plugin.webhook
def hook(ctx, request):
    """Checks an `X-Echo-Signature` HMAC-SHA256 of the body with the secret 'greeting', then
    echoes the request and hands its body to the host as an alert."""
    if not webhook.verify_hmac_sha256(secrets.get("greeting").expose(), request.body, request.header("x-echo-signature")):
        return webhook.Response(401, "bad signature")
    echoed = {"method": request.method, "path": request.path, "query": request.query, "body": request.body.decode()}
    return webhook.Response.json(echoed).alert(request.json())


WitWorld = plugin.export()
