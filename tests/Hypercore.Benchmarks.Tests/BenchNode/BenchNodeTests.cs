using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using Hypercore.BenchNode;
using Hypercore.Benchmarks.Api;
using Hypercore.Benchmarks.Runner;
using Hypercore.Drivers;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Benchmarks.Tests.BenchNode;

/// <summary>
/// hypercore-bench-node (bench/Hypercore.BenchNode) stands for vistarad under goal 2's Running load, so it must be vistarad
/// but for its driver: the same composition with a no-op driver in place of the hypervisors, the same runtime, GC and
/// Native AOT settings, and it must say what it is. And the runner's api-node child must run against it end to end.
/// </summary>
public class BenchNodeTests
{
    private string _scratch = null!;

    [SetUp]
    public void SetUp() => _scratch = Directory.CreateTempSubdirectory("hcb-node-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_scratch, recursive: true);

    private Dictionary<string, string?> Settings() => new()
    {
        ["Daemon:StateDirectory"] = Path.Combine(_scratch, "state"),
        ["Daemon:GrpcEndpoint"] = "127.0.0.1:0",
        ["Daemon:HttpEndpoint"] = "127.0.0.1:0",
    };

    [Test]
    public void Composition_DiffersFromTheDaemonsOnlyInTheDrivers()
    {
        var daemon = BenchNodeHost.Compose(Settings(), noOpDriver: false);
        var node = BenchNodeHost.Compose(Settings(), noOpDriver: true);

        static bool IsDriver(ServiceDescriptor d) => d.ServiceType == typeof(IHypervisorDriver);
        static string Describe(ServiceDescriptor d) =>
            $"{d.ServiceType} {d.Lifetime} key={d.ServiceKey} type={d.ImplementationType} instance={d.ImplementationInstance?.GetType()} factory={d.ImplementationFactory?.Method}";
        node.Where(d => !IsDriver(d)).Select(Describe).Should().Equal(daemon.Where(d => !IsDriver(d)).Select(Describe), "everything but the drivers is the daemon's composition");

        var drivers = node.Where(IsDriver).Select(d => d.ImplementationInstance).ToList();
        drivers.Should().AllSatisfy(d => d.Should().NotBeNull().And.Match(o => o.GetType().Name == "NoOpDriver" && o.GetType().Assembly == typeof(BenchNodeHost).Assembly),
            "every driver is the benchmark's no-op driver, none of the real ones");
        drivers.Cast<IHypervisorDriver>().Select(d => d.Name).Should().Equal(daemon.RegisteredProviders(), "one under each of the daemon's provider names");
        daemon.Where(IsDriver).Should().HaveCount(drivers.Count).And.NotContain(d => d.ImplementationInstance != null && d.ImplementationInstance.GetType().Name == "NoOpDriver");
    }

    [Test]
    public async Task Node_OnAStateDirectoryItDidNotMake_RefusesToStart()
    {
        // A real node's state: a database without the benchmark node's marker.
        var state = Directory.CreateDirectory(Path.Combine(_scratch, "node-state")).FullName;
        await File.WriteAllTextAsync(Path.Combine(state, "hypercore.db"), "");
        var start = new ProcessStartInfo(Built("bench", "Hypercore.BenchNode", "hypercore-bench-node"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        foreach (var arg in (string[])["run", "--state-dir", state, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0", "--socket", "none"])
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new AssertionException("the node did not refuse: it is still running a minute later");
        }

        process.ExitCode.Should().Be(2);
        (await stdout).Should().StartWith("hypercore-bench-node: benchmark node, no guest runs").And.NotContain("vistarad ready");
        (await stderr).Should().Contain("holds a database this benchmark node did not make");
        File.Exists(Path.Combine(state, BenchNodeHost.Marker)).Should().BeFalse();

        // And what else it refuses; a fresh directory, or one it marked, it takes.
        BenchNodeHost.Refusal(["run"]).Should().Contain("--state-dir is required");
        BenchNodeHost.Refusal(["run", "--state-dir", state, "--config", "x.toml"]).Should().Contain("no --config");
        BenchNodeHost.Refusal(["run", "--state-dir=" + state, "--store", "kubernetes"]).Should().Contain("only the SQLite store");
        var fresh = Path.Combine(_scratch, "fresh");
        BenchNodeHost.Refusal(["run", "--state-dir", fresh]).Should().BeNull();
        Directory.Exists(fresh).Should().BeFalse("the check writes nothing; the node marks the directory only when it runs");
        BenchNodeHost.Claim(fresh);
        File.Exists(Path.Combine(fresh, BenchNodeHost.Marker)).Should().BeTrue();
        await File.WriteAllTextAsync(Path.Combine(fresh, "hypercore.db"), "");
        BenchNodeHost.Refusal(["run", "--state-dir", fresh]).Should().BeNull("it made this one (its marker is there)");
    }

    [Test]
    public void JitBuild_HasTheDaemonsRuntimeConfig()
    {
        var node = DaemonRuntime.Properties(Built("bench", "Hypercore.BenchNode", "hypercore-bench-node.runtimeconfig.json"));
        var daemon = DaemonRuntime.Properties(Built("src", "Hypercore.Daemon", DaemonRuntime.ConfigFileName));

        node.Should().Equal(daemon);
    }

    /// <summary>
    /// The Native AOT publish reads the settings from MSBuild (ILC arguments, runtime knobs, GC and feature switches):
    /// both projects evaluated as the native publish evaluates them must agree on every one.
    /// </summary>
    [Test]
    public async Task NativeAotPublish_HasTheDaemonsRuntimeGcAndIlcSettings()
    {
        var node = EvaluateAsync(Path.Combine(RepoRoot(), "bench", "Hypercore.BenchNode", "Hypercore.BenchNode.csproj"));
        var daemon = EvaluateAsync(Path.Combine(RepoRoot(), "src", "Hypercore.Daemon", "Hypercore.Daemon.csproj"));

        var (n, d) = (await node, await daemon);

        n.Should().Equal(d);
        d["property:ServerGarbageCollection"].Should().Be("false");
        d["property:ConcurrentGarbageCollection"].Should().Be("true");
        d["property:EventSourceSupport"].Should().Be("false");
        d["property:IlcOrderFile"].Should().EndWith("vistarad.order");
        d.Keys.Should().Contain(k => k.StartsWith("IlcArg:--runtimeopt:GCGen0MaxBudget=", StringComparison.Ordinal));
    }

    [Test]
    public async Task ApiNodeChild_RunsTheRunningLoadAgainstTheJitNode_EndToEnd()
    {
        var nodeBinary = Built("bench", "Hypercore.BenchNode", "hypercore-bench-node");
        var start = new ProcessStartInfo("dotnet");
        foreach (var arg in (string[])[Built("bench", "Hypercore.Benchmarks", "Hypercore.Benchmarks.dll"), "--child", ApiNodeThroughput.ChildKind, "--child-size", "2",
            "--api-seconds", "0.3", "--work-dir", _scratch, "--bench-node", nodeBinary, "--qemu-bin", "/nonexistent/qemu-system-x86_64"])
        {
            start.ArgumentList.Add(arg);
        }

        var result = await RunAsync(start);

        result["count"].Should().BePositive();
        result["errors"].Should().Be(0);
        result["node_aot"].Should().Be(0, "the test runs the JIT build");
        result["node_runtime_differences"].Should().Be(0, "the node runs under vistarad's runtime settings");
        result["records_in_state"].Should().Be(result["count"] + result["warm_count"], "every Create reached Running: the no-op driver started it, no QEMU");
        result["cpu_us_per"].Should().BePositive();
        result.Should().ContainKey("daemon_alloc_kb_per");
    }

    private static async Task<Dictionary<string, string>> EvaluateAsync(string project)
    {
        string[] properties = ["ServerGarbageCollection", "ConcurrentGarbageCollection", "EventSourceSupport", "IlcOrderFile", "InvariantGlobalization",
            "TieredCompilation", "TieredPGO", "OptimizationPreference", "IlcOptimizationPreference", "IlcInstructionSet", "UseSystemResourceKeys",
            "StackTraceSupport", "DebuggerSupport", "MetricsSupport", "TrimMode", "IlcGenerateStackTraceData", "IlcFoldIdenticalMethodBodies",
            "AutoreleasePoolSupport", "HttpActivityPropagationSupport", "SatelliteResourceLanguages", "PredefinedCulturesOnly", "ThreadPoolMinThreads",
            "ThreadPoolMaxThreads", "RetainVMGarbageCollection", "ConcurrentGarbageCollection", "TieredCompilationQuickJitForLoops"];
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])["msbuild", project, "-p:PublishAot=true", "-p:RuntimeIdentifier=linux-x64", "-p:Configuration=Release",
            "-getItem:IlcArg", "-getItem:RuntimeHostConfigurationOption", .. properties.Distinct().Select(p => "-getProperty:" + p)])
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        process.ExitCode.Should().Be(0, await stderr + await stdout);
        using var json = JsonDocument.Parse(await stdout);
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in json.RootElement.GetProperty("Properties").EnumerateObject())
        {
            values["property:" + p.Name] = p.Value.GetString()!;
        }

        foreach (var item in json.RootElement.GetProperty("Items").EnumerateObject())
        {
            foreach (var i in item.Value.EnumerateArray())
            {
                values[$"{item.Name}:{i.GetProperty("Identity").GetString()}"] = i.TryGetProperty("Value", out var v) ? v.GetString()! : "";
            }
        }

        return values;
    }

    private static async Task<Dictionary<string, double>> RunAsync(ProcessStartInfo start)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new AssertionException($"the child did not finish within 5 minutes: {await stderr}");
        }

        process.ExitCode.Should().Be(0, await stderr);
        var line = (await stdout).Split('\n').Single(l => l.StartsWith(ChildRun.Prefix, StringComparison.Ordinal));
        return JsonSerializer.Deserialize<Dictionary<string, double>>(line[ChildRun.Prefix.Length..])!;
    }

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "HypercoreController.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    private static string Built(string folder, string project, string file)
    {
        var configuration = typeof(BenchNodeTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        var path = Path.Combine(RepoRoot(), folder, project, "bin", configuration, "net10.0", file);
        File.Exists(path).Should().BeTrue($"{project} is built with the tests ({path})");
        return path;
    }
}
