#!/usr/bin/env bash
# Audit what the server runs on for known vulnerabilities.
#
#   scripts/audit.sh [PIP-AUDIT OPTIONS...]   e.g. --ignore-vuln GHSA-xxxx, -f json
#   scripts/audit.sh --requirements           print the audited pins and stop (no network)
#
# pip-audit comes from PIP_AUDIT, else beside AUDIT_PYTHON, else PATH.
#
# The audited set is the runtime closure of `switchboard[server]` as installed in the
# environment of AUDIT_PYTHON (default .venv/bin/python): every distribution it requires,
# transitively, pinned to the installed version. Dev tools (pytest, mypy, ruff...) are not
# in it: they never reach the image. pip-audit runs with --strict, so a dependency the
# vulnerability service cannot answer for fails the audit instead of being skipped.
#
# AUDIT_SERVICE picks the vulnerability service: pypi (default; the PyPI JSON API) or osv
# (api.osv.dev, or AUDIT_OSV_URL). Both need the network: a PyPI mirror that serves only
# the package index (the "simple" API) has no vulnerability data, and the audit stops
# saying so.
#
# npm: package.json holds devDependencies only (buf and the Node.js test client); nothing
# from npm ships, so `npm audit --omit=dev` runs only once it names runtime dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${AUDIT_PYTHON:-.venv/bin/python}"
SERVICE="${AUDIT_SERVICE:-pypi}"
OSV_URL="${AUDIT_OSV_URL:-https://api.osv.dev/v1/query}"

die() {
  echo "audit: $*" >&2
  exit 1
}

[ -x "$PY" ] || die "no Python at $PY. Create the environment to audit:
    python3.11 -m venv .venv && .venv/bin/pip install -c deploy/requirements.lock '.[server]'
or point AUDIT_PYTHON at the python of an environment holding switchboard[server]."

# The runtime closure of switchboard[server], one `name==version` a line, sorted.
runtime_requirements() {
  "$PY" - <<'EOF'
import sys
from importlib import metadata

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # not a runtime dependency; a bare venv has pip's copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

ROOT = "switchboard"
pins: dict[str, str] = {}
done: set[tuple[str, str]] = set()
todo: list[tuple[str, frozenset[str], str]] = [(ROOT, frozenset({"server"}), "")]
while todo:
    name, extras, wanted_by = todo.pop()
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        who = f" (required by {wanted_by})" if wanted_by else ""
        sys.exit(
            f"audit: {name}{who} is not installed in {sys.executable}; "
            "install the server extra there: pip install '.[server]'"
        )
    key = canonicalize_name(dist.metadata["Name"])
    pins[key] = dist.version
    # "" stands for the distribution itself; each extra is followed once per distribution.
    fresh = {extra for extra in extras | {""} if (key, extra) not in done}
    done.update((key, extra) for extra in fresh)
    for raw in dist.requires or []:
        requirement = Requirement(raw)
        if requirement.marker is None:
            follow = "" in fresh
        else:
            follow = any(requirement.marker.evaluate({"extra": extra}) for extra in fresh)
        if follow:
            todo.append((requirement.name, frozenset(requirement.extras), key))
del pins[ROOT]
print("\n".join(f"{name}=={version}" for name, version in sorted(pins.items())))
EOF
}

# pip-audit's PyPI service reads https://pypi.org/pypi/NAME/VERSION/json; the OSV one
# posts to OSV_URL. Ask once up front so that an unreachable service is reported as
# such, not as every package being "not found on PyPI".
probe_service() {
  "$PY" - "$SERVICE" "$1" "$OSV_URL" <<'EOF'
import json
import sys
import urllib.error
import urllib.request

service, pin, osv_url = sys.argv[1:4]
name, version = pin.split("==")
if service == "pypi":
    url = f"https://pypi.org/pypi/{name}/{version}/json"
    request = urllib.request.Request(url)
elif service == "osv":
    url = osv_url
    body = {"package": {"name": name, "ecosystem": "PyPI"}, "version": version}
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
else:
    sys.exit(f"audit: AUDIT_SERVICE must be pypi or osv, not {service!r}")
try:
    with urllib.request.urlopen(request, timeout=20) as response:
        payload = json.load(response)
except (urllib.error.URLError, OSError, ValueError) as exc:
    sys.exit(
        f"audit: the {service} vulnerability service does not answer at {url} ({exc}).\n"
        "  Nothing was audited. Run where it is reachable (CI does), or try the other "
        "service: AUDIT_SERVICE=osv|pypi scripts/audit.sh"
    )
if service == "pypi" and "vulnerabilities" not in payload:
    sys.exit(f"audit: {url} answered without vulnerability data: nothing was audited.")
EOF
}

if [ "${1:-}" = "--requirements" ]; then
  runtime_requirements
  exit 0
fi

# pip-audit reads the pins only (no resolver, no pip): it need not live in the audited
# environment, and installing it there could move the versions under audit.
if [ -n "${PIP_AUDIT:-}" ]; then
  [ -x "$PIP_AUDIT" ] || die "PIP_AUDIT=$PIP_AUDIT is not an executable"
elif [ -x "$(dirname "$PY")/pip-audit" ]; then
  PIP_AUDIT="$(dirname "$PY")/pip-audit"
else
  PIP_AUDIT="$(command -v pip-audit || true)"
  [ -n "$PIP_AUDIT" ] || die "pip-audit is not installed. Install it (the dev extra has it), e.g.
    python3 -m venv /tmp/pip-audit && /tmp/pip-audit/bin/pip install 'pip-audit>=2.7'
and run again with PIP_AUDIT=/tmp/pip-audit/bin/pip-audit"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
runtime_requirements >"$work/requirements.txt"
count="$(wc -l <"$work/requirements.txt")"
echo "audit: $count runtime distributions of switchboard[server], service $SERVICE" >&2
probe_service "$(head -n 1 "$work/requirements.txt")"

# Pinned and complete: no resolver, no pip, nothing installed.
"$PIP_AUDIT" --strict --no-deps --disable-pip --progress-spinner off \
  --vulnerability-service "$SERVICE" --osv-url "$OSV_URL" \
  --requirement "$work/requirements.txt" "$@"

if "$PY" -c 'import json, sys; sys.exit(0 if json.load(open("package.json")).get("dependencies") else 1)'; then
  command -v npm >/dev/null || die "package.json has runtime dependencies: npm audit needs npm"
  npm audit --omit=dev
fi
