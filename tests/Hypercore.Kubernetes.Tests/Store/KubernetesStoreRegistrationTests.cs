using Hypercore.Kubernetes.Tests.Support;
using Hypercore.MicroVms;
using Hypercore.Store;
using Hypercore.Store.Kubernetes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Hypercore.Kubernetes.Tests.Store;

/// <summary>AddKubernetesStore as the daemon uses it: options validated at start, the kubeconfig honoured.</summary>
public sealed class KubernetesStoreRegistrationTests
{
    [Test]
    public async Task AddKubernetesStore_WithKubeconfig_RegistersAWorkingStore()
    {
        await using var cluster = await FakeCluster.StartAsync();
        using var host = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings()).Also(b =>
            b.Services.AddKubernetesStore(o =>
            {
                o.Kubeconfig = cluster.KubeconfigPath;
                o.NodeName = "node-9";
            })).Build();
        await host.StartAsync();

        var store = host.Services.GetRequiredService<IMicroVmStore>();
        var created = await store.CreateAsync(new MicroVmSpec { Id = "vm-1", Kernel = new KernelSpec { Image = "/k" } });

        store.Name.Should().Be("kubernetes");
        store.Should().BeSameAs(host.Services.GetRequiredService<KubernetesMicroVmStore>());
        host.Services.GetRequiredService<Hypercore.Reconciliation.IMovedAwayLookup>().Should().BeSameAs(store,
            "issue 13: the reconciler host asks the store for MicroVMs moved off this node at start");
        (await store.ListAsync()).Should().ContainSingle().Which.Uid.Should().Be(created.Uid);
        cluster.Server.Requests.Should().Contain(r => r.Verb == "create" && r.Resource == "microvms");
        await host.StopAsync();
    }

    [TestCase("", "must not be empty")]
    [TestCase("node with spaces", "cannot be a label value")]
    public async Task AddKubernetesStore_BadNodeName_FailsAtStartNamingTheSetting(string node, string message)
    {
        using var host = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings())
            .Also(b => b.Services.AddKubernetesStore(o => o.NodeName = node)).Build();

        var act = () => host.StartAsync();

        await act.Should().ThrowAsync<OptionsValidationException>().WithMessage($"*Kubernetes:NodeName*{message}*");
    }

    [Test]
    public async Task AddKubernetesStore_MissingKubeconfigAndBadDurations_FailAtStart()
    {
        using var host = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings()).Also(b =>
            b.Services.AddKubernetesStore(o =>
            {
                o.NodeName = "n1";
                o.Kubeconfig = "/nonexistent/kubeconfig";
                o.ReconnectBaseDelay = TimeSpan.FromSeconds(60);
                o.ReconnectMaxDelay = TimeSpan.FromSeconds(1);
                o.MaxRetries = 50;
            })).Build();

        var act = () => host.StartAsync();

        var thrown = (await act.Should().ThrowAsync<OptionsValidationException>()).Which;
        thrown.Failures.Should().Contain(f => f.Contains("Kubernetes:Kubeconfig"))
            .And.Contain(f => f.Contains("Kubernetes:ReconnectBaseDelay"))
            .And.Contain(f => f.Contains("Kubernetes:MaxRetries"));
    }
}

internal static class BuilderExtensions
{
    public static HostApplicationBuilder Also(this HostApplicationBuilder builder, Action<HostApplicationBuilder> change)
    {
        change(builder);
        return builder;
    }
}
