#!/usr/bin/env python3
"""Offline checks of everything under deploy/ (run by deploy/check.sh, which installs PyYAML
and kubernetes-validate and builds the binary first).

1. Every YAML file parses.
2. Every kustomization renders (`kubectl kustomize` when kubectl is on PATH, cross-checked
   against a small built-in renderer that handles the `namespace` + `resources` subset used
   here; the built-in one alone otherwise), and every manifest under deploy/kubernetes/ is part
   of one, except `*.example.yaml` files, which are never applied with it:
   - custom resources (a ServiceMonitor: its CRD may not be installed, and no schema ships for
     it), checked against the rendered manifests instead: the ServiceMonitor must select a
     Service of the gateway, in its namespace, by a port name that Service has, and that
     Service must reach the pods' admin port;
   - Secrets, which the user creates out of band: they name the keys the pods mount, hold
     only REPLACE_WITH_ placeholders, and validate against the schemas on their own.
   No kustomization may hold a Secret: `kubectl apply -k` would overwrite the real one.
3. The rendered manifests validate in strict mode (unknown fields are errors) against the
   Kubernetes schemas of the oldest supported version and of the newest one the validator ships.
4. House rules the schemas cannot express: pods run as non-root with a read-only root
   filesystem, no capabilities, seccomp RuntimeDefault, no service links (IMS_PROXY_* service
   variables would be taken as config overrides), the ims-proxy container probes /healthz and
   /readyz on the admin port (or runs `ims-proxy health` with the admin port on loopback),
   and every secret file the proxy.toml names is a key of the
   Secret mounted there.
5. Each proxy.toml (the ConfigMaps', compose's, systemd's) passes `ims-proxy check`, with the
   secret files it names supplied from the Secret / compose secret / LoadCredential example
   (placeholders replaced by stand-ins, as a user's values would be); and each client key file
   still holding the example's placeholder is refused by `ims-proxy check`.
6. compose.yaml and compose-fleet.yaml validate with `docker-compose config` (Compose's own
   schema) where docker-compose is installed.
7. The systemd unit passes `systemd-analyze verify` with no warning, and its offline
   `systemd-analyze security` exposure stays at or below 2.0 (skipped without systemd-analyze).

Quiet on success apart from the summary line; every failure is printed and makes the exit
status 1.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent
K8S = DEPLOY / "kubernetes"
# Oldest version the manifests target (pod lifecycle sleep action, native sidecars), and the
# newest one the pinned validator (deploy/check.sh) ships.
K8S_VERSIONS = ["1.30.0", "1.37.0"]
EXPOSURE_MAX = 2.0

failures = []
notes = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}", file=sys.stderr)


def rel(p):
    return os.path.relpath(p, REPO)


# --- 1. YAML ---------------------------------------------------------------------------------

def load_yaml_files():
    docs = {}
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        if "dist" in path.relative_to(DEPLOY).parts:
            continue
        try:
            with open(path) as f:
                docs[path] = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            fail(f"{rel(path)}: YAML does not parse: {e}")
    return docs


# --- 2. kustomize ----------------------------------------------------------------------------

NON_NAMESPACED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass"}


def render_builtin(kdir, docs):
    kust = docs[kdir / "kustomization.yaml"][0]
    extra = set(kust) - {"apiVersion", "kind", "namespace", "resources"}
    if extra:
        raise ValueError(f"built-in renderer handles namespace and resources only, not {sorted(extra)}")
    out = []
    for r in kust.get("resources", []):
        path = (kdir / r).resolve()
        if path.is_dir():
            out += render_builtin(path, docs)
            continue
        if path not in docs:
            raise ValueError(f"resource {r} is not a file of deploy/")
        for d in docs[path]:
            d = yaml.safe_load(yaml.safe_dump(d))  # deep copy
            if kust.get("namespace") and d.get("kind") not in NON_NAMESPACED:
                d.setdefault("metadata", {})["namespace"] = kust["namespace"]
            out.append(d)
    return out


def identity(d):
    md = d.get("metadata", {})
    return (d.get("apiVersion"), d.get("kind"), md.get("namespace"), md.get("name"))


def render(kdir, docs, kubectl):
    try:
        builtin = render_builtin(kdir, docs)
    except (ValueError, OSError) as e:
        fail(f"{rel(kdir)}: {e}")
        builtin = None
    if not kubectl:
        return builtin
    r = subprocess.run([kubectl, "kustomize", str(kdir)], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"{rel(kdir)}: kubectl kustomize failed: {r.stderr.strip()}")
        return builtin
    rendered = [d for d in yaml.safe_load_all(r.stdout) if d is not None]
    if builtin is not None:
        a = sorted(rendered, key=lambda d: str(identity(d)))
        b = sorted(builtin, key=lambda d: str(identity(d)))
        if a != b:
            fail(f"{rel(kdir)}: built-in renderer disagrees with kubectl kustomize "
                 f"({[identity(d) for d in a]} vs {[identity(d) for d in b]})")
    return rendered


def example_secret_checks(path, secrets):
    """A Secret example names the keys of a Secret created out of band: placeholders only."""
    for d in secrets:
        where = f"{rel(path)}: Secret {d.get('metadata', {}).get('name')}"
        if d.get("data"):
            fail(f"{where}: use stringData with REPLACE_WITH_ placeholders, not data")
        for k, v in d.get("stringData", {}).items():
            if "REPLACE_WITH_" not in str(v):
                fail(f"{where}: key {k} must hold a REPLACE_WITH_ placeholder, not a value")


def no_secret_applied(kdir, manifests):
    for d in manifests:
        if d.get("kind") == "Secret":
            fail(f"{rel(kdir)}: Secret {d['metadata'].get('name')} is in the kustomization, so "
                 f"every `kubectl apply -k` would overwrite the real Secret with it; create it "
                 f"out of band and keep the example as *.example.yaml")


def servicemonitor_checks(path, monitors, manifests):
    """An example ServiceMonitor must scrape something the gateway set really has."""
    services = [d for d in manifests if d.get("kind") == "Service"]
    pods = [d for d in manifests if d.get("kind") == "Deployment"]
    for m in monitors:
        where = f"{rel(path)}: {m.get('kind')} {m.get('metadata', {}).get('name')}"
        if (m.get("apiVersion"), m.get("kind")) != ("monitoring.coreos.com/v1", "ServiceMonitor"):
            fail(f"{where}: only ServiceMonitor examples are expected here")
            continue
        spec = m.get("spec", {})
        want = spec.get("selector", {}).get("matchLabels", {})
        namespaces = spec.get("namespaceSelector", {}).get("matchNames", [])
        chosen = [s for s in services
                  if want and want.items() <= s["metadata"].get("labels", {}).items()
                  and s["metadata"].get("namespace") in namespaces]
        if len(chosen) != 1:
            fail(f"{where}: selects {len(chosen)} Services of the gateway set, not one")
            continue
        svc = chosen[0]
        ports = {p.get("name"): p for p in svc["spec"].get("ports", [])}
        for e in spec.get("endpoints", []):
            if e.get("port") not in ports:
                fail(f"{where}: endpoint port {e.get('port')!r} is not a port of Service "
                     f"{svc['metadata']['name']} ({sorted(ports)})")
            if e.get("path", "/metrics") != "/metrics":
                fail(f"{where}: the admin listener serves /metrics, not {e.get('path')}")
        sel = svc["spec"].get("selector", {})
        admin_ports = {
            p.get("name")
            for d in pods
            if sel.items() <= d["spec"]["template"]["metadata"].get("labels", {}).items()
            for c in d["spec"]["template"]["spec"].get("containers", [])
            for p in c.get("ports", [])
        }
        for p in ports.values():
            if p.get("targetPort") not in admin_ports:
                fail(f"{where}: Service {svc['metadata']['name']} targets port "
                     f"{p.get('targetPort')!r}, which no selected pod names")


# --- 3. schemas ------------------------------------------------------------------------------

def validate(rendered_files):
    for version in K8S_VERSIONS:
        cmd = ["kubernetes-validate", "--strict", "--quiet"]
        if version:
            cmd += ["-k", version]
        r = subprocess.run(cmd + [str(p) for p in rendered_files], capture_output=True, text=True)
        out = (r.stdout + r.stderr).strip()
        if r.returncode != 0 or "ERROR" in out:
            fail(f"kubernetes-validate --strict ({version or 'newest'}):\n{out}")


# --- 4. house rules --------------------------------------------------------------------------

def pod_specs(d):
    kind = d.get("kind")
    if kind == "Pod":
        yield d["spec"]
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield d["spec"]["template"]["spec"]
    elif kind == "CronJob":
        yield d["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def check_rules(name, manifests, out_of_band=()):
    by_kind = {}
    # Secrets created out of band (their *.example.yaml beside the kustomization) are what
    # the pods mount; the applied manifests come after, and hold none.
    for d in list(out_of_band) + manifests:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    for d in manifests:
        for spec in pod_specs(d):
            where = f"{name}: {d['kind']}/{d['metadata']['name']}"
            psc = spec.get("securityContext", {})
            if spec.get("enableServiceLinks") is not False:
                fail(f"{where}: enableServiceLinks must be false (service variables such as "
                     f"IMS_PROXY_PORT: ignored by the proxy, but nobody's settings)")
            if psc.get("runAsNonRoot") is not True:
                fail(f"{where}: securityContext.runAsNonRoot must be true")
            if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                fail(f"{where}: seccompProfile must be RuntimeDefault")
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                cw = f"{where} container {c['name']}"
                csc = c.get("securityContext", {})
                if csc.get("readOnlyRootFilesystem") is not True:
                    fail(f"{cw}: readOnlyRootFilesystem must be true")
                if csc.get("allowPrivilegeEscalation") is not False:
                    fail(f"{cw}: allowPrivilegeEscalation must be false")
                if csc.get("capabilities", {}).get("drop") != ["ALL"]:
                    fail(f"{cw}: capabilities.drop must be [ALL]")
                if "resources" not in c or "limits" not in c["resources"] \
                        or "requests" not in c["resources"]:
                    fail(f"{cw}: resource requests and limits are required")
                if "ims-proxy" in c.get("image", ""):
                    check_proxy_container(cw, c, volumes, by_kind)
                else:
                    check_no_ca_key(cw, c, volumes, by_kind)


def check_no_ca_key(cw, c, volumes, by_kind):
    """An application trusts the forward listener's CA; only the proxy may hold its key."""
    for m in c.get("volumeMounts", []):
        sec = volumes.get(m["name"], {}).get("secret")
        if not sec:
            continue
        keys = by_kind.get("Secret", {}).get(sec["secretName"], {}).get("stringData", {})
        if "ca.key" not in keys:
            continue
        items = [i.get("key") for i in sec.get("items", [])]
        if not items or "ca.key" in items:
            fail(f"{cw}: mounts Secret {sec['secretName']} with its CA key; list "
                 f"`items: [ca.pem]` so that only the proxy holds ca.key")


