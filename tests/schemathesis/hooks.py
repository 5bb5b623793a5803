"""Custom schemathesis checks of the OpenAPI fuzz test (tests/tests/it/api/openapi_fuzz.rs),
loaded through SCHEMATHESIS_HOOKS and enabled by name in its `--checks`.

`envelope`: every answer is new-api's envelope `{success, message, ...}` with `success` true
exactly when the status is 2xx, except the bodies the OpenAPI document gives another shape:
the export's file (CSV or JSON Lines), the document itself and `/metrics` (Prometheus
text). The built-in schema check only
checks what the document describes; this one also covers answers the document cannot name
per path (the router's 404 and 405 fallbacks, the limits' 413/414/431/503/504).

`refused_unauthenticated`: for the run with bad credentials only, every answer to the
operation's own method is the 401 of a bad access token, so the fuzzer never reached what the
credentials guard.
"""

import json

import schemathesis

# (method, path template) -> statuses whose body is not the envelope, as the document says.
NOT_ENVELOPED = {
    ("GET", "/api/log/export"): {200},
    ("GET", "/api/log/self/export"): {200},
    ("GET", "/openapi.json"): {200},
    # Prometheus text for the scraper (docs/api.md).
    ("GET", "/metrics"): {200},
}


def _describe(case, response):
    return f"{response.request.method} {case.operation.path} -> {response.status_code}"


def _is_cors_preflight(response):
    # The CORS layer of the public token endpoint answers OPTIONS itself, with an empty body.
    return (
        response.request.method == "OPTIONS"
        and "access-control-allow-methods" in response.headers
        and not response.content
    )


@schemathesis.check
def envelope(ctx, response, case):
    method = response.request.method
    if response.status_code in NOT_ENVELOPED.get((method, case.operation.path), set()):
        return None
    # A HEAD answer has no body by definition; a preflight's is empty.
    if method == "HEAD" or _is_cors_preflight(response):
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise AssertionError(
            f"{_describe(case, response)}: Content-Type {content_type!r}, not the JSON envelope"
        )
    try:
        body = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(f"{_describe(case, response)}: body is not JSON ({error})") from None
    if not isinstance(body, dict):
        raise AssertionError(f"{_describe(case, response)}: body is not an object: {body!r:.200}")
    if not isinstance(body.get("success"), bool):
        raise AssertionError(f"{_describe(case, response)}: no boolean `success`: {body!r:.200}")
    if not isinstance(body.get("message"), str):
        raise AssertionError(f"{_describe(case, response)}: no string `message`: {body!r:.200}")
    if body["success"] != (200 <= response.status_code < 300):
        raise AssertionError(
            f"{_describe(case, response)}: `success` is {body['success']} with this status"
        )
    return None


@schemathesis.check
def refused_unauthenticated(ctx, response, case):
    # Other methods (the coverage phase tries them) get the router's 405, before any auth.
    if response.request.method != case.operation.method.upper():
        return None
    if response.status_code != 401:
        raise AssertionError(
            f"{_describe(case, response)}: bad credentials were not refused with 401"
        )
    return None
