"""The cloud cluster components under Pulumi's mocks: what they create, with which settings.

Their plugins (pulumi-resource-aws/eks/gcp/azure-native) cannot be built here, so the real engine
never runs them on fleet's machines; these tests pin the resources and arguments they register.
"""

from __future__ import annotations

import json

import pytest
from pulumi_mocks import AKS_KUBECONFIG, resolve, set_stack_config, spec, stack_config, use_mocks

from fleet.errors import ConfigError, ToolMissing


def test_eks_creates_a_regional_provider_and_an_eks_cluster_with_the_node_settings() -> None:
    pytest.importorskip("pulumi_eks", reason="fleet[aws] (pulumi-eks, pulumi-aws) is not installed")
    from clusters.providers import eks

    rec = use_mocks()
    c = eks.EksCluster(
        spec(
            "eu-1",
            "eks",
            settings={
                "region": "eu-west-1",
                "nodes": 3,
                "maxNodes": 5,
                "instanceType": "m6i.large",
                "kubeVersion": "v1.31",
            },
        )
    )
    kubeconfig = resolve(c.kubeconfig)

    provider = rec.one("pulumi:providers:aws")
    assert provider.inputs["region"] == "eu-west-1"
    cluster = rec.one("eks:index:Cluster")
    assert cluster.inputs["name"] == "eu-1"
    assert cluster.inputs["desiredCapacity"] == 3
    assert cluster.inputs["minSize"] == 3 and cluster.inputs["maxSize"] == 5
    assert cluster.inputs["instanceType"] == "m6i.large"
    assert cluster.inputs["version"] == "1.31"
    assert cluster.inputs["tags"]["fleet.dev/cluster"] == "eu-1"
    assert json.loads(kubeconfig)["clusters"][0]["name"] == "eu-1"


def test_eks_kubeconfig_is_a_secret() -> None:
    pytest.importorskip("pulumi_eks", reason="fleet[aws] (pulumi-eks, pulumi-aws) is not installed")
    import pulumi

    from clusters.providers import eks

    use_mocks()
    c = eks.EksCluster(spec("eu-1", "eks", region="eu-west-1"))
    assert resolve(pulumi.Output.is_secret(c.kubeconfig)) is True


def test_eks_needs_a_region_and_consistent_node_bounds() -> None:
    from clusters.providers import eks

    with pytest.raises(ConfigError, match=r"clusters/eu-1\.yaml: settings\.region: the eks provider needs"):
        eks.check(spec("eu-1", "eks"))
    eks.check(spec("eu-1", "eks", region="eu-west-1"))  # the entry's own region is enough
    with pytest.raises(ConfigError, match=r"settings\.nodes: nodes must lie between minNodes and maxNodes"):
        eks.check(spec("eu-1", "eks", region="eu-west-1", settings={"nodes": 2, "minNodes": 3}))
    with pytest.raises(ConfigError, match=r"settings\.subnetIds: vpcId and subnetIds go together"):
        eks.check(spec("eu-1", "eks", region="eu-west-1", settings={"vpcId": "vpc-1"}))