def check_proxy_container(cw, c, volumes, by_kind):
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    args = c.get("args", [])
    config_path = args[args.index("--config") + 1] if "--config" in args else None
    if not config_path:
        fail(f"{cw}: args must name --config")
        return
    # Probes either GET the admin port over the pod network, or run `ims-proxy health`
    # inside the container (`--live` for /healthz), which lets the admin port stay on loopback.
    exec_probes = False
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        p = c.get(probe, {})
        if "exec" in p:
            exec_probes = True
            want = ["/usr/local/bin/ims-proxy", "health", "--config", config_path]
            if path == "/healthz":
                want.append("--live")
            if p["exec"].get("command") != want:
                fail(f"{cw}: {probe} must run {' '.join(want)}")
            continue
        get = p.get("httpGet", {})
        if get.get("path") != path or get.get("port") != "admin" or "admin" not in ports:
            fail(f"{cw}: {probe} must GET {path} on the port named admin, or exec ims-proxy health")
    cm_dir, cm_key = os.path.split(config_path)
    cm_vol = volumes.get(mounts.get(cm_dir, ""), {}).get("configMap")
    if not cm_vol:
        fail(f"{cw}: {cm_dir} is not a ConfigMap volume (mount the directory, not a subPath, "
             f"so --watch sees updates)")
        return
    cm = by_kind.get("ConfigMap", {}).get(cm_vol["name"])
    if not cm or cm_key not in cm.get("data", {}):
        fail(f"{cw}: ConfigMap {cm_vol['name']} with key {cm_key} is not in the set")
        return
    admin = tomllib.loads(cm["data"][cm_key]).get("admin", {}).get("listen", "")
    if exec_probes:
        if not admin.startswith("127.0.0.1:"):
            fail(f"{cw}: with exec probes, [admin] listen must be on 127.0.0.1 ({admin!r})")
    elif not admin.endswith(f":{ports.get('admin')}"):
        fail(f"{cw}: admin port {ports.get('admin')} is not [admin] listen ({admin!r})")
    # Secret files: map each secret-volume mount dir to that Secret's keys.
    secret_dirs = {}
    for path, vol in mounts.items():
        sec = volumes.get(vol, {}).get("secret")
        if sec:
            s = by_kind.get("Secret", {}).get(sec["secretName"])
            if not s:
                fail(f"{cw}: Secret {sec['secretName']} has no secret.example.yaml beside the "
                     f"kustomization")
                continue
            data = dict(s.get("stringData", {}))
            data.update({k: "(base64)" for k in s.get("data", {})})
            secret_dirs[path] = data
    proxy_toml_checks.append((f"ConfigMap {cm_vol['name']} ({cw})", cm["data"][cm_key],
                              secret_dirs))


