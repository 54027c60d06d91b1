"""Repos that fleet did not create, written by the tests in tmp dirs: a kustomize overlay tree
(``bases/`` + ``overlays/<env>/``) and a Flux repo laid out like Flux's own examples (``clusters/<name>/``
holding Flux Kustomizations for infrastructure controllers, then configs, then apps, with dependsOn,
postBuild.substitute and substituteFrom, a component, a HelmRelease and an OCI source).

Each is a plain git repo with one commit by plain git (a team's repo), no fleet.yaml.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

__all__ = ["FLUX_URL", "flux_artifact_files", "flux_artifact_repo", "flux_live_files", "flux_repo", "kustomize_repo",
           "write_tree"]

FLUX_URL = "ssh://git@github.com/acme/fleet-infra"


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True)
    return done.stdout


def _commit_all(root: Path, message: str) -> str:
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", message)
    return _git(root, "rev-parse", "HEAD").strip()


def _new_repo(root: Path) -> None:
    root.mkdir(parents=True)
    _git(root, "init", "-q", "-b", "main")


KUSTOMIZE_FILES = {
    "README.md": "# acme apps\n\nOur overlays: `kustomize build overlays/dev`.\n",
    "bases/app/kustomization.yaml": """
        resources:
          - deployment.yaml
          - service.yaml
          - configmap.yaml
    """,
    "bases/app/deployment.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          replicas: ${REPLICAS:=1}
          selector:
            matchLabels: {app: web}
          template:
            metadata:
              labels: {app: web}
            spec:
              containers:
                - name: web
                  image: ghcr.io/acme/web:1.0.0
    """,
    "bases/app/service.yaml": """
        apiVersion: v1
        kind: Service
        metadata:
          name: web
        spec:
          selector: {app: web}
          ports: [{port: 80}]
    """,
    "bases/app/configmap.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: web-config
        data:
          GREETING: hello from ${FLEET_CLUSTER}
    """,
    "overlays/dev/kustomization.yaml": """
        namespace: web-dev
        resources:
          - namespace.yaml
          - ../../bases/app
    """,
    "overlays/dev/namespace.yaml": """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: web-dev
    """,
    "overlays/prod/kustomization.yaml": """
        namespace: web-prod
        resources:
          - namespace.yaml
          - ../../bases/app
        patches:
          - target: {kind: Deployment, name: web}
            patch: |
              - op: replace
                path: /spec/replicas
                value: 3
    """,
    "overlays/prod/namespace.yaml": """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: web-prod
    """,
}


def kustomize_repo(parent: Path, name: str = "acme-kustomize") -> Path:
    """A kustomize overlay tree: ``bases/app`` and ``overlays/{dev,prod}``, committed."""
    root = parent / name
    _new_repo(root)
    write_tree(root, KUSTOMIZE_FILES)
    _commit_all(root, "our apps")
    return root


def _sync(cluster: str) -> str:
    return f"""
        ---
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: GitRepository
        metadata:
          name: flux-system
          namespace: flux-system
        spec:
          interval: 1m0s
          ref:
            branch: main
          secretRef:
            name: flux-system
          url: {FLUX_URL}
        ---
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata:
          name: flux-system
          namespace: flux-system
        spec:
          interval: 10m0s
          path: ./clusters/{cluster}
          prune: true
          sourceRef:
            kind: GitRepository
            name: flux-system
    """


def _infrastructure() -> str:
    return """
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata:
          name: infra-controllers
          namespace: flux-system
        spec:
          interval: 1h
          path: ./infrastructure/controllers
          prune: true
          wait: true
          sourceRef:
            kind: GitRepository
            name: flux-system
        ---
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata:
          name: infra-configs
          namespace: flux-system
        spec:
          dependsOn:
            - name: infra-controllers
          interval: 1h
          path: ./infrastructure/configs
          prune: true
          sourceRef:
            kind: GitRepository
            name: flux-system
    """


def _apps(env: str, replicas: int) -> str:
    return f"""
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata:
          name: apps
          namespace: flux-system
        spec:
          dependsOn:
            - name: infra-configs
          interval: 10m
          path: ./apps/{env}
          prune: true
          targetNamespace: podinfo
          commonMetadata:
            labels:
              app.kubernetes.io/part-of: podinfo
          components:
            - ../../components/monitoring
          images:
            - name: ghcr.io/stefanprodan/podinfo
              newTag: 6.7.1
          patches:
            - target: {{kind: Deployment, name: podinfo}}
              patch: |
                - op: replace
                  path: /spec/replicas
                  value: {replicas}
          postBuild:
            substitute:
              ENVIRONMENT: {env}
            substituteFrom:
              - kind: ConfigMap
                name: cluster-vars
              - kind: Secret
                name: cluster-secret-vars
                optional: true
          sourceRef:
            kind: GitRepository
            name: flux-system
    """


def _cluster_vars(cluster: str, region: str) -> str:
    return f"""
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: cluster-vars
          namespace: flux-system
        data:
          CLUSTER_NAME: {cluster}
          CLUSTER_REGION: {region}
    """


FLUX_COMMON = {
    # infrastructure/controllers: no kustomization.yaml: Flux generates one listing the YAML files
    "infrastructure/controllers/ingress-nginx.yaml": """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: ingress-nginx
        ---
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: HelmRepository
        metadata:
          name: ingress-nginx
          namespace: ingress-nginx
        spec:
          interval: 24h
          url: https://kubernetes.github.io/ingress-nginx
        ---
        apiVersion: helm.toolkit.fluxcd.io/v2
        kind: HelmRelease
        metadata:
          name: ingress-nginx
          namespace: ingress-nginx
        spec:
          interval: 30m
          chart:
            spec:
              chart: ingress-nginx
              version: "4.x"
              sourceRef:
                kind: HelmRepository
                name: ingress-nginx
    """,
    "infrastructure/controllers/README.md": "not YAML: Flux's generated kustomization leaves it out\n",
    "infrastructure/configs/kustomization.yaml": """
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        resources:
          - issuers.yaml
          - monitoring-oci.yaml
    """,
    "infrastructure/configs/issuers.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: cluster-issuer
          namespace: ingress-nginx
        data:
          email: ops@acme.example
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: backup-script
          namespace: ingress-nginx
          annotations:
            kustomize.toolkit.fluxcd.io/substitute: disabled
        data:
          backup.sh: |
            #!/bin/sh
            tar czf /backup/${HOSTNAME}.tgz /data
    """,
    "infrastructure/configs/monitoring-oci.yaml": """
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: OCIRepository
        metadata:
          name: monitoring
          namespace: flux-system
        spec:
          interval: 1h
          url: oci://ghcr.io/acme/manifests/monitoring
          ref:
            tag: "1.2.0"
        ---
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata:
          name: monitoring
          namespace: flux-system
        spec:
          interval: 1h
          path: ./
          prune: true
          sourceRef:
            kind: OCIRepository
            name: monitoring
    """,
    "apps/base/podinfo/kustomization.yaml": """
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        resources:
          - deployment.yaml
          - service.yaml
          - scripts.yaml
    """,
    "apps/base/podinfo/deployment.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: podinfo
          labels:
            env: ${ENVIRONMENT}
        spec:
          replicas: 1
          selector:
            matchLabels: {app: podinfo}
          template:
            metadata:
              labels: {app: podinfo}
            spec:
              containers:
                - name: podinfo
                  image: ghcr.io/stefanprodan/podinfo:6.5.0
                  env:
                    - name: REGION
                      value: ${CLUSTER_REGION}
                    - name: TIER
                      value: ${TIER:=web}
    """,
    "apps/base/podinfo/service.yaml": """
        apiVersion: v1
        kind: Service
        metadata:
          name: podinfo
        spec:
          selector: {app: podinfo}
          ports: [{port: 9898}]
    """,
    "apps/base/podinfo/scripts.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: podinfo-scripts
        data:
          start.sh: |
            #!/bin/sh
            echo "starting in $${HOME}"
    """,
    "components/monitoring/kustomization.yaml": """
        apiVersion: kustomize.config.k8s.io/v1alpha1
        kind: Component
        resources:
          - servicemonitor.yaml
    """,
    "components/monitoring/servicemonitor.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: podinfo-monitoring
        data:
          scrape: "true"
          cluster: ${CLUSTER_NAME}
    """,
}


def _env_overlay(env: str) -> dict[str, str]:
    return {
        f"apps/{env}/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources:
              - ../base/podinfo
        """,
    }