def test_gke_creates_a_cluster_without_default_pool_a_node_pool_and_an_exec_kubeconfig() -> None:
    pytest.importorskip("pulumi_gcp", reason="fleet[gcp] (pulumi-gcp) is not installed")
    import yaml

    from clusters.providers import gke

    rec = use_mocks()
    c = gke.GkeCluster(
        spec(
            "us-1",
            "gke",
            settings={
                "project": "acme-prod",
                "region": "us-central1",
                "nodes": 4,
                "machineType": "e2-standard-8",
            },
        )
    )
    kubeconfig = yaml.safe_load(resolve(c.kubeconfig))

    assert rec.one("pulumi:providers:gcp").inputs["project"] == "acme-prod"
    cluster = rec.one("gcp:container/cluster:Cluster")
    assert cluster.inputs["project"] == "acme-prod"
    assert cluster.inputs["location"] == "us-central1"
    assert cluster.inputs["removeDefaultNodePool"] is True
    assert cluster.inputs["deletionProtection"] is False  # so `fleet destroy` can delete it
    pool = rec.one("gcp:container/nodePool:NodePool")
    assert pool.inputs["nodeCount"] == 4
    assert pool.inputs["nodeConfig"]["machineType"] == "e2-standard-8"
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://203.0.113.10"
    assert kubeconfig["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"


def test_gke_needs_a_project_and_a_region() -> None:
    from clusters.providers import gke

    with pytest.raises(ConfigError, match=r"clusters/us-1\.yaml: settings\.project: the gke provider needs"):
        gke.check(spec("us-1", "gke", region="us-central1"))
    with pytest.raises(ConfigError, match=r"settings\.region"):
        gke.check(spec("us-1", "gke", settings={"project": "p"}))
    with pytest.raises(ConfigError, match=r"settings\.nodes: expected a whole number"):
        gke.check(spec("us-1", "gke", region="us-central1", settings={"project": "p", "nodes": "many"}))


def test_aks_creates_a_resource_group_and_a_managed_cluster_and_decodes_the_user_kubeconfig() -> None:
    pytest.importorskip("pulumi_azure_native", reason="fleet[azure] (pulumi-azure-native) is not installed")
    from clusters.providers import aks

    rec = use_mocks()
    c = aks.AksCluster(
        spec(
            "we-1",
            "aks",
            settings={
                "region": "westeurope",
                "nodes": 3,
                "vmSize": "Standard_D8s_v5",
                "kubeVersion": "1.31.2",
            },
        )
    )
    kubeconfig = resolve(c.kubeconfig)

    group = rec.one("azure-native:resources:ResourceGroup")
    assert group.inputs["resourceGroupName"] == "fleet-we-1"
    assert group.inputs["location"] == "westeurope"
    cluster = rec.one("azure-native:containerservice:ManagedCluster")
    assert cluster.inputs["resourceName"] == "we-1"
    assert cluster.inputs["kubernetesVersion"] == "1.31.2"
    pool = cluster.inputs["agentPoolProfiles"][0]
    assert (pool["count"], pool["vmSize"], pool["mode"]) == (3, "Standard_D8s_v5", "System")
    assert cluster.inputs["identity"]["type"] == "SystemAssigned"
    _token, args = next(c for c in rec.calls if c[0].endswith("listManagedClusterUserCredentials"))
    assert args["resourceGroupName"] == "fleet-we-1"
    assert kubeconfig == AKS_KUBECONFIG


def test_aks_uses_an_existing_resource_group_when_named() -> None:
    pytest.importorskip("pulumi_azure_native", reason="fleet[azure] (pulumi-azure-native) is not installed")
    from clusters.providers import aks

    rec = use_mocks()
    c = aks.AksCluster(spec("we-1", "aks", region="westeurope", settings={"resourceGroup": "platform"}))
    resolve(c.kubeconfig)
    assert rec.of_type("azure-native:resources:ResourceGroup") == []
    assert rec.one("azure-native:containerservice:ManagedCluster").inputs["resourceGroupName"] == "platform"


def test_aks_needs_a_region() -> None:
    from clusters.providers import aks

    with pytest.raises(ConfigError, match=r"settings\.region: the aks provider needs this setting"):
        aks.check(spec("we-1", "aks"))


def test_a_missing_cloud_sdk_names_the_extra_to_install() -> None:
    from clusters.providers import require_module

    with pytest.raises(ToolMissing, match="needs the Python package pulumi-nonexistent") as e:
        require_module("gke", "pulumi_nonexistent")
    assert e.value.hint == 'pip install "fleet[gcp]"'
    assert e.value.exit_code == 2


def test_the_program_builds_the_cloud_cluster_from_the_stack_config() -> None:
    pytest.importorskip("pulumi_gcp", reason="fleet[gcp] (pulumi-gcp) is not installed")
    from clusters.program import run

    rec = use_mocks()
    cfg = stack_config(
        spec("us-1", "gke", region="us-central1", settings={"project": "p1"}), operator={"kind": "none"}
    )
    set_stack_config(cfg)

    @__import__("pulumi").runtime.test
    def _run() -> None:
        run()

    _run()
    assert [r.typ for r in rec.resources if r.typ.startswith("gcp:")] == [
        "gcp:container/cluster:Cluster",
        "gcp:container/nodePool:NodePool",
    ]
    assert not any(r.typ.startswith("pulumi-python:") for r in rec.resources)  # operator kind none