# --- 5. ims-proxy check ----------------------------------------------------------------------

proxy_toml_checks = []  # (label, toml text, {mount dir: {file name: content}})
refused_placeholders = []  # labels whose placeholder client key `check` refused


def path_keys(toml_text, suffix):
    """Every value of a key ending in `suffix` (`_file`, `_dir`) in the config, with its key
    path."""
    out = []

    def walk(v, path):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{path}.{k}" if path else k)
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{path}[{i}]")
        elif isinstance(v, str) and path.endswith(suffix):
            out.append((path, v))

    walk(tomllib.loads(toml_text), "")
    return out


def private_key_pem(tmp):
    path = Path(tmp) / "throwaway-rsa.pem"
    if not path.exists():
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", str(path)],
                       check=True, capture_output=True)
    return path.read_text()


def stand_in(content, f, tmp):
    """What a user puts in place of an example's placeholder."""
    if "REPLACE_WITH" not in content:
        return content
    # A key file must parse, so a fresh key.
    if f.endswith(".pem"):
        return private_key_pem(tmp)
    # A [shared] seal key must be 32 bytes: a fresh one, as `openssl rand -hex 32`.
    if "seal-key" in f:
        return os.urandom(32).hex()
    return content.replace("REPLACE_WITH_", "example-")


