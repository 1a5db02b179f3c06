using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Grpc.Net.Client;
using Hypercore.Contracts.VmApi;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.Store.Kubernetes;
using Hypercore.Testing;

namespace Hypercore.Kubernetes.Tests.EndToEnd;

/// <summary>
/// The whole node in Kubernetes mode: the real <c>vistarad</c> process with <c>--store kubernetes</c> against the fake
/// API server (serving the CRD from crds/), a real QEMU guest (TCG), and the real kubectl. What a user does with
/// kubectl becomes a guest that boots, pauses (QMP says so), resumes and is deleted with its files and finalizer;
/// gRPC writes MicroVM objects that kubectl sees; a SIGKILLed daemon's successor adopts the running guest.
/// </summary>
[NonParallelizable]
public sealed partial class DaemonOnKubernetesEndToEndTests
{
    private const string Node = "node-1";
    private const string Namespace = "default";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    private readonly List<DaemonProcess> _daemons = [];
    private DirectoryInfo? _dir;
    private FakeCluster? _cluster;
    private KubectlRunner _kubectl = null!;
    private string _image = null!;

    private string StateDir => Path.Combine(_dir!.FullName, "state");

    private FakeCluster Cluster => _cluster!;

    [SetUp]
    public async Task SetUp()
    {
        Assert.That(KubectlRunner.Available, $"{KubectlRunner.Binary} is required (Debian package kubernetes-client)");
        Assert.That(File.Exists(DaemonDll), $"the built daemon is expected at {DaemonDll}");
        _dir = Directory.CreateTempSubdirectory("hc-k8s-e2e-");
        _image = await GuestImage.EnsureAsync();
        _cluster = await FakeCluster.StartAsync();
        _kubectl = Cluster.Kubectl();
    }

    [TearDown]
    public async Task TearDown()
    {
        IReadOnlyList<Exception> faults = [];
        try
        {
            if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed)
            {
                for (var i = 0; i < _daemons.Count; i++)
                {
                    await TestContext.Progress.WriteLineAsync($"--- vistarad #{i + 1} stderr ---\n{_daemons[i].Stderr}");
                }
            }

            foreach (var daemon in _daemons)
            {
                await daemon.DisposeAsync();
            }
        }
        finally
        {
            try
            {
                // A failed test must not leave a guest behind on a shared machine: every process started under this
                // test's state directory (QEMU guests are daemonized, so they are not in the daemon's process tree).
                if (_dir is not null)
                {
                    await KillAllUnderAsync(_dir.FullName);
                }
            }
            finally
            {
                if (_cluster is not null)
                {
                    faults = _cluster.Server.Faults;
                    await _cluster.DisposeAsync();
                }

                _dir?.Delete(recursive: true);
            }
        }

