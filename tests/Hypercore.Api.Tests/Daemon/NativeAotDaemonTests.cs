using System.Diagnostics;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Reflection.V1Alpha;
using Hypercore.Contracts.VmApi;
using Hypercore.Testing;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// vistarad as it ships: published Native AOT by scripts/publish-vistarad.sh. Every other test runs the JIT build,
/// where reflection works; a trim or AOT problem shows only here — as a publish that would fall back to the JIT
/// (a trim/AOT warning fails the publish), or as a path that throws at run time in the native binary (as the image
/// cache's reflection JSON once did). So the binary is published once and driven through a real guest's life.
/// </summary>
[NonParallelizable]
public sealed class NativeAotDaemonTests : GuestStateDirTest
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(180);

    private DirectoryInfo _publish = null!;
    private string _vistarad = null!;

    [OneTimeSetUp]
    public async Task PublishAsync()
    {
        _publish = Directory.CreateTempSubdirectory("hypercore-aot-");
        var root = GuestImage.RepoRoot();
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = root };
        info.ArgumentList.Add(Path.Combine(root, "scripts", "publish-vistarad.sh"));
        info.ArgumentList.Add(Path.Combine(_publish.FullName, "bin"));
        info.Environment["HYPERCORE_VISTARAD_REQUIRE_AOT"] = "1"; // fail, not fall back to the JIT
        using var publish = Process.Start(info)!;
        var stdout = publish.StandardOutput.ReadToEndAsync();
        var stderr = publish.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(20));
        try
        {
            await publish.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            publish.Kill(entireProcessTree: true);
            throw new AssertionException("the Native AOT publish took more than 20 minutes");
        }

        publish.ExitCode.Should().Be(0, $"scripts/publish-vistarad.sh must publish Native AOT:\n{await stderr}");
        _vistarad = (await stdout).Trim().Split('\n')[^1].Trim();
    }

    [OneTimeTearDown]
    public void DeletePublish() => _publish.Delete(recursive: true);

    [Test]
    public void Publish_IsOneNativeExecutable_NotAManagedAppHost()
    {
        var header = new byte[4];
        using (var file = File.OpenRead(_vistarad))
        {
            file.ReadExactly(header);
        }

        header.Should().Equal([0x7f, (byte)'E', (byte)'L', (byte)'F']);
        File.Exists(Path.Combine(Path.GetDirectoryName(_vistarad)!, "vistarad.dll")).Should().BeFalse("Native AOT needs no managed assembly");
        new FileInfo(_vistarad).Length.Should().BeGreaterThan(10L << 20, "the whole daemon and runtime are in the one file");
    }

    /// <summary>
    /// The methods the start runs (src/Hypercore.Daemon/vistarad.order, a profile) are laid out first and together in
    /// the code section (IlcOrderFile): the idle daemon then keeps ~7 MB fewer pages of its binary mapped
    /// (bench/NOTES.md, rss5). Fails when the publish stops applying the file, or when the code has moved on so far
    /// that the file names mostly methods the binary no longer has.
    /// </summary>
    [Test]
    public async Task Publish_StartMethodsFromTheOrderFile_ComeFirstAndTogether()
    {
        var ordered = (await File.ReadAllLinesAsync(Path.Combine(GuestImage.RepoRoot(), "src", "Hypercore.Daemon", "vistarad.order")))
            .Where(l => l.Length > 0).ToList();
        var symbols = await TextSymbolsAsync(_vistarad + ".dbg");
        var start = symbols["__start___managedcode"];
        var end = symbols["__stop___managedcode"];
        var found = ordered.Where(symbols.ContainsKey).ToList();

        ((double)found.Count / ordered.Count).Should().BeGreaterThan(0.8,
            "most profiled start methods must still exist; if not, regenerate the file: python3 scripts/vistarad-order.py DIR");
        // Laid out as listed, they fill the first ~15 % of the section (1.9 of 12 MB); without the file they are spread
        // over all of it. (A few runtime entry points, e.g. ThreadEntryPoint, are placed apart by the compiler.)
        var upFront = found.Count(n => symbols[n] - start < (end - start) / 4);
        upFront.Should().BeGreaterThan(found.Count * 99 / 100, "the ILC lays out the listed methods first and together");
    }

    /// <summary>
    /// The image prefault (src/Hypercore.Daemon/Native/prefault.c, bench/NOTES.md, prefault17) is linked into the native
    /// binary and runs before main: the ~9 MB zero-filled tail of the image (.bss, and the type data the runtime
    /// rehydrates there) is populated with one madvise, and the start-cost line says how much. HYPERCORE_PREFAULT=0
    /// turns it off. Fails when the publish stops linking the object (the line would say so, or the direct call would
    /// not bind), when the constructor stops running, or when the kernel refuses MADV_POPULATE_WRITE (Linux 5.14+).
    /// </summary>
    [Test]
    public async Task NativeDaemon_PrefaultsTheZeroFilledTailOfItsImage_UnlessTurnedOff()
    {
        foreach (var off in new[] { false, true })
        {
            var environment = off ? new Dictionary<string, string> { ["HYPERCORE_PREFAULT"] = "0" } : [];
            await using var daemon = DaemonProcess.StartWithEnvironment(environment, _vistarad,
                "run", "--state-dir", Path.Combine(StateDir, off ? "off" : "on"), "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0",
                "--qemu-accel", "tcg", "--log-level", "Information");
            await daemon.WaitReadyAsync(Patience);
            await daemon.WaitForLogAsync("start cost: image prefault", Patience);
            var line = daemon.Stderr.Split('\n').First(l => l.Contains("start cost: image prefault", StringComparison.Ordinal));
            if (off)
            {
                line.Should().Contain("image prefault off (HYPERCORE_PREFAULT=0)");
            }
            else
            {
                var match = System.Text.RegularExpressions.Regex.Match(line, @"image prefault (\d+\.\d) MB in (\d+\.\d) ms");
                match.Success.Should().BeTrue(line);
                double.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture).Should().BeGreaterThan(4,
                    "the image's zero-filled tail is ~9 MB, all of it populated before main");
            }

            daemon.Signal("TERM");
            (await daemon.WaitForExitAsync(Patience)).Should().Be(0, daemon.Stderr);
        }
    }

    /// <summary>Text symbols of the binary (nm on its .dbg), name to address; the first of a name wins.</summary>
    private static async Task<Dictionary<string, ulong>> TextSymbolsAsync(string debugFile)
    {
        var info = new ProcessStartInfo("nm") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "-n", "--defined-only", debugFile })
        {
            info.ArgumentList.Add(arg);
        }

        using var nm = Process.Start(info)!;
        var stdout = nm.StandardOutput.ReadToEndAsync();
        var stderr = nm.StandardError.ReadToEndAsync();
        await nm.WaitForExitAsync();
        nm.ExitCode.Should().Be(0, await stderr);
        var symbols = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var line in (await stdout).Split('\n'))
        {
            var parts = line.Split(' ', 3);
            if (parts.Length == 3 && parts[1] is "t" or "T")
            {
                symbols.TryAdd(parts[2], Convert.ToUInt64(parts[0], 16));
            }
        }

        return symbols;
    }

    [Test]
    public async Task NativeDaemon_BootsAGuest_ServesGrpcHttpAndReflection_RefusesBadInput_DeletesAndStops()
    {
        await using var daemon = DaemonProcess.Start(_vistarad,
            "run", "--state-dir", StateDir, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0",
            "--qemu-accel", "tcg", "--node-name", "aot-node");
        var (grpc, http) = await daemon.WaitReadyAsync(Patience);
        using var channel = GrpcChannel.ForAddress(grpc);
        var client = new VMService.VMServiceClient(channel);
        using var httpClient = new HttpClient { BaseAddress = new Uri(http) };

        // Bad input: a precise status, nothing written.
        var invalid = await FluentActions.Awaiting(() => client.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec { Id = "bad", Namespace = "demo", Vcpu = 0, MemoryInMb = 128, Kernel = new Kernel { Image = "default" } },
        }).ResponseAsync).Should().ThrowAsync<RpcException>();
        invalid.Which.StatusCode.Should().Be(StatusCode.InvalidArgument);

        // A real guest, created over HTTP/JSON (the gateway), with metadata (the NoCloud seed's YAML emitter).
        using (var create = await httpClient.PostAsync("/v1/microvms", new StringContent(
            """{"microvm":{"id":"web1","namespace":"demo","vcpu":1,"memoryInMb":128,"kernel":{"image":"default"},"metadata":{"x-owner":"aot"}}}""",
            Encoding.UTF8, "application/json")))
        {
            create.IsSuccessStatusCode.Should().BeTrue(await create.Content.ReadAsStringAsync());
        }

        MicroVM running;
        using (var cts = new CancellationTokenSource(Patience))
        {
            do
            {
                await Task.Delay(250, cts.Token);
                running = (await client.GetAsync(new GetMicroVMRequest { Id = "web1", Namespace = "demo" }, cancellationToken: cts.Token)).Microvm;
            }
            while (running.Status.Phase != "Running" && running.Status.Phase != "Failed");
        }

        running.Status.Phase.Should().Be("Running", running.Status.ToString());
        GuestPids.Add(running.Status.Pid);
        var uid = running.Spec.Uid;
        using (var logs = new CancellationTokenSource(Patience))
        {
            using var call = client.Logs(new LogsRequest { Id = "web1", Namespace = "demo", Follow = true }, cancellationToken: logs.Token);
            var console = new StringBuilder();
            while (!console.ToString().Contains("HYPERCORE-GUEST-READY", StringComparison.Ordinal))
            {
                (await call.ResponseStream.MoveNext(logs.Token)).Should().BeTrue();
                console.Append(Encoding.UTF8.GetString(call.ResponseStream.Current.Data.Span));
            }
        }

        // Paths that once failed only in the native binary: the image cache index (prune), reflection.
        using (var prune = await httpClient.PostAsync("/v1/images:prune", new StringContent("{}", Encoding.UTF8, "application/json")))
        {
            prune.IsSuccessStatusCode.Should().BeTrue(await prune.Content.ReadAsStringAsync());
        }

        (await httpClient.GetStringAsync("/v1/microvms?namespace=demo")).Should().Contain("\"web1\"").And.Contain("\"Running\"");
        using (var reflection = new CancellationTokenSource(Patience))
        {
            using var call = new ServerReflection.ServerReflectionClient(channel).ServerReflectionInfo(cancellationToken: reflection.Token);
            await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
            (await call.ResponseStream.MoveNext(reflection.Token)).Should().BeTrue();
            call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).Should().Contain(["vm.services.api.VMService", "vistara.Vistara"]);
            await call.RequestStream.CompleteAsync();
        }

        // The health service's class is internal to Grpc.AspNetCore.HealthChecks: bound through the generic method
        // table (Api/GrpcMethods), whose instantiation over it only the native binary builds at run time.
        using (var health = new CancellationTokenSource(Patience))
        {
            (await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), cancellationToken: health.Token))
                .Status.Should().Be(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving);
        }

        var vmDir = Path.Combine(StateDir, "run", "qemu", uid);
        (await httpClient.DeleteAsync("/v1/microvms/web1?namespace=demo")).EnsureSuccessStatusCode();
        await WaitUntilGoneAsync(client, uid, Patience);

        daemon.Signal("TERM");
        (await daemon.WaitForExitAsync(Patience)).Should().Be(0, daemon.Stderr);
        ProcFs.IsAlive(running.Status.Pid).Should().BeFalse("delete stops the VM");
        Directory.Exists(vmDir).Should().BeFalse("delete removes the VM's runtime files");
        daemon.Stderr.Should().NotContain("Reflection-based serialization").And.NotContain("NotSupportedException")
            .And.NotContain("MissingMetadataException", "nothing on this path may need reflection the native binary does not have");
    }
}