def flux_files(clusters: dict[str, tuple[str, str, int]] | None = None) -> dict[str, str]:
    """The Flux repo's files; ``clusters``: name -> (environment, region, replicas)."""
    clusters = clusters or {"staging": ("staging", "eu-west-1", 1), "production": ("production", "us-east-1", 3)}
    files = dict(FLUX_COMMON)
    for name, (env, region, replicas) in clusters.items():
        files.update({
            f"clusters/{name}/flux-system/gotk-sync.yaml": _sync(name),
            f"clusters/{name}/flux-system/kustomization.yaml": """
                apiVersion: kustomize.config.k8s.io/v1beta1
                kind: Kustomization
                resources:
                  - gotk-sync.yaml
            """,
            f"clusters/{name}/infrastructure.yaml": _infrastructure(),
            f"clusters/{name}/apps.yaml": _apps(env, replicas),
            f"clusters/{name}/cluster-vars.yaml": _cluster_vars(name, region),
        })
        files.update(_env_overlay(env))
    return files


def flux_repo(parent: Path, name: str = "fleet-infra", clusters: dict[str, tuple[str, str, int]] | None = None) -> Path:
    """A Flux repo like Flux's examples, committed; ``origin`` is its GitHub URL (never contacted)."""
    root = parent / name
    _new_repo(root)
    write_tree(root, flux_files(clusters))
    _commit_all(root, "flux repo")
    _git(root, "remote", "add", "origin", FLUX_URL)
    return root


