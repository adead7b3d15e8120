#!/usr/bin/env bash
# Benchmark of `lameduck lint` against Checkov on the same Kubernetes input:
# a 5,000-object stream shaped like `helm template` output (1,250 releases of
# a Deployment, a Service, a ConfigMap and a PodDisruptionBudget). Goal:
# lameduck lints it in under 1 s. Prints both wall times and the ratio.
#
# A benchmark, not a test: `cargo test` never runs it. Checkov comes from
# .ci/setup-lint-tools.sh --bench (pip, pinned) unless CHECKOV is set.
#
#   bench/lint-vs-checkov.sh                  # 5000 objects
#   bench/lint-vs-checkov.sh 20000            # another size (a multiple of 4)
#   LAMEDUCK=target/debug/lameduck bench/lint-vs-checkov.sh   # skip the release build
set -euo pipefail

cd "$(dirname "$0")/.."

objects=${1:-5000}
releases=$((objects / 4))
lameduck=${LAMEDUCK:-}
if [ -z "$lameduck" ]; then
    cargo build --release -p lameduck
    lameduck=target/release/lameduck
fi
if [ -z "${CHECKOV:-}" ]; then
    bash .ci/setup-lint-tools.sh --bench >/dev/null
    CHECKOV=target/lint-tools/venv/bin/checkov
fi

dir=target/lint-bench
mkdir -p "$dir"
stream=$dir/stream.yaml
python3 - "$releases" > "$stream" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    grace = 30 if i % 3 else 45
    sleep = 20 if i % 5 == 0 else 5
    print(f"""---
# Source: app/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-{i}
data:
  application.properties: |
    server.shutdown=graceful
    spring.lifecycle.timeout-per-shutdown-phase=20s
---
# Source: app/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: app-{i}
spec:
  selector:
    app.kubernetes.io/name: app-{i}
  ports:
    - {{name: http, port: 80, targetPort: http}}
---
# Source: app/templates/pdb.yaml
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: app-{i}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: app-{i}
---
# Source: app/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
spec:
  replicas: 3
  selector:
    matchLabels:
      app.kubernetes.io/name: app-{i}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-{i}
    spec:
      terminationGracePeriodSeconds: {grace}
      containers:
        - name: app
          image: "registry.example/app:1.{i}"
          ports:
            - {{name: http, containerPort: 8080}}
          lifecycle:
            preStop:
              exec:
                command: ["sh", "-c", "sleep {sleep}"]
          readinessProbe:
            httpGet: {{path: /ready, port: http}}
          livenessProbe:
            httpGet: {{path: /health, port: http}}
          volumeMounts:
            - {{name: config, mountPath: /config}}
      volumes:
        - name: config
          configMap: {{name: app-{i}}}""")
PY

now() { date +%s.%N; }

echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:  $(nproc) CPUs, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input:    $stream: $(grep -c '^kind:' "$stream") objects, $(wc -l < "$stream") lines, $(stat -c %s "$stream") bytes"
echo "lameduck: $($lameduck --version) ($lameduck)"
echo "checkov:  $($CHECKOV --version)"
echo

t0=$(now)
"$lameduck" lint --format json --fail-on never "$stream" > "$dir/lameduck.json"
t1=$(now)
timeout 1800 "$CHECKOV" --skip-download --quiet --compact --framework kubernetes -o json -f "$stream" \
    > "$dir/checkov.json" 2> "$dir/checkov.stderr" || true
t2=$(now)

lameduck_s=$(echo "$t1 - $t0" | bc -l)
checkov_s=$(echo "$t2 - $t1" | bc -l)
lameduck_n=$(python3 -c "import json; print(len(json.load(open('$dir/lameduck.json'))['findings']))")
checkov_n=$(python3 -c "
import json
d = json.load(open('$dir/checkov.json'))
d = d if isinstance(d, list) else [d]
print(sum(len(r.get('results', {}).get('failed_checks', [])) for r in d))")

printf '%-10s %10s %10s\n' tool seconds findings
printf '%-10s %10.3f %10s\n' lameduck "$lameduck_s" "$lameduck_n"
printf '%-10s %10.3f %10s\n' checkov "$checkov_s" "$checkov_n"
printf 'ratio:     checkov / lameduck = %.0fx\n' "$(echo "$checkov_s / $lameduck_s" | bc -l)"
if [ "$(echo "$lameduck_s < 1" | bc -l)" = 1 ]; then
    echo "goal met: $objects objects in under 1 s"
else
    echo "GOAL MISSED: $objects objects took ${lameduck_s} s (goal: under 1 s)" >&2
    exit 1
fi