        faults.Should().BeEmpty("the API server saw no faults");
    }

    [Test]
    public async Task Kubectl_ApplyPauseResumeDelete_DrivesARealQemuGuest()
    {
        var daemon = StartDaemon();
        var (grpc, _) = await daemon.WaitReadyAsync(Patience);

        var apply = await Run("apply", "-f", WriteSample("hello"));
        apply.Stdout.Should().Contain("microvm.hypercore.vistara.dev/hello created");

        var running = await WaitForPhaseAsync(daemon, "hello", "Running");
        var uid = (string)running["metadata"]!["uid"]!;
        var pid = (int)running["status"]!["pid"]!;
        var vmDir = Path.Combine(StateDir, "run", "qemu", uid);
        ProcessesMentioning(vmDir).Should().Equal([pid], "status.pid is the one QEMU running this VM");
        running["metadata"]!["finalizers"]!.AsArray().Select(f => (string?)f).Should().Contain(MicroVmResource.Finalizer);
        running["status"]!["node"]!.GetValue<string>().Should().Be(Node);
        var console = (string)running["status"]!["consoleLogPath"]!;
        console.Should().StartWith(vmDir + "/");
        await UntilAsync(() => File.Exists(console) && File.ReadAllText(console).Contains("HYPERCORE-GUEST-READY", StringComparison.Ordinal),
            $"the guest's HYPERCORE-GUEST-READY line in {console}", daemon);
        (await GetTableAsync()).Row("hello").Should().StartWith(["hello", "Running", "True", Node, "qemu", "1", "128"]);
        (await QmpQueryStatusAsync(vmDir))["status"]!.GetValue<string>().Should().Be("running");

        // gRPC reads the same object kubectl wrote.
        using (var channel = GrpcChannel.ForAddress(grpc))
        {
            var viaGrpc = (await new VMService.VMServiceClient(channel).GetAsync(new GetMicroVMRequest { Id = "hello", Namespace = Namespace })).Microvm;
            viaGrpc.Spec.Uid.Should().Be(uid);
            viaGrpc.Status.Phase.Should().Be("Running");
            viaGrpc.Status.Pid.Should().Be(pid);
        }

        var pause = await Run("patch", "mvm", "hello", "--type=merge", "-p", """{"spec":{"state":"Paused"}}""");
        pause.Stdout.Should().Contain("microvm.hypercore.vistara.dev/hello patched");
        var paused = await WaitForPhaseAsync(daemon, "hello", "Paused");
        var qmpPaused = await QmpQueryStatusAsync(vmDir);
        qmpPaused["status"]!.GetValue<string>().Should().Be("paused");
        qmpPaused["running"]!.GetValue<bool>().Should().BeFalse();
        (await GetTableAsync()).Row("hello")[1..3].Should().Equal("Paused", "False");
        ((int)paused["status"]!["pid"]!).Should().Be(pid);
        ((long)paused["status"]!["observedGeneration"]!).Should().Be((long)paused["metadata"]!["generation"]!);

        await Run("patch", "mvm", "hello", "--type=merge", "-p", """{"spec":{"state":"Running"}}""");
        var resumed = await WaitForPhaseAsync(daemon, "hello", "Running");
        (await QmpQueryStatusAsync(vmDir))["status"]!.GetValue<string>().Should().Be("running");
        ((int)resumed["status"]!["pid"]!).Should().Be(pid, "the guest is resumed, not restarted");
        (await GetTableAsync()).Row("hello")[1..3].Should().Equal("Running", "True");

        var delete = await Run("delete", "mvm", "hello", "--wait=false");
        delete.Stdout.Should().Contain("microvm.hypercore.vistara.dev \"hello\" deleted");
        await UntilAsync(() => Cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, Namespace, "hello") is null,
            "the daemon to stop the guest, clean up and remove the finalizer (the server keeps the object until then)", daemon);
        IsAlive(pid).Should().BeFalse("the guest process is gone");
        ProcessesMentioning(vmDir).Should().BeEmpty();
        Directory.Exists(vmDir).Should().BeFalse("the VM's runtime directory is removed");
        var gone = await _kubectl.RunAsync("get", "mvm", "hello");
        gone.ExitCode.Should().NotBe(0);
        gone.Stderr.Should().Contain("NotFound");
        Cluster.Server.List("", "events").Select(e => (string?)e["reason"]).Should().Contain(["Started", "Paused", "Resumed", "Deleted"]);
    }

    [Test]
    public async Task Grpc_Create_WritesAMicroVmThatKubectlSees()
    {
        // Hard links, not symlinks: the daemon refuses a kernel whose real path leaves the image directory.
        await global::Hypercore.Testing.GuestImage.InstallAsDefaultAsync(StateDir);
        var images = Path.Combine(StateDir, "images", "default");
        var daemon = StartDaemon();
        var (grpc, _) = await daemon.WaitReadyAsync(Patience);
        using var channel = GrpcChannel.ForAddress(grpc);
        var client = new VMService.VMServiceClient(channel);

        var created = await client.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec { Id = "web1", Namespace = Namespace, Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "default" } },
        });

        var json = JsonNode.Parse((await Run("get", "mvm", "web1", "-o", "json")).Stdout)!;
        ((string?)json["metadata"]!["uid"]).Should().Be(created.Microvm.Spec.Uid, "the uid gRPC returns is the object's");
        ((string?)json["metadata"]!["labels"]![MicroVmResource.NodeLabel]).Should().Be(Node, "a MicroVM created on a node's daemon is that node's");
        ((string?)json["spec"]!["kernel"]!["image"]).Should().Be(Path.Combine(images, "vmlinuz"), "the image name was resolved by the API");
        ((string?)json["spec"]!["initrd"]!["image"]).Should().Be(Path.Combine(images, "initrd.img"));

        var running = await WaitForPhaseAsync(daemon, "web1", "Running");
        var pid = (int)running["status"]!["pid"]!;
        (await GetTableAsync()).Row("web1").Should().StartWith(["web1", "Running", "True", Node, "qemu", "1", "128"]);

        await client.DeleteAsync(new DeleteMicroVMRequest { Id = "web1", Namespace = Namespace });
        await UntilAsync(async () => (await _kubectl.RunAsync("get", "mvm", "web1")).Stderr.Contains("NotFound", StringComparison.Ordinal),
            "kubectl to see the MicroVM deleted through gRPC gone", daemon);
        IsAlive(pid).Should().BeFalse();
    }

    [Test]
    public async Task DaemonRestart_AfterSigkill_AdoptsTheRunningGuest()
    {
        var first = StartDaemon();
        await first.WaitReadyAsync(Patience);
        await Run("apply", "-f", WriteSample("hello"));
        var running = await WaitForPhaseAsync(first, "hello", "Running");
        var pid = (int)running["status"]!["pid"]!;
        var vmDir = Path.Combine(StateDir, "run", "qemu", (string)running["metadata"]!["uid"]!);

        first.Signal("KILL");
        (await first.WaitForExitAsync(Patience)).Should().NotBe(0);
        IsAlive(pid).Should().BeTrue("the guest outlives its daemon");

        var second = StartDaemon();
        await second.WaitReadyAsync(Patience);
        await UntilAsync(() => second.Stderr.Contains($"{Namespace}/hello: adopted running qemu instance (pid {pid}", StringComparison.Ordinal),
            "the new daemon to adopt the guest", second);
        var adopted = await WaitForPhaseAsync(second, "hello", "Running");

        ((int)adopted["status"]!["pid"]!).Should().Be(pid, "the running QEMU is adopted, not restarted");
        ProcessesMentioning(vmDir).Should().Equal([pid], "no second QEMU was started for the VM");
        (await QmpQueryStatusAsync(vmDir))["status"]!.GetValue<string>().Should().Be("running");

        // The adopting daemon also owns the delete.
        await Run("delete", "mvm", "hello", "--wait=false");
        await UntilAsync(() => Cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, Namespace, "hello") is null,
            "the adopting daemon to delete the guest and remove the finalizer", second);
        IsAlive(pid).Should().BeFalse();
        Directory.Exists(vmDir).Should().BeFalse();
    }

    private static string DaemonDll => Path.Combine(AppContext.BaseDirectory, "vistarad.dll");

    private DaemonProcess StartDaemon()
    {
        var daemon = DaemonProcess.Start(
            DaemonDll, "run", "--store", "kubernetes", "--kubeconfig", Cluster.KubeconfigPath, "--node-name", Node, "--state-dir", StateDir,
            "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0", "--qemu-accel", "tcg",
            // The sample names the cached test image's kernel by absolute path: allowed on purpose, as a node would.
            "--kernel-roots", global::Hypercore.Testing.GuestImage.Cache);
        _daemons.Add(daemon);
        return daemon;
    }

    /// <summary>deploy/samples/microvm.yaml with the kernel and initrd of the test image, for node-1.</summary>
    private string WriteSample(string name)
    {
        var text = File.ReadAllText(Repo.Path_("deploy", "samples", "microvm.yaml"));
        text.Should().Contain("image: /var/lib/hypercore/images/default/vmlinuz").And.Contain("image: /var/lib/hypercore/images/default/initrd.img");
        text = text.Replace("/var/lib/hypercore/images/default/", _image + "/", StringComparison.Ordinal);
        text = NodeLabel().Replace(text, "hypercore.vistara.dev/node: " + Node);
        text = SampleName().Replace(text, "  name: " + name);
        var path = Path.Combine(Cluster.Directory.FullName, name + ".yaml");
        File.WriteAllText(path, text);
        return path;
    }

    [GeneratedRegex(@"hypercore\.vistara\.dev/node: \S+")]
    private static partial Regex NodeLabel();

    [GeneratedRegex(@"(?m)^  name: \S+")]
    private static partial Regex SampleName();

    private async Task<JsonObject> WaitForPhaseAsync(DaemonProcess daemon, string name, string phase)
    {
        JsonObject? last = null;
        await UntilAsync(
            () => (last = Cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, Namespace, name)) is { } o &&
                (string?)o["status"]?["phase"] == phase && (phase != "Running" || (int?)o["status"]?["pid"] > 0),
            () => $"{name}: status.phase {phase}; last status: {last?["status"]?.ToJsonString() ?? "(none)"}",
            daemon);
        return last!;
    }

    private static Task UntilAsync(Func<bool> condition, string what, DaemonProcess daemon) =>
        UntilAsync(() => Task.FromResult(condition()), () => what, daemon);

    private static Task UntilAsync(Func<Task<bool>> condition, string what, DaemonProcess daemon) =>
        UntilAsync(condition, () => what, daemon);

    private static Task UntilAsync(Func<bool> condition, Func<string> what, DaemonProcess daemon) =>
        UntilAsync(() => Task.FromResult(condition()), what, daemon);

    /// <summary>Polls until the condition holds; fails after <see cref="Patience"/> saying what and what the daemon logged.</summary>
    private static async Task UntilAsync(Func<Task<bool>> condition, Func<string> what, DaemonProcess daemon)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > Patience)
            {
                Assert.Fail($"timed out after {Patience.TotalSeconds:0} s waiting for {what()}\n--- vistarad stderr ---\n{daemon.Stderr}");
            }

            await Task.Delay(200);
        }
    }

    private async Task<KubectlResult> Run(params string[] args)
    {
        var r = await _kubectl.RunAsync(args);
        r.ExitCode.Should().Be(0, $"kubectl {string.Join(' ', args)}: {r}");
        return r;
    }

    private async Task<KubectlTable> GetTableAsync() => KubectlTable.Parse((await Run("get", "mvm")).Stdout);

    /// <summary>
    /// <c>query-status</c> on the guest's own QMP socket (<c>&lt;state&gt;/run/qemu/&lt;uid&gt;/qmp.sock</c>): what QEMU
    /// itself says, independent of the daemon. QEMU serves one QMP client at a time, so this waits its turn.
    /// </summary>
    private static async Task<JsonObject> QmpQueryStatusAsync(string vmDir)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(Path.Combine(vmDir, "qmp.sock")), cts.Token);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        using var reader = new StreamReader(stream, new UTF8Encoding(false));
        await using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };

        var greeting = JsonNode.Parse(await reader.ReadLineAsync(cts.Token) ?? throw new AssertionException("QMP closed before its greeting"))!;
        greeting["QMP"].Should().NotBeNull("QEMU greets with {\"QMP\": …}");
        await writer.WriteLineAsync("{\"execute\":\"qmp_capabilities\"}");
        await QmpReturnAsync(reader, cts.Token);
        await writer.WriteLineAsync("{\"execute\":\"query-status\"}");
        return (JsonObject)await QmpReturnAsync(reader, cts.Token);
    }

    /// <summary>The next reply's "return", skipping asynchronous events.</summary>
    private static async Task<JsonNode> QmpReturnAsync(StreamReader reader, CancellationToken ct)
    {
        while (true)
        {
            var line = await reader.ReadLineAsync(ct) ?? throw new AssertionException("QMP closed the connection");
            var message = JsonNode.Parse(line)!;
            if (message["error"] is { } error)
            {
                throw new AssertionException("QMP error: " + error.ToJsonString());
            }

            if (message["return"] is { } result)
            {
                return result;
            }
        }
    }

    /// <summary>A live process; a zombie (exited, not yet reaped by its parent) counts as gone.</summary>
    private static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Live processes whose command line mentions <paramref name="path"/>.</summary>
    private static List<int> ProcessesMentioning(string path)
    {
        var pids = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                if (File.ReadAllText(Path.Combine(dir, "cmdline")).Contains(path, StringComparison.Ordinal) && IsAlive(pid))
                {
                    pids.Add(pid);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // exited while we looked
            }
        }

        return pids;
    }

    /// <summary>
    /// Kills every process whose command line mentions <paramref name="path"/>, until none has been seen for a while:
    /// a QEMU that was daemonizing when its daemon was killed appears only after the daemon is gone.
    /// </summary>
    private static async Task KillAllUnderAsync(string path)
    {
        var clock = Stopwatch.StartNew();
        var quietSince = clock.Elapsed;
        while (clock.Elapsed - quietSince < TimeSpan.FromSeconds(2) && clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            var pids = ProcessesMentioning(path);
            if (pids.Count > 0)
            {
                foreach (var pid in pids)
                {
                    try
                    {
                        using var p = Process.GetProcessById(pid);
                        p.Kill();
                    }
                    catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
                    {
                        // already gone
                    }
                }

                quietSince = clock.Elapsed;
            }

            await Task.Delay(100);
        }
    }
}