def proxy_check(binary, root, label, text, dirs, tmp, shipped=None):
    """`ims-proxy check` with `dirs`' files in place (stand-ins for placeholders, except the
    one file named by `shipped`, kept as the example ships it); the completed process."""
    root.mkdir()
    ca_dirs = {v for _, v in path_keys(text, "_dir")}
    for d, files in dirs.items():
        local = root / d.lstrip("/")
        local.mkdir(parents=True, exist_ok=True)
        for f, content in files.items():
            if d in ca_dirs and "REPLACE_WITH" in content:
                # The CA a Secret will hold: `check` makes one there, as `ims-proxy ca path`
                # does when the user makes the real one.
                continue
            if (d, f) != shipped:
                content = stand_in(content, f, tmp)
            (local / f).write_text(content)
            os.chmod(local / f, 0o600)
        os.chmod(local, 0o700)
        text = text.replace(f'"{d}/', f'"{local}/').replace(f'"{d}"', f'"{local}"')
    # The shipped files keep Developer Console's values as REPLACE_WITH_ placeholders,
    # which `check` refuses; stand-ins go in, as a user's values would.
    text = text.replace("REPLACE_WITH_", "example-")
    cfg = root / "proxy.toml"
    cfg.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMS_PROXY_")}
    return subprocess.run([binary, "check", "--config", str(cfg)], capture_output=True,
                          text=True, env=env)


