using System.Text;
using Hypercore.Benchmarks.Api;
using Hypercore.Benchmarks.Api.NativeLoadGenerator;
using Hypercore.Contracts.VmApi;
using Hypercore.Store;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Benchmarks.Tests.Api;

/// <summary>
/// The native load generator (issue 15, lg19: grpc-load.c on libnghttp2, compiled with cc on first use) against a real
/// server: the benchmark's in-process node (the daemon's API, SQLite store and reconciler with the no-op driver). Its
/// calls must be what the .NET one sends (the same Create, each with its own id), counted only when the server answers
/// them with status OK, and its failures counted as errors.
/// </summary>
[NonParallelizable]
public class NativeLoadGeneratorTests
{
    private string _scratch = null!;

    [SetUp]
    public void SetUp() => _scratch = Directory.CreateTempSubdirectory("hcb-native-lg-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_scratch, recursive: true);

    [Test]
    public void CreateRequest_IsTheDotnetOnesWithTheIdAtTheGivenOffset()
    {
        var (path, body, offset, expect) = NativeLoadGenerator.Request(LoadGenerator.CallCreate, "/k/vmlinuz", "c", "Stopped");

        path.Should().Be("/vm.services.api.VMService/Create");
        expect.Should().BeNull();
        offset.Should().NotBeNull();
        var id = "c-0007-1073741824";
        id.Length.Should().Be(NativeLoadGenerator.IdWidth("c"));
        Encoding.ASCII.GetBytes(id).CopyTo(body, offset!.Value);
        CreateMicroVMRequest.Parser.ParseFrom(body).Should().Be(LoadGenerator.CreateRequest(id, "/k/vmlinuz", "Stopped"));
    }

    [Test]
    public void HealthRequest_ExpectsServing()
    {
        var (path, body, offset, expect) = NativeLoadGenerator.Request(LoadGenerator.CallHealth, null, "health", null);

        path.Should().Be("/grpc.health.v1.Health/Check");
        body.Should().BeEmpty();
        offset.Should().BeNull();
        Grpc.Health.V1.HealthCheckResponse.Parser.ParseFrom(expect).Status.Should().Be(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving);
    }

    [Test]
    public async Task AnIdPlaceholderOfAnotherWidth_IsRefusedBeforeAnyCall()
    {
        // "c-0003-1073741824" is 17 bytes; a 16-byte placeholder would have the id overwrite the next field's tag.
        var start = new System.Diagnostics.ProcessStartInfo(NativeLoadGenerator.BinaryPath()) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in (string[])["--target", "http://127.0.0.1:9", "--path", "/x/Y", "--clients", "4", "--seconds", "1", "--prefix", "c",
            "--body-hex", "0A10" + Convert.ToHexString(Encoding.ASCII.GetBytes(new string('#', 16))) + "1205", "--id-offset", "2"])
        {
            start.ArgumentList.Add(arg);
        }

        using var process = System.Diagnostics.Process.Start(start)!;
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();

        process.ExitCode.Should().Be(2);
        stderr.Should().Contain("the id placeholder at --id-offset 2 is 16 bytes, the ids here are 17 (c-0003-1073741824)");
    }

    [Test]
    public async Task AgainstTheInProcessNode_EveryCountedCreateIsStoredWithItsOwnId_AndHealthChecksAreServed()
    {
        Environment.GetEnvironmentVariable(NativeLoadGenerator.SelectEnv).Should().BeNullOrEmpty("the native load generator is the default");
        await using var node = await InProcessNode.StartAsync(_scratch, reconciler: true, admission: true);
        var timeout = TimeSpan.FromMinutes(2);

        var (health, _, _) = await LoadGenerator.DriveAsync(node.GrpcAddress, LoadGenerator.CallHealth, 4, TimeSpan.FromSeconds(1), null, "health", timeout);
        health["client_native"].Should().Be(1);
        health["errors"].Should().Be(0);
        health["count"].Should().BeGreaterThan(10);
        health["p99_ms"].Should().BeGreaterThan(0).And.BeGreaterThanOrEqualTo(health["p50_ms"]);

        var (create, serverCpu, _) = await LoadGenerator.DriveAsync(node.GrpcAddress, LoadGenerator.CallCreate, 4, TimeSpan.FromSeconds(1), node.KernelPath, "c", timeout);
        create["client_native"].Should().Be(1);
        create["errors"].Should().Be(0);
        create["count"].Should().BeGreaterThan(10);
        serverCpu.Should().BePositive();

        var stored = await node.Services.GetRequiredService<IMicroVmStore>().ListAsync("bench");
        // Every answered Create is stored once, under an id of the native form (warm-up ids from index 0, the run's from 2^30).
        stored.Should().HaveCount((int)(create["count"] + create["warm_count"]));
        stored.Select(vm => vm.Spec.Id).Should().OnlyHaveUniqueItems()
            .And.AllSatisfy(id => id.Should().MatchRegex(@"^c-000[0-3]-\d{10}$"));
        stored.Count(vm => string.CompareOrdinal(vm.Spec.Id[7..], "1073741824") >= 0).Should().Be((int)create["count"]);
    }

    [Test]
    public async Task DotnetSelected_TheDotnetLoadGeneratorRunsTheSameCalls()
    {
        await using var node = await InProcessNode.StartAsync(_scratch, reconciler: false, admission: false);
        Environment.SetEnvironmentVariable(NativeLoadGenerator.SelectEnv, NativeLoadGenerator.Dotnet);
        try
        {
            var (create, _, _) = await LoadGenerator.DriveAsync(node.GrpcAddress, LoadGenerator.CallCreate, 2, TimeSpan.FromSeconds(1), node.KernelPath, "c", TimeSpan.FromMinutes(2));

            create.Should().NotContainKey("client_native").And.ContainKey("client_gc");
            create["errors"].Should().Be(0);
            create["count"].Should().BeGreaterThan(0);
            (await node.Services.GetRequiredService<IMicroVmStore>().ListAsync("bench")).Should().HaveCount((int)(create["count"] + create["warm_count"]));
        }
        finally
        {
            Environment.SetEnvironmentVariable(NativeLoadGenerator.SelectEnv, null);
        }
    }

    [Test]
    public async Task CallsTheServerRefuses_AreErrorsNotCalls()
    {
        await using var node = await InProcessNode.StartAsync(_scratch, reconciler: false, admission: false);

        // A desired state no VM can have: InvalidArgument for every Create.
        var (create, _, _) = await LoadGenerator.DriveAsync(node.GrpcAddress, LoadGenerator.CallCreate, 2, TimeSpan.FromSeconds(1), node.KernelPath, "c",
            TimeSpan.FromMinutes(2), state: "Sideways");

        create["count"].Should().Be(0);
        create["errors"].Should().BeGreaterThan(0);
        (await node.Services.GetRequiredService<IMicroVmStore>().ListAsync("bench")).Should().BeEmpty();
    }
}
