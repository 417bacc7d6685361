#!/usr/bin/python3
"""Structural check of deploy/: the Kubernetes manifests agree with each other and with the server.

No cluster and no schema download here, so this checks what a typo would break: every file a
kustomization names exists; the Deployment runs one pod (Recreate), non-root, with requests and limits,
and gRPC startup/liveness/readiness probes on its gRPC port; every PVC, ConfigMap and Secret it uses is
defined; the Service selects the pod and targets its named ports; the ServiceMonitor selects the Service
and scrapes a port it has; the GPU overlay requests and limits nvidia.com/gpu; and every MOKE_* variable
set in the manifests, the compose file and the Dockerfiles is one moke-server reads (server/server_options.cc).
The followers overlay: the follower Deployment follows the editor's Service on its gRPC port with flags
moke-server has and the editor's token from the Secret (MOKE_FOLLOW_TOKEN), mounts no PVC, has the same
probes with readiness alone on the service's status (the lag) and liveness on the server's; its headless
Service selects it; the HorizontalPodAutoscaler scales it; a ServiceMonitor scrapes it.
Needs python3-yaml (a dependency of yamllint). Exit 77 when it is missing.
"""
import os
import re
import sys

try:
    import yaml
except ImportError:
    print("check_manifests: SKIPPED: /usr/bin/python3 has no yaml module (install python3-yaml or yamllint)")
    sys.exit(77)

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
kdir = os.path.join(root, "deploy", "kubernetes")
errors = []


def err(msg):
    errors.append(msg)


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def kustomize(d):
    """Our own tiny kustomize: resources + strategic-merge patches (merge lists of named items by name)."""
    k = load(os.path.join(d, "kustomization.yaml"))[0]
    docs = []
    for r in k.get("resources", []):
        p = os.path.join(d, r)
        if os.path.isdir(p):
            docs += kustomize(p)
        elif os.path.exists(p):
            docs += load(p)
        else:
            err(f"{d}/kustomization.yaml: resource {r} does not exist")
    for patch in k.get("patches", []):
        p = os.path.join(d, patch["path"])
        if not os.path.exists(p):
            err(f"{d}: patch {patch['path']} does not exist")
            continue
        for pd in load(p):
            target = [x for x in docs if x["kind"] == pd["kind"] and x["metadata"]["name"] == pd["metadata"]["name"]]
            if not target:
                err(f"{p}: patches {pd['kind']}/{pd['metadata']['name']}, which is not in the resources")
            for t in target:
                merge(t, pd)
    for img in k.get("images", []):
        for dep in (x for x in docs if x["kind"] == "Deployment"):
            for c in dep["spec"]["template"]["spec"]["containers"]:
                if c["image"].split(":")[0] == img["name"]:  # as kustomize: the name without the tag
                    c["image"] = f"{img.get('newName', img['name'])}:{img.get('newTag', 'latest')}"
    return docs


def merge(dst, src):
    for key, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(key), dict):
            merge(dst[key], v)
        elif isinstance(v, list) and isinstance(dst.get(key), list) and all(isinstance(x, dict) and "name" in x for x in v):
            by_name = {x.get("name"): x for x in dst[key] if isinstance(x, dict)}
            for item in v:
                if item["name"] in by_name:
                    merge(by_name[item["name"]], item)
                else:
                    dst[key].append(item)
        else:
            dst[key] = v


def server_env_names():
    with open(os.path.join(root, "server", "server_options.cc")) as f:
        return set(re.findall(r'envname\("(MOKE_[A-Z0-9_]+)"\)', f.read()))


def check_env(where, names, known):
    for n in names:
        if n.startswith("MOKE_") and n not in known:
            err(f"{where}: sets {n}, which moke-server does not read (known: {', '.join(sorted(known))})")


def component(doc):
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def server_flags():
    with open(os.path.join(root, "server", "server_options.cc")) as f:
        return set(re.findall(r'"(--[a-z0-9-]+)', f.read()))