def run_proxy_checks(binary, tmp):
    for n, (label, text, dirs) in enumerate(proxy_toml_checks):
        for key, value in path_keys(text, "_file") + path_keys(text, "_dir"):
            d, f = os.path.split(value)
            if key.endswith("_dir"):
                if value not in dirs:
                    fail(f"{label}: {key} = {value!r} is not a mounted Secret")
                continue
            if d not in dirs or f not in dirs[d]:
                fail(f"{label}: {key} = {value!r} is not provided "
                     f"(known: {', '.join(f'{x}/{y}' for x in dirs for y in dirs[x]) or 'none'})")
        r = proxy_check(binary, Path(tmp) / f"cfg{n}", label, text, dirs, tmp)
        if r.returncode != 0:
            fail(f"{label}: ims-proxy check exited {r.returncode}: "
                 f"{(r.stderr or r.stdout).strip()}")
        # A client key left as the example ships it must never pass for a real one.
        for i, c in enumerate(tomllib.loads(text).get("clients", [])):
            d, f = os.path.split(c.get("key_file", ""))
            if "REPLACE_WITH" not in dirs.get(d, {}).get(f, ""):
                continue
            r = proxy_check(binary, Path(tmp) / f"cfg{n}-placeholder{i}", label, text, dirs, tmp,
                            shipped=(d, f))
            err = (r.stderr or r.stdout).strip()
            if r.returncode != 2 or f"clients[{i}].key_file" not in err \
                    or "placeholder" not in err:
                fail(f"{label}: ims-proxy check must refuse clients[{i}].key_file holding the "
                     f"example's placeholder; it exited {r.returncode}: {err}")
            else:
                refused_placeholders.append(label)


def compose_checks(docs, name):
    path = DEPLOY / name
    compose = docs.get(path, [None])[0]
    if not compose:
        fail(f"deploy/{name} is missing")
        return
    secrets = compose.get("secrets", {})
    svc = compose["services"].get("ims-proxy")
    if not svc:
        fail(f"{name}: no service ims-proxy")
        return
    for k, want in (("read_only", True), ("cap_drop", ["ALL"])):
        if svc.get(k) != want:
            fail(f"{name}: ims-proxy {k} must be {want}")
    config_text = None
    for v in svc.get("volumes", []):
        src, _, rest = v.partition(":")
        if rest.split(":")[0] == "/etc/ims-proxy":
            config_dir = DEPLOY / src
            config_text = (config_dir / "proxy.toml").read_text()
    if config_text is None:
        fail(f"{name}: ims-proxy mounts no directory at /etc/ims-proxy")
        return
    files = {}
    for s in svc.get("secrets", []):
        secret = s if isinstance(s, str) else s["source"]
        src = DEPLOY / secrets[secret]["file"]
        example = src.with_name(src.name + ".example")
        if not src.exists() and not example.exists():
            fail(f"{rel(path)}: secret {secret}: neither {rel(src)} nor {rel(example)} exists")
            continue
        files[secret] = (src if src.exists() else example).read_text()
    compose_cli = shutil.which("docker-compose")
    if compose_cli:
        # Validates against Compose's schema (unknown keys are errors); needs no daemon.
        r = subprocess.run([compose_cli, "-f", str(path), "config", "-q"], capture_output=True,
                           text=True)
        out = (r.stdout + r.stderr).strip()
        if r.returncode != 0 or out:
            fail(f"{name}: docker-compose config: {out or r.returncode}")
        else:
            notes.append(f"{name} schema ok")
    else:
        notes.append("docker-compose not found: compose schema not checked")
    proxy_toml_checks.append((f"{rel(config_dir)}/proxy.toml", config_text,
                              {"/run/secrets": files}))


# --- 6. systemd ------------------------------------------------------------------------------