# What the local clusters can run for real: source- and kustomize-controller only (no helm-controller, no
# OCI registry to reach), so the live tree keeps the layout and the Kustomizations' options but builds
# plain objects: a controller Deployment instead of a HelmRelease, no OCI source.
FLUX_LIVE_INFRA = {
    "infrastructure/controllers/ingress.yaml": """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: ingress
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: ingress-controller
          namespace: ingress
        spec:
          replicas: 1
          selector:
            matchLabels: {app: ingress-controller}
          template:
            metadata:
              labels: {app: ingress-controller}
            spec:
              containers:
                - name: controller
                  image: registry.k8s.io/ingress-nginx/controller:v1.11.0
    """,
    "infrastructure/controllers/README.md": "not YAML: Flux's generated kustomization leaves it out\n",
    "infrastructure/configs/kustomization.yaml": """
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        resources:
          - namespaces.yaml
          - issuers.yaml
    """,
    "infrastructure/configs/namespaces.yaml": """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: podinfo
    """,
    "infrastructure/configs/issuers.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: cluster-issuer
          namespace: ingress
        data:
          email: ops@acme.example
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: backup-script
          namespace: ingress
          annotations:
            kustomize.toolkit.fluxcd.io/substitute: disabled
        data:
          backup.sh: |
            #!/bin/sh
            tar czf /backup/${HOSTNAME}.tgz /data
    """,
}


def flux_live_files(cluster: str, env: str = "staging", region: str = "eu-west-1") -> dict[str, str]:
    """A Flux repo of one cluster directory ``clusters/<cluster>`` that Flux's own controllers can apply on a
    local cluster: flux bootstrap's sync objects, a ConfigMap of cluster variables, infra-controllers, then
    infra-configs (dependsOn), then apps (dependsOn; targetNamespace, patches, images, a component,
    commonMetadata, postBuild.substitute and substituteFrom the ConfigMap and an optional Secret)."""
    files = {k: v for k, v in FLUX_COMMON.items() if k.startswith(("apps/", "components/"))}
    files.update(FLUX_LIVE_INFRA)
    files.update({
        f"clusters/{cluster}/flux-system/gotk-sync.yaml": _sync(cluster),
        f"clusters/{cluster}/flux-system/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources:
              - gotk-sync.yaml
        """,
        f"clusters/{cluster}/infrastructure.yaml": _infrastructure(),
        f"clusters/{cluster}/apps.yaml": _apps(env, 2),
        f"clusters/{cluster}/cluster-vars.yaml": _cluster_vars(cluster, region),
    })
    files.update(_env_overlay(env))
    return files


