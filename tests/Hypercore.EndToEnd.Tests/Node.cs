using System.Diagnostics;
using System.Net;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// One node as a user runs it: a state directory in a temp dir (images/default pointing at the cached test image),
/// a real vistarad on 127.0.0.1 with ports it picks itself (:0, read back from its ready line), QEMU under TCG,
/// and the real vis CLI against it. Dispose kills the daemon, every process whose command line names the temp
/// dir (each QEMU names its console, QMP socket and pid file there, each stand-in VMM its API socket) and deletes the dir.
/// </summary>
internal sealed class Node : IAsyncDisposable
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    private readonly DirectoryInfo _root;
    private IReadOnlyList<string> _daemonArgs = [];
    private bool _testKernelRoots = true;
    private HttpClient? _http;

    private Node(DirectoryInfo root) => _root = root;

    public string Root => _root.FullName;

    public string StateDir => Path.Combine(Root, "state");

    /// <summary>The QEMU driver's per-VM directories live in RuntimeDir/&lt;uid&gt;/.</summary>
    public string RuntimeDir => RuntimeDirOf("qemu");

    /// <summary>A provider's per-VM directories: RuntimeDirOf(provider)/&lt;uid&gt;/.</summary>
    public string RuntimeDirOf(string provider) => Path.Combine(StateDir, "run", provider);

    public DaemonProcess Daemon { get; private set; } = null!;

    /// <summary>The daemon's gRPC URL, as `vis --host` takes it.</summary>
    public string GrpcUrl { get; private set; } = "";

    public HttpClient Http => _http ?? throw new InvalidOperationException("the daemon has not started");

    public static Task<Node> StartAsync() => StartAsync(_ => []);

    /// <summary>
    /// A node with vistarad's host-access defaults untouched: kernels only from &lt;state-dir&gt;/images, volumes only
    /// from &lt;state-dir&gt;/volumes. (Other nodes also allow kernels under the temp dir and the image cache, which
    /// tests name by absolute path.)
    /// </summary>
    public static Task<Node> StartWithDefaultHostAccessAsync() => StartAsync(_ => [], testKernelRoots: false);

    /// <summary>
    /// A node whose daemon also gets <paramref name="daemonArgs"/> (given the node, for paths under its temp dir),
    /// on this start and every restart.
    /// </summary>
    public static async Task<Node> StartAsync(Func<Node, IReadOnlyList<string>> daemonArgs, bool testKernelRoots = true)
    {
        // Short: QMP socket paths under it must fit sockaddr_un.
        var node = new Node(Directory.CreateTempSubdirectory("hc-e2e-"));
        try
        {
            node._testKernelRoots = testKernelRoots;
            node._daemonArgs = daemonArgs(node);
            await GuestImage.InstallAsDefaultAsync(node.StateDir);
            await node.StartDaemonAsync();
            return node;
        }
        catch
        {
            await node.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts a vistarad on this state dir and waits for its ready line.</summary>
    public async Task StartDaemonAsync()
    {
        Daemon = DaemonProcess.Start(
            BuiltPrograms.VistaradDll,
            ["run", "--state-dir", StateDir, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0",
                "--qemu-accel", "tcg", "--node-name", "e2e-node",
                .. (_testKernelRoots ? new[] { "--kernel-roots", $"{Root},{GuestImage.Cache}" } : []), .. _daemonArgs]);
        var (grpc, http) = await Daemon.WaitReadyAsync(Patience);
        GrpcUrl = grpc;
        _http?.Dispose();
        _http = new HttpClient { BaseAddress = new Uri(http), Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>kill -9 the daemon, as a crash or the OOM killer would, and wait until it is gone.</summary>
    public async Task KillDaemonAsync()
    {
        ProcFs.Kill(Daemon.Pid);
        await Daemon.WaitForExitAsync(Patience);
        await Daemon.DisposeAsync();
    }

    /// <summary>Runs `dotnet vis.dll --host &lt;daemon&gt; args` to completion.</summary>
    public async Task<VisResult> VisAsync(params string[] args)
    {
        var all = new[] { "--host", GrpcUrl }.Concat(args).ToList();
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(BuiltPrograms.VisDll);
        foreach (var a in all)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment.Remove("VIS_HOST");
        var stopwatch = Stopwatch.StartNew();
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new AssertionException($"vis {string.Join(' ', all)} did not exit within 3 minutes\nstderr:\n{await stderr}");
        }

        return new VisResult(all, process.ExitCode, await stdout, await stderr, stopwatch.Elapsed);
    }

    /// <summary>`vis get ID -o json`, which must succeed.</summary>
    public async Task<VmView> GetAsync(string id)
    {
        var result = await VisAsync("get", id, "-o", "json");
        result.ExitCode.Should().Be(0, result.ToString());
        return VmView.Parse(result.Stdout);
    }

    /// <summary>GET /v1/microvms/{id} over the HTTP API; null when the daemon says 404. Cheap enough to poll.</summary>
    public async Task<VmView?> TryGetOverHttpAsync(string @namespace, string id)
    {
        using var response = await Http.GetAsync($"/v1/microvms/{id}?namespace={@namespace}");
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        var body = await response.Content.ReadAsStringAsync();
        response.IsSuccessStatusCode.Should().BeTrue($"GET {id}: {(int)response.StatusCode} {body}");
        return VmView.Parse(body);
    }

    /// <summary>Polls the HTTP API until <paramref name="condition"/> holds.</summary>
    public async Task<VmView> WaitAsync(string @namespace, string id, Func<VmView, bool> condition, string what)
    {
        var stopwatch = Stopwatch.StartNew();
        VmView? last = null;
        while (stopwatch.Elapsed < Patience)
        {
            last = await TryGetOverHttpAsync(@namespace, id);
            if (last is not null && condition(last))
            {
                return last;
            }

            await Task.Delay(200);
        }

        throw new AssertionException($"{@namespace}/{id}: timed out after {Patience} waiting for {what}; last: {last}\ndaemon log:\n{Daemon.Stderr}");
    }

    /// <summary>
    /// Test cleanup: deletes the VM through the daemon (which stops QEMU and removes its files) and waits until the
    /// record is gone; if the daemon cannot, kills whatever QEMU still carries the VM's uid.
    /// </summary>
    public async Task ForceDeleteAsync(string @namespace, string id)
    {
        string? uid = null;
        try
        {
            var vm = await TryGetOverHttpAsync(@namespace, id);
            if (vm is null)
            {
                return;
            }

            uid = vm.Uid;
            if (vm.Phase == "Running" && vm.ConsoleLogPath.Length > 0)
            {
                // A guest still booting misses the power button and the delete waits out the whole grace period
                // (10 s); its ready line comes sooner. (Only speed is at stake: a restarted guest may pass early.)
                try
                {
                    await WaitForGuestReadyAsync(vm.ConsoleLogPath, TimeSpan.FromSeconds(30));
                }
                catch (AssertionException)
                {
                    // a guest that never gets there is deleted all the same
                }
            }

            using var response = await Http.DeleteAsync($"/v1/microvms/{id}?namespace={@namespace}");
            var stopwatch = Stopwatch.StartNew();
            while (stopwatch.Elapsed < TimeSpan.FromSeconds(60) && await TryGetOverHttpAsync(@namespace, id) is not null)
            {
                await Task.Delay(200);
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or AssertionException)
        {
            TestContext.Progress.WriteLine($"cleanup of {@namespace}/{id} through the daemon failed: {ex.Message}");
        }
        finally
        {
            if (uid is { Length: > 0 })
            {
                ProcFs.KillAll(uid);
            }
        }
    }

    /// <summary>Waits until the file contains <paramref name="text"/>; returns its content.</summary>
    public static async Task<string> WaitForFileTextAsync(string path, string text, TimeSpan timeout)
    {
        var stopwatch = Stopwatch.StartNew();
        var content = "";
        while (stopwatch.Elapsed < timeout)
        {
            content = ReadShared(path);
            if (content.Contains(text, StringComparison.Ordinal))
            {
                return content;
            }

            await Task.Delay(50);
        }

        throw new AssertionException($"{path} did not show \"{text}\" within {timeout}; it has:\n{content}");
    }

    /// <summary>
    /// Waits until a boot that starts at or after character <paramref name="from"/> of the console log has printed
    /// the ready line; returns the whole console. QEMU appends across restarts, so a caller that restarts a VM passes
    /// the log's length from before, or the previous boot's ready line would count.
    /// </summary>
    public static async Task<string> WaitForGuestReadyAsync(string consoleLog, TimeSpan timeout, int from = 0)
    {
        var stopwatch = Stopwatch.StartNew();
        var content = "";
        while (stopwatch.Elapsed < timeout)
        {
            content = ReadShared(consoleLog);
            var boot = content.Length > from ? content.LastIndexOf("Linux version", StringComparison.Ordinal) : -1;
            if (boot >= from && content.IndexOf(GuestImage.ReadyLine, boot, StringComparison.Ordinal) > 0)
            {
                return content;
            }

            await Task.Delay(50);
        }

        throw new AssertionException($"no boot after offset {from} printed {GuestImage.ReadyLine} within {timeout}; {consoleLog} has:\n{content}");
    }

    /// <summary>Reads a file QEMU is still appending to.</summary>
    public static string ReadShared(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return "";
        }
    }

    public async ValueTask DisposeAsync()
    {
        // The daemon first: it would restart the QEMUs killed below.
        if (Daemon is not null)
        {
            await Daemon.DisposeAsync();
        }

        var killed = ProcFs.KillAll(Root);
        if (killed.Count > 0)
        {
            TestContext.Progress.WriteLine($"cleanup killed {killed.Count} process(es) left under {Root}: {string.Join(", ", killed)}");
        }

        _http?.Dispose();
        try
        {
            _root.Delete(recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
