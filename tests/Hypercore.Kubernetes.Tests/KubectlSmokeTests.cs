using Hypercore.Kubernetes.TestServer;
using Hypercore.Kubernetes.Tests.Support;

namespace Hypercore.Kubernetes.Tests;

public class KubectlSmokeTests
{
    [Test]
    public async Task Smoke()
    {
        var opts = new FakeKubeApiServerOptions();
        opts.CrdFiles.Add(Repo.CrdFile);
        await using var server = await FakeKubeApiServer.StartAsync(opts);
        var dir = Directory.CreateTempSubdirectory("hc-kubectl-");
        try
        {
            var k = new Kubectl(server.WriteKubeconfig(Path.Combine(dir.FullName, "kubeconfig")), Path.Combine(dir.FullName, "cache"));
            foreach (var args in new[]
            {
                new[] { "apply", "-f", Repo.Path_("deploy", "samples", "microvm.yaml"), "-v=7" },
                new[] { "get", "mvm" },
                new[] { "apply", "-f", Repo.Path_("deploy", "samples", "microvm.yaml"), "-v=7" },
                new[] { "patch", "mvm", "hello", "--type=merge", "-p", "{\"spec\":{\"state\":\"Paused\"}}", "-v=7" },
                new[] { "get", "mvm", "hello", "-o", "yaml" },
                new[] { "delete", "mvm", "hello", "--wait=false", "-v=7" },
            })
            {
                var r = await k.RunAsync(args);
                TestContext.Out.WriteLine($"$ kubectl {string.Join(' ', args)}\n{r}");
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