def systemd_checks(binary, tmp):
    unit_path = DEPLOY / "systemd" / "ims-proxy.service"
    unit = unit_path.read_text()
    creds = {}
    for m in re.finditer(r"^LoadCredential=([^:\s]+):(\S+)$", unit, re.M):
        creds[m.group(1)] = "REPLACE_WITH_SECRET\n"
    proxy_toml_checks.append(("deploy/systemd/proxy.toml",
                              (DEPLOY / "systemd" / "proxy.toml").read_text(),
                              {"/run/credentials/ims-proxy.service": creds}))
    for line in unit.splitlines():
        if line.startswith(("ExecStart=", "ExecStartPre=")) and "/etc/ims-proxy/proxy.toml" not in line:
            fail(f"{rel(unit_path)}: {line} does not use /etc/ims-proxy/proxy.toml")
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        notes.append("systemd-analyze not found: unit not verified")
        return
    # verify needs the binary the unit runs to exist: point it at the one just built.
    local = Path(tmp) / "ims-proxy.service"
    local.write_text(unit.replace("/usr/local/bin/ims-proxy", str(binary)))
    r = subprocess.run([analyze, "verify", "--man=no", str(local)], capture_output=True,
                       text=True)
    # verify exits 0 on unknown keys and only warns: any output is a failure.
    out = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or out:
        fail(f"{rel(unit_path)}: systemd-analyze verify: {out or r.returncode}")
    r = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(local)],
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
    if not m:
        fail(f"{rel(unit_path)}: systemd-analyze security gave no exposure: {r.stderr.strip()}")
    elif float(m.group(1)) > EXPOSURE_MAX:
        fail(f"{rel(unit_path)}: exposure {m.group(1)} above {EXPOSURE_MAX}")
    else:
        notes.append(f"systemd exposure {m.group(1)}")


def main():
    binary = Path(sys.argv[1]).resolve()
    docs = load_yaml_files()
    kubectl = shutil.which("kubectl")
    notes.append("kustomize: kubectl, cross-checked" if kubectl
                 else "kustomize: built-in renderer (no kubectl)")
    with tempfile.TemporaryDirectory(prefix="ims-proxy-deploy-check-") as tmp:
        kdirs = sorted(p.parent for p in docs if p.name == "kustomization.yaml")
        rendered_files, covered, by_kdir = [], set(), {}
        examples = {p: docs[p] for p in docs
                    if p.is_relative_to(K8S) and p.name.endswith(".example.yaml")}
        for kdir in kdirs:
            for r in docs[kdir / "kustomization.yaml"][0].get("resources", []):
                covered.add((kdir / r).resolve())
            manifests = render(kdir, docs, kubectl)
            if manifests is None:
                continue
            out = Path(tmp) / (rel(kdir).replace("/", "_") + ".yaml")
            out.write_text(yaml.safe_dump_all(manifests))
            rendered_files.append(out)
            by_kdir[kdir] = manifests
            no_secret_applied(kdir, manifests)
            out_of_band = [d for p, ds in examples.items() if p.parent == kdir
                           for d in ds if d.get("kind") == "Secret"]
            check_rules(rel(kdir), manifests, out_of_band)
        for p, ds in examples.items():
            secrets = [d for d in ds if d.get("kind") == "Secret"]
            if secrets:
                example_secret_checks(p, secrets)
                # Validated on its own: the user creates it with these keys.
                out = Path(tmp) / (rel(p).replace("/", "_"))
                out.write_text(yaml.safe_dump_all(secrets))
                rendered_files.append(out)
            others = [d for d in ds if d.get("kind") != "Secret"]
            if others:
                servicemonitor_checks(p, others, by_kdir.get(p.parent, []))
        for p in docs:
            if p in examples:
                continue
            elif p.is_relative_to(K8S) and p.name != "kustomization.yaml" and p not in covered:
                fail(f"{rel(p)} is in no kustomization, so nothing validates it")
        if rendered_files:
            validate(rendered_files)
        # The gateway beside a client, and the gateway as a fleet with Redis.
        for name in ("compose.yaml", "compose-fleet.yaml"):
            compose_checks(docs, name)
        systemd_checks(binary, tmp)
        run_proxy_checks(binary, tmp)
        notes.append(f"{len(refused_placeholders)} placeholder client keys refused")
    n_manifests = sum(len(d) for p, d in docs.items() if p.is_relative_to(K8S)
                      and p.name != "kustomization.yaml")
    summary = (f"{len(docs)} YAML files, {n_manifests} Kubernetes manifests (strict, "
               f"{' and '.join(v or 'newest' for v in K8S_VERSIONS)}), "
               f"{len(proxy_toml_checks)} proxy.toml checked; {'; '.join(notes)}")
    if failures:
        print(f"deploy check: {len(failures)} problem(s); {summary}", file=sys.stderr)
        return 1
    print(f"deploy check ok: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