def check_pod(where, pod, known_env, secrets, token_var="MOKE_TOKEN"):
    """What every moke-server pod needs: non-root, no service links, gRPC probes on the gRPC port,
    requests and limits, known MOKE_* variables, the token from the Secret. Returns the ports and mounts."""
    ps = pod["spec"]
    sc = ps.get("securityContext", {})
    if not sc.get("runAsNonRoot") or sc.get("runAsUser", 0) == 0:
        err(f"{where}: the pod must run as a non-root user")
    if ps.get("enableServiceLinks", True):
        err(f"{where}: set enableServiceLinks: false (injected MOKE_EDITOR_* variables)")
    volumes = {v["name"]: v for v in ps.get("volumes", [])}
    ports, mounts = {}, set()
    for c in ps["containers"]:
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        if "grpc" not in ports or "metrics" not in ports:
            err(f"{where}: container {c['name']} needs ports named grpc and metrics")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            pr = c.get(probe)
            if not pr or "grpc" not in pr:
                err(f"{where}: {c['name']} needs a gRPC {probe}")
            elif pr["grpc"]["port"] != ports.get("grpc"):
                err(f"{where}: {probe} asks port {pr['grpc']['port']}, the gRPC port is {ports.get('grpc')}")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(res.get(part, {})):
                err(f"{where}: {c['name']} needs cpu and memory {part}")
        env = {e["name"]: e for e in c.get("env", [])}
        check_env(f"{where} container {c['name']}", env, known_env)
        tok = env.get(token_var, {}).get("valueFrom", {}).get("secretKeyRef")
        if not tok:
            err(f"{where}: {token_var} must come from a Secret (secretKeyRef)")
        elif tok["name"] not in secrets or tok["key"] not in secrets[tok["name"]]:
            err(f"{where}: {token_var} reads Secret {tok['name']} key {tok['key']}, which secret.yaml does not define")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                err(f"{where}: mount {m['name']} has no volume")
            mounts.add(m["mountPath"])
    return ports, mounts, volumes


def check_followers(variant, by_kind, editor_svc, known_env, secrets):
    deps = [d for d in by_kind.get("Deployment", {}).values() if component(d) == "follower"]
    if not deps:
        return
    flags = server_flags()
    for dep in deps:
        name = f"{variant} Deployment/{dep['metadata']['name']}"
        spec, pod = dep["spec"], dep["spec"]["template"]
        labels = pod["metadata"]["labels"]
        if any(labels.get(k) != v for k, v in spec["selector"]["matchLabels"].items()):
            err(f"{name}: selector does not match the pod template labels")
        ports, mounts, volumes = check_pod(name, pod, known_env, secrets, token_var="MOKE_FOLLOW_TOKEN")
        if any("persistentVolumeClaim" in v for v in volumes.values()):
            err(f"{name}: a follower writes nothing that must last; it must not claim a PVC")
        grpc_port = next((p["port"] for p in editor_svc["spec"]["ports"] if p["name"] == "grpc"), None)
        want = f"{editor_svc['metadata']['name']}:{grpc_port}"
        for c in pod["spec"]["containers"]:
            args = c.get("args", [])
            given = {a.split("=", 1)[0] for a in args if a.startswith("--")}
            for f in sorted(given - flags):
                err(f"{name}: passes {f}, which moke-server does not have")
            follow = [a.split("=", 1)[1] for a in args if a.startswith("--follow=")]
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                asks_service = c.get(probe, {}).get("grpc", {}).get("service") == "moke.v1.KnowledgeEditor"
                if asks_service != (probe == "readinessProbe"):
                    err(f"{name}: {probe} must ask {'the service (the lag)' if probe == 'readinessProbe' else 'the server (a lagging follower is not restarted)'}")
            if follow != [want]:
                err(f"{name}: must run --follow={want} (the editor's Service and gRPC port), has {follow}")
        svcs = [s for s in by_kind.get("Service", {}).values() if component(s) == "follower"]
        if len(svcs) != 1:
            err(f"{name}: expected one follower Service, found {[s['metadata']['name'] for s in svcs]}")
            continue
        svc = svcs[0]
        if svc["spec"].get("clusterIP") != "None":
            err(f"{variant}: Service {svc['metadata']['name']} must be headless (clusterIP: None) for per-request balancing")
        if any(labels.get(k) != v for k, v in svc["spec"]["selector"].items()):
            err(f"{variant}: Service {svc['metadata']['name']} does not select the follower pods")
        for p in svc["spec"]["ports"]:
            if isinstance(p.get("targetPort"), str) and p["targetPort"] not in ports:
                err(f"{variant}: Service port {p['name']} targets {p['targetPort']}, not a container port name")
        monitors = [m for m in by_kind.get("ServiceMonitor", {}).values()
                    if all(svc["metadata"].get("labels", {}).get(k) == v for k, v in m["spec"]["selector"]["matchLabels"].items())]
        if not monitors:
            err(f"{variant}: no ServiceMonitor selects Service {svc['metadata']['name']}")
        hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", {}).values()
                if h["spec"]["scaleTargetRef"].get("kind") == "Deployment" and h["spec"]["scaleTargetRef"].get("name") == dep["metadata"]["name"]]
        if len(hpas) != 1:
            err(f"{name}: expected one HorizontalPodAutoscaler for it, found {len(hpas)}")
        for h in hpas:
            lo, hi = h["spec"].get("minReplicas", 1), h["spec"]["maxReplicas"]
            if not 1 <= lo <= hi:
                err(f"{variant}: HPA {h['metadata']['name']}: replicas {lo}..{hi}")
            if not h["spec"].get("metrics"):
                err(f"{variant}: HPA {h['metadata']['name']} has no metrics")