# A repo laid out like Flux's flagship example (fluxcd/flux2-kustomize-helm-example, 2025 onwards): each
# cluster directory holds an ArtifactGenerator that cuts the one repo into two ExternalArtifacts,
# "infrastructure" (infrastructure/** at the artifact's root) and "apps" (apps/base/** under base/ and
# apps/<env>/** under <env>/), and the Kustomizations build paths of those artifacts; apps and
# infrastructure are HelmReleases. Production also asks for an artifact made from an OCIRepository: that
# one is not the fleet repo and stays unresolved.
def _artifacts(env: str) -> str:
    return f"""
        apiVersion: source.extensions.fluxcd.io/v1beta1
        kind: ArtifactGenerator
        metadata:
          name: flux-system
          namespace: flux-system
        spec:
          sources:
            - alias: monorepo
              kind: GitRepository
              name: flux-system
          artifacts:
            - name: infrastructure
              originRevision: "@monorepo"
              copy:
                - from: "@monorepo/infrastructure/**"
                  to: "@artifact/"
                  exclude: ["*.md"]
            - name: apps
              originRevision: "@monorepo"
              copy:
                - from: "@monorepo/apps/base/**"
                  to: "@artifact/base/"
                - from: "@monorepo/apps/{env}/**"
                  to: "@artifact/{env}/"
    """


def _artifact_infrastructure(server: str) -> str:
    return f"""
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata:
          name: infra-controllers
          namespace: flux-system
        spec:
          interval: 1h
          sourceRef:
            kind: ExternalArtifact
            name: infrastructure
          path: ./controllers
          prune: true
          wait: true
        ---
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata:
          name: infra-configs
          namespace: flux-system
        spec:
          dependsOn:
            - name: infra-controllers
          interval: 1h
          sourceRef:
            kind: ExternalArtifact
            name: infrastructure
          path: ./configs
          prune: true
          patches:
            - patch: |
                - op: replace
                  path: /spec/acme/server
                  value: {server}
              target:
                kind: ClusterIssuer
                name: letsencrypt
    """


def _artifact_apps(env: str) -> str:
    return f"""
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata:
          name: apps
          namespace: flux-system
        spec:
          dependsOn:
            - name: infra-configs
          interval: 1h
          sourceRef:
            kind: ExternalArtifact
            name: apps
          path: ./{env}
          prune: true
          wait: true
    """


_MONITORING = """
    apiVersion: source.toolkit.fluxcd.io/v1
    kind: OCIRepository
    metadata:
      name: monitoring-manifests
      namespace: flux-system
    spec:
      interval: 1h
      url: oci://ghcr.io/acme/manifests/monitoring
      ref:
        tag: "2.0.0"
    ---
    apiVersion: source.extensions.fluxcd.io/v1beta1
    kind: ArtifactGenerator
    metadata:
      name: monitoring
      namespace: flux-system
    spec:
      sources:
        - alias: oci
          kind: OCIRepository
          name: monitoring-manifests
      artifacts:
        - name: monitoring
          copy:
            - from: "@oci/**"
              to: "@artifact/"
    ---
    apiVersion: kustomize.toolkit.fluxcd.io/v1
    kind: Kustomization
    metadata:
      name: monitoring
      namespace: flux-system
    spec:
      interval: 1h
      sourceRef:
        kind: ExternalArtifact
        name: monitoring
      path: ./
      prune: true
"""

