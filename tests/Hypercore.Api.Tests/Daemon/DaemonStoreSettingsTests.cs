using System.Diagnostics;
using System.Runtime.Versioning;
using Hypercore.Testing;
using Hypercore.Daemon.Cli;
using Hypercore.Daemon.Configuration;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// <c>--store sqlite|kubernetes</c>, <c>--kubeconfig</c> and <c>--kube-namespace</c>: bad values exit 2 naming the
/// setting before any store is opened, and the DaemonSet in the chart and in deploy/ passes only flags the daemon has.
/// </summary>
[SupportedOSPlatform("linux")]
[NonParallelizable]
public sealed class DaemonStoreSettingsTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    private DirectoryInfo _dir = null!;

    private string StateDir => Path.Combine(_dir.FullName, "state");

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-store-settings-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    /// <summary>A kubeconfig that loads; nothing listens at its server, and nothing here gets far enough to call it.</summary>
    private string WriteKubeconfig()
    {
        var path = Path.Combine(_dir.FullName, "kubeconfig");
        File.WriteAllText(path, """
            apiVersion: v1
            kind: Config
            clusters:
            - name: test
              cluster:
                server: http://127.0.0.1:1
            users:
            - name: test
              user:
                token: test-token
            contexts:
            - name: test
              context:
                cluster: test
                user: test
                namespace: default
            current-context: test
            """);
        return path;
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunCliAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await DaemonCli.RunAsync(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Test]
    public void Toml_StoreKeys_MapToConfigurationKeys()
    {
        var values = TomlSettingsFile.Parse("""
            store = "kubernetes"
            kubeconfig = "/etc/hypercore/kubeconfig"
            kube-namespace = "vms"
            """, "test.toml");

        values.Should().BeEquivalentTo(new Dictionary<string, string?>
        {
            ["Daemon:Store"] = "kubernetes",
            ["Daemon:Kubeconfig"] = "/etc/hypercore/kubeconfig",
            ["Daemon:KubeNamespace"] = "vms",
        });
    }

    [Test]
    public void Options_Default_IsTheSqliteStoreWithoutKubernetesSettings()
    {
        var o = new DaemonOptions();

        o.Store.Should().Be("sqlite");
        o.Kubeconfig.Should().BeEmpty();
        o.KubeNamespace.Should().BeEmpty();
    }

    [Test]
    public async Task Cli_UnknownStore_ExitsWith2NamingStoreBeforeOpeningAnything()
    {
        var (code, stdout, stderr) = await RunCliAsync("run", "--state-dir", StateDir, "--store", "etcd");

        code.Should().Be(2);
        stderr.Should().Contain("store: \"etcd\" is not one of sqlite, kubernetes");
        stdout.Should().BeEmpty();
        File.Exists(Path.Combine(StateDir, "hypercore.db")).Should().BeFalse("no store is opened on a bad setting");
    }

    [Test]
    public async Task Cli_KubernetesStoreWithMissingKubeconfig_ExitsWith2NamingKubeconfig()
    {
        var missing = Path.Combine(_dir.FullName, "no-such-kubeconfig");

        var (code, stdout, stderr) = await RunCliAsync("run", "--state-dir", StateDir, "--store", "kubernetes", "--kubeconfig", missing);

        code.Should().Be(2);
        stderr.Should().Contain($"kubeconfig: {missing} does not exist");
        stdout.Should().BeEmpty();
    }

    [Test]
    public async Task Cli_KubernetesStoreWithUnparsableKubeconfig_ExitsWith2NamingKubeconfig()
    {
        var broken = Path.Combine(_dir.FullName, "broken");
        await File.WriteAllTextAsync(broken, "clusters: [\n");

        var (code, _, stderr) = await RunCliAsync("run", "--state-dir", StateDir, "--store", "kubernetes", "--kubeconfig", broken);

        code.Should().Be(2);
        stderr.Should().Contain($"kubeconfig: {broken}: ");
    }

    [Test]
    public async Task Cli_KubernetesStoreWithBadNamespaceAndNodeName_NamesBoth()
    {
        var (code, _, stderr) = await RunCliAsync(
            "run", "--state-dir", StateDir, "--store", "kubernetes", "--kubeconfig", WriteKubeconfig(),
            "--kube-namespace", "Not_A_Namespace", "--node-name", new string('n', 64));

        code.Should().Be(2);
        stderr.Should().Contain("kube-namespace: \"Not_A_Namespace\" is not a namespace name");
        stderr.Should().Contain("node-name: \"nnnn").And.Contain("must be a label value");
        stderr.Should().NotContain("kubeconfig:", "the kubeconfig itself is fine");
    }

    [Test]
    public async Task Cli_KubernetesSettingsWithSqliteStore_AreRefusedRatherThanIgnored()
    {
        var (code, _, stderr) = await RunCliAsync("run", "--state-dir", StateDir, "--kubeconfig", WriteKubeconfig(), "--kube-namespace", "vms");

        code.Should().Be(2);
        stderr.Should().Contain("kubeconfig: is only used with store = kubernetes (the store is sqlite)");
        stderr.Should().Contain("kube-namespace: is only used with store = kubernetes");
        File.Exists(Path.Combine(StateDir, "hypercore.db")).Should().BeFalse();
    }

    [Test]
    public async Task Cli_KubernetesStoreWithAGoodKubeconfig_PassesValidation()
    {
        // Another bad setting stops the daemon before it would contact the (absent) API server; only that one is reported.
        var (code, _, stderr) = await RunCliAsync(
            "run", "--state-dir", StateDir, "--store", "kubernetes", "--kubeconfig", WriteKubeconfig(), "--kube-namespace", "vms", "--qemu-accel", "hvf");

        code.Should().Be(2);
        stderr.Should().Contain("qemu-accel: \"hvf\"");
        stderr.Should().NotContainAny("store:", "kubeconfig:", "kube-namespace:", "Kubernetes:");
    }

    [Test]
    public async Task Run_KubernetesStoreWithNoKubeconfigAnywhere_ExitsWith2NamingKubeconfig()
    {
        var home = Directory.CreateDirectory(Path.Combine(_dir.FullName, "home")).FullName;

        var (code, stdout, stderr) = await RunDaemonWithEnvironmentAsync(
            new() { ["HOME"] = home, ["KUBECONFIG"] = null, ["KUBERNETES_SERVICE_HOST"] = null, ["KUBERNETES_SERVICE_PORT"] = null },
            "run", "--state-dir", StateDir, "--store", "kubernetes");

        code.Should().Be(2);
        stderr.Should().Contain("kubeconfig: not set, not running in a pod, and neither $KUBECONFIG nor ~/.kube/config names a file");
        stdout.Should().NotContain("vistarad ready");
    }

    [Test]
    public async Task Run_KubernetesStoreWithKubeconfigFromTheEnvironment_PassesValidation()
    {
        var home = Directory.CreateDirectory(Path.Combine(_dir.FullName, "home")).FullName;

        var (code, _, stderr) = await RunDaemonWithEnvironmentAsync(
            new() { ["HOME"] = home, ["KUBECONFIG"] = WriteKubeconfig(), ["KUBERNETES_SERVICE_HOST"] = null },
            "run", "--state-dir", StateDir, "--store", "kubernetes", "--qemu-accel", "hvf");

        code.Should().Be(2);
        stderr.Should().Contain("qemu-accel: \"hvf\"");
        stderr.Should().NotContain("kubeconfig:", "$KUBECONFIG is used when --kubeconfig is not given");
    }

    [Test]
    public async Task Run_AnyAddressEndpoints_WithInsecure_Serve()
    {
        // Without TLS and credentials an address other machines can reach is refused (ExposureHostileTests); --insecure allows it.
        await using var daemon = DaemonProcess.Start(
            DaemonProcessTests.Vistarad, "run", "--state-dir", StateDir, "--grpc-endpoint", "0.0.0.0:0", "--http-endpoint", "0.0.0.0:0", "--qemu-accel", "tcg", "--insecure");

        var (grpc, http) = await daemon.WaitReadyAsync(Patience);
        using var client = new HttpClient { BaseAddress = new Uri(http.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal)) };
        var json = await client.GetStringAsync("/v1/microvms");
        daemon.Signal("TERM");
        var code = await daemon.WaitForExitAsync(Patience);

        grpc.Should().MatchRegex(@"^http://0\.0\.0\.0:[1-9]\d*$");
        json.Should().StartWith("{");
        code.Should().Be(0, daemon.Stderr);
    }

    /// <summary>
    /// The args of the DaemonSet (chart template rendered with the chart's default values, and deploy/daemonset.yaml)
    /// are accepted by the daemon's own parser and validator: with a kubeconfig that does not exist, that is the only
    /// complaint. So every flag exists and the node-address https endpoints, TLS files, node name and state dir are valid
    /// (in particular: the daemon would not refuse them as a non-loopback bind without TLS and credentials).
    /// </summary>
    [TestCase("charts/hypercore/templates/daemonset.yaml")]
    [TestCase("deploy/daemonset.yaml")]
    public async Task DaemonSetArgs_AreAcceptedByTheDaemon(string manifest)
    {
        // The Secret the pod mounts at /etc/hypercore/tls: a server certificate and the CA of client certificates.
        var pki = TestPki.Create(Path.Combine(_dir.FullName, "tls"));
        var (cert, key) = pki.Server();
        var args = DaemonSetArgs(Path.Combine(GuestImage.RepoRoot(), manifest))
            .Select(a => a
                .Replace("$(NODE_NAME)", "node-1", StringComparison.Ordinal) // the kubelet expands it from the pod's spec.nodeName
                .Replace("$(HOST_IP)", "127.0.0.1", StringComparison.Ordinal) switch // ... and this from status.hostIP
            {
                "/var/lib/hypercore" => StateDir, // the validator creates and probes the state dir: not the machine's own
                "/etc/hypercore/tls/tls.crt" => cert,
                "/etc/hypercore/tls/tls.key" => key,
                "/etc/hypercore/tls/ca.crt" => pki.CaPath,
                var other => other,
            })
            .ToList();
        args.Should().StartWith(["run", "--store", "kubernetes"]);
        args.Should().Contain(["--grpc-endpoint", "https://127.0.0.1:9090"]).And.Contain(["--http-endpoint", "https://127.0.0.1:9091"]);
        args.Should().Contain(["--tls-cert", cert]).And.Contain(["--tls-client-ca", pki.CaPath]).And.NotContain("--insecure");
        var missing = Path.Combine(_dir.FullName, "not-mounted");

        var (code, stdout, stderr) = await RunCliAsync([.. args, "--kubeconfig", missing]);

        code.Should().Be(2);
        var problems = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        problems.Should().NotBeEmpty().And.OnlyContain(p => p.Contains("ubeconfig", StringComparison.Ordinal), "only the kubeconfig is wrong: " + stderr);
        stdout.Should().BeEmpty();
    }

    /// <summary>The container's args list, with the chart's template expressions replaced by the chart's default values.</summary>
    private static List<string> DaemonSetArgs(string path)
    {
        var values = new Dictionary<string, string>
        {
            ["{{ .Values.daemon.stateDir | quote }}"] = "/var/lib/hypercore",
            ["{{ .Values.daemon.grpcPort }}"] = "9090",
            ["{{ .Values.daemon.httpPort }}"] = "9091",
            ["{{ .Values.daemon.logLevel | quote }}"] = "Information",
        };
        var lines = File.ReadAllLines(path);
        var start = Array.FindIndex(lines, l => l.Trim() == "args:");
        start.Should().BePositive($"{path} has an args list");
        var indent = lines[start].IndexOf('a', StringComparison.Ordinal);
        var args = new List<string>();
        var skipping = false;
        foreach (var line in lines.Skip(start + 1).TakeWhile(l => l.Trim().StartsWith("- ", StringComparison.Ordinal) || l.Trim().StartsWith("{{-", StringComparison.Ordinal)))
        {
            var text = line.Trim();
            if (text.StartsWith("{{- if .Values.tls.allowedHosts", StringComparison.Ordinal))
            {
                skipping = true; // allowedHosts is empty by default
                continue;
            }

            if (skipping)
            {
                skipping = text != "{{- end }}";
                continue;
            }

            if (text.StartsWith("{{- range .Values.daemon.extraArgs", StringComparison.Ordinal) || text is "{{- end }}" or "- {{ . | quote }}")
            {
                continue; // extraArgs is empty by default
            }

            line.IndexOf('-', StringComparison.Ordinal).Should().BeGreaterThanOrEqualTo(indent, "an arg is an item of the args list");
            var arg = text[2..];
            foreach (var (expr, value) in values)
            {
                arg = arg.Replace(expr, value, StringComparison.Ordinal);
            }

            arg.Should().NotContain("{{", $"every template expression in the args of {path} is known to this test");
            args.Add(arg.Trim('"'));
        }

        return args;
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunDaemonWithEnvironmentAsync(Dictionary<string, string?> environment, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(DaemonProcessTests.Vistarad);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (name, value) in environment)
        {
            if (value is null)
            {
                info.Environment.Remove(name);
            }
            else
            {
                info.Environment[name] = value;
            }
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(Patience);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            Assert.Fail($"vistarad did not exit within {Patience}: {await stderr}");
        }

        return (process.ExitCode, await stdout, await stderr);
    }
}