def check(variant, docs, known_env, secrets):
    by_kind = {}
    for d in docs:
        for key in ("apiVersion", "kind", "metadata"):
            if key not in d:
                err(f"{variant}: a document without {key}")
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    deps = {n: d for n, d in by_kind.get("Deployment", {}).items() if component(d) != "follower"} or by_kind.get("StatefulSet", {})
    if len(deps) != 1:
        err(f"{variant}: expected one editor Deployment, found {list(deps)}")
        return
    dep = next(iter(deps.values()))
    spec = dep["spec"]
    if spec.get("replicas") != 1:
        err(f"{variant}: editor replicas must be 1 (single writer of the edit log)")
    if dep["kind"] == "Deployment" and spec.get("strategy", {}).get("type") != "Recreate":
        err(f"{variant}: the editor Deployment must use strategy Recreate (a ReadWriteOnce volume, one writer)")
    pod = spec["template"]
    labels = pod["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in spec["selector"]["matchLabels"].items()):
        err(f"{variant}: selector does not match the pod template labels")
    all_ports, mounts, volumes = check_pod(variant, pod, known_env, secrets)
    for v in volumes.values():
        if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in by_kind.get("PersistentVolumeClaim", {}):
            err(f"{variant}: volume {v['name']} uses PVC {v['persistentVolumeClaim']['claimName']}, not defined")
        if "configMap" in v and v["configMap"]["name"] not in by_kind.get("ConfigMap", {}):
            err(f"{variant}: volume {v['name']} uses ConfigMap {v['configMap']['name']}, not defined")
    if "/data" not in mounts:
        err(f"{variant}: /data (edit log, snapshots) must be mounted from the PVC")
    if variant == "gpu":
        for c in pod["spec"]["containers"]:
            for part in ("requests", "limits"):
                if str(c.get("resources", {}).get(part, {}).get("nvidia.com/gpu")) != "1":
                    err(f"gpu: {c['name']} must have nvidia.com/gpu: 1 in {part}")
            if "cuda" not in c["image"]:
                err(f"gpu: image is {c['image']}, expected the CUDA image")
        if "/model" not in mounts:
            err("gpu: the model folder must be mounted at /model")
    svcs = {n: s for n, s in by_kind.get("Service", {}).items() if component(s) != "follower"}
    if len(svcs) != 1:
        err(f"{variant}: expected one Service, found {list(svcs)}")
        return
    svc = next(iter(svcs.values()))
    if any(labels.get(k) != v for k, v in svc["spec"]["selector"].items()):
        err(f"{variant}: Service {svc['metadata']['name']} does not select the editor pod")
    for p in svc["spec"]["ports"]:
        if isinstance(p.get("targetPort"), str) and p["targetPort"] not in all_ports:
            err(f"{variant}: Service port {p['name']} targets {p['targetPort']}, not a container port name")
    for sm in (m for m in by_kind.get("ServiceMonitor", {}).values() if component(m) != "follower"):
        sel = sm["spec"]["selector"]["matchLabels"]
        if any(svc["metadata"].get("labels", {}).get(k) != v for k, v in sel.items()):
            err(f"{variant}: ServiceMonitor {sm['metadata']['name']} does not select Service {svc['metadata']['name']}")
        for ep in sm["spec"]["endpoints"]:
            if ep["port"] not in {p["name"] for p in svc["spec"]["ports"]}:
                err(f"{variant}: ServiceMonitor scrapes port {ep['port']}, which the Service does not have")
    if not by_kind.get("ServiceMonitor"):
        err(f"{variant}: no ServiceMonitor")
    check_followers(variant, by_kind, svc, known_env, secrets)
    print(f"check_manifests: {variant}: {len(docs)} objects "
          f"({', '.join(sorted(f'{k}/{n}' for k, v in by_kind.items() for n in v))})")


def main():
    known = server_env_names()
    if len(known) < 5:
        err(f"found only {sorted(known)} in server/server_options.cc: the envname() parser is broken")
    secrets = {d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {}))
               for d in load(os.path.join(kdir, "base", "secret.yaml")) if d["kind"] == "Secret"}
    for variant in ("base", "gpu", "followers"):
        check(variant, kustomize(os.path.join(kdir, variant)), known, secrets)
    # The compose file and the Dockerfiles set MOKE_* too.
    compose = load(os.path.join(root, "deploy", "compose.yaml"))[0]
    for name, svc in compose["services"].items():
        check_env(f"compose service {name}", svc.get("environment", {}), known)
    for df in ("Dockerfile", "Dockerfile.cuda"):
        with open(os.path.join(root, "docker", df)) as f:
            text = f.read()
        check_env(f"docker/{df}", re.findall(r'\b(MOKE_[A-Z0-9_]+)=', text), known)
        for must in ("HEALTHCHECK", "USER moke", 'VOLUME ["/model", "/data"]', "ARG BASE=debian:bookworm"):
            if must not in text:
                err(f"docker/{df}: missing {must}")
    for e in errors:
        print("ERROR:", e)
    print("check_manifests:", "FAILED" if errors else "passed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
