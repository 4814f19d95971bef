"""The admin API's OpenAPI document, checked by tools we did not write.

  admin_openapi.py validate BASE_URL CA_FILE
      GET BASE_URL/admin/v1/openapi.json and validate it with
      openapi-spec-validator (OpenAPI 3.1).
  admin_openapi.py fuzz BASE_URL CA_FILE TOKEN MAX_EXAMPLES WORKDIR
      schemathesis against the live API (base BASE_URL/admin/v1) with the
      bearer TOKEN: every operation, MAX_EXAMPLES generated cases each,
      checks not_a_server_error, status_code_conformance,
      content_type_conformance, response_schema_conformance and
      response_headers_conformance. Exit status non-zero on any failure.
"""

import json
import os
import subprocess
import sys

import requests

try:  # Loaded by schemathesis as its hooks module (SCHEMATHESIS_HOOKS).
    import schemathesis

    @schemathesis.serializer("application/toml")
    class TomlText:
        """The policy routes take TOML text: the generated string, as UTF-8."""

        def as_requests(self, context, value):
            data = value if isinstance(value, str) else json.dumps(value)
            return {"data": data.encode("utf-8")}

        def as_werkzeug(self, context, value):
            return self.as_requests(context, value)

except ImportError:
    pass


def validate(base, ca):
    from openapi_spec_validator import validate as check
    from openapi_spec_validator.readers import read_from_filename  # noqa: F401 (version probe)

    r = requests.get(base + "/admin/v1/openapi.json", verify=ca, timeout=30)
    r.raise_for_status()
    assert r.headers["content-type"].startswith("application/json"), r.headers
    doc = r.json()
    check(doc)
    assert doc["openapi"].startswith("3.1"), doc["openapi"]
    ops = [(p, m) for p, v in doc["paths"].items() for m in v if m != "parameters"]
    print(json.dumps({"valid": True, "operations": len(ops)}))


CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)


def fuzz(base, ca, token, max_examples, workdir):
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        base + "/admin/v1/openapi.json",
        "--base-url",
        base + "/admin/v1",
        "--experimental=openapi-3.1",
        "--checks",
        CHECKS,
        "--header",
        "Authorization: Bearer " + token,
        "--request-tls-verify",
        ca,
        # Valid and invalid data: invalid requests must be refused with a
        # documented 4xx, never a 5xx.
        "--data-generation-method",
        "all",
        "--hypothesis-max-examples",
        str(max_examples),
        "--hypothesis-phases",
        "explicit,generate",
        "--hypothesis-deadline",
        "None",
        # Reproducible by default; CERTBOUND_SCHEMATHESIS_SEED explores others.
        "--hypothesis-seed",
        os.environ.get("CERTBOUND_SCHEMATHESIS_SEED", "20261207"),
        "--hypothesis-database",
        "none",
        "--generation-with-security-parameters",
        "false",
        "--request-timeout",
        "60000",
        "--show-trace",
        "--no-color",
    ]
    # The document itself has no security and nothing to fuzz; everything
    # else is exercised (bounded by MAX_EXAMPLES, see docs/admin-api.md).
    cmd += ["--exclude-path", "/openapi.json"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.abspath(__file__))
    env["SCHEMATHESIS_HOOKS"] = "admin_openapi"
    done = subprocess.run(cmd, cwd=workdir, env=env)
    return done.returncode


def main():
    mode = sys.argv[1]
    if mode == "validate":
        validate(sys.argv[2], sys.argv[3])
        return 0
    if mode == "fuzz":
        return fuzz(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