FLUX_ARTIFACT_COMMON = {
    ".sourceignore": """
        # what source-controller archives: the manifest directories only
        /*
        !/apps/
        !/clusters/
        !/infrastructure/
    """,
    "docs/runbook.md": "# runbook\n",
    "infrastructure/controllers/kustomization.yaml": """
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        resources:
          - cert-manager.yaml
    """,
    "infrastructure/controllers/README.md": "left out of the artifact (exclude: *.md)\n",
    "infrastructure/controllers/cert-manager.yaml": """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: cert-manager
        ---
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: OCIRepository
        metadata:
          name: cert-manager
          namespace: cert-manager
        spec:
          interval: 24h  # a .invalid host never resolves: no test reaches the network
          url: oci://registry.example.invalid/jetstack/charts/cert-manager
          ref:
            semver: "1.x"
        ---
        apiVersion: helm.toolkit.fluxcd.io/v2
        kind: HelmRelease
        metadata:
          name: cert-manager
          namespace: cert-manager
        spec:
          interval: 12h
          chartRef:
            kind: OCIRepository
            name: cert-manager
          values:
            crds:
              enabled: true
    """,
    "infrastructure/configs/kustomization.yaml": """
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        resources:
          - cluster-issuers.yaml
    """,
    "infrastructure/configs/cluster-issuers.yaml": """
        apiVersion: cert-manager.io/v1
        kind: ClusterIssuer
        metadata:
          name: letsencrypt
        spec:
          acme:
            email: ops@acme.example
            server: https://acme-staging-v02.api.letsencrypt.org/directory
            privateKeySecretRef:
              name: letsencrypt
    """,
    "apps/base/podinfo/kustomization.yaml": """
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        namespace: podinfo
        resources:
          - namespace.yaml
          - repository.yaml
          - release.yaml
    """,
    "apps/base/podinfo/namespace.yaml": """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: podinfo
    """,
    "apps/base/podinfo/repository.yaml": """
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: HelmRepository
        metadata:
          name: podinfo
          namespace: podinfo
        spec:
          interval: 5m
          url: https://stefanprodan.github.io/podinfo
    """,
    "apps/base/podinfo/release.yaml": """
        apiVersion: helm.toolkit.fluxcd.io/v2
        kind: HelmRelease
        metadata:
          name: podinfo
          namespace: podinfo
        spec:
          interval: 50m
          releaseName: podinfo
          chart:
            spec:
              chart: podinfo
              sourceRef:
                kind: HelmRepository
                name: podinfo
          values:
            replicaCount: 1
    """,
}


def _artifact_env(env: str, replicas: int) -> dict[str, str]:
    return {
        f"apps/{env}/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources:
              - ../base/podinfo
            patches:
              - path: podinfo-values.yaml
                target:
                  kind: HelmRelease
        """,
        f"apps/{env}/podinfo-values.yaml": f"""
            apiVersion: helm.toolkit.fluxcd.io/v2
            kind: HelmRelease
            metadata:
              name: podinfo
              namespace: podinfo
            spec:
              values:
                replicaCount: {replicas}
                hostname: podinfo.{env}
        """,
    }


def flux_artifact_files() -> dict[str, str]:
    """The files of :func:`flux_artifact_repo`."""
    files = dict(FLUX_ARTIFACT_COMMON)
    servers = {"staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
               "production": "https://acme-v02.api.letsencrypt.org/directory"}
    for env, replicas in (("staging", 1), ("production", 3)):
        files.update({
            f"clusters/{env}/flux-system/gotk-sync.yaml": _sync(env),
            f"clusters/{env}/flux-system/kustomization.yaml": """
                apiVersion: kustomize.config.k8s.io/v1beta1
                kind: Kustomization
                resources:
                  - gotk-sync.yaml
            """,
            f"clusters/{env}/artifacts.yaml": _artifacts(env),
            f"clusters/{env}/infrastructure.yaml": _artifact_infrastructure(servers[env]),
            f"clusters/{env}/apps.yaml": _artifact_apps(env),
        })
        files.update(_artifact_env(env, replicas))
    files["clusters/production/monitoring.yaml"] = _MONITORING
    return files


def flux_artifact_repo(parent: Path, name: str = "flux-artifacts") -> Path:
    """A Flux repo like Flux's flagship example (ArtifactGenerator + ExternalArtifacts), committed."""
    root = parent / name
    _new_repo(root)
    write_tree(root, flux_artifact_files())
    _commit_all(root, "flux repo with artifacts")
    _git(root, "remote", "add", "origin", FLUX_URL)
    return root
