using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Hypercore.Benchmarks.Runner;

/// <summary>
/// In-process benchmarks run in a child process of the runner (the same executable with --child), so that each
/// one starts with a fresh heap and JIT state and its memory figure is its own. The child prints one line
/// "RESULT {json}" with named numbers. The children that run the daemon's code run under the daemon's runtime settings
/// (<see cref="DaemonRuntime"/>).
/// </summary>
public static class ChildRun
{
    public const string Prefix = "RESULT ";

    public static async Task<Dictionary<string, double>> RunAsync(BenchContext ctx, string kind, int size, TimeSpan timeout, params string[] extra)
    {
        var runner = typeof(ChildRun).Assembly.Location;
        var daemonRuntime = DaemonRuntime.RunsDaemonCode(kind);
        var start = daemonRuntime ? DaemonRuntime.StartInfo(runner, kind) : SelfStartInfo();
        foreach (var arg in (string[])["--child", kind, "--child-size", size.ToString(CultureInfo.InvariantCulture), "--work-dir", ctx.WorkDirectory,
            "--api-seconds", ctx.Options.ApiDuration.TotalSeconds.ToString(CultureInfo.InvariantCulture), .. extra])
        {
            start.ArgumentList.Add(arg);
        }

        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"benchmark child {kind} {size} did not finish within {timeout.TotalMinutes:0} min");
        }

        var output = await stdout;
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith(Prefix, StringComparison.Ordinal));
        if (process.ExitCode != 0 || line is null)
        {
            var err = await stderr;
            throw new InvalidOperationException($"benchmark child {kind} {size} failed (exit {process.ExitCode}): {(err.Length > 3000 ? err[^3000..] : err)}");
        }

        var result = JsonSerializer.Deserialize<Dictionary<string, double>>(line[Prefix.Length..])!;
        if (daemonRuntime)
        {
            // Said, not fatal: an A/B may change a setting on purpose (DOTNET_GC* in the environment).
            foreach (var difference in DaemonRuntime.Differences(result, DaemonRuntime.ConfigPath(runner), DaemonRuntime.CompilesOptimized(kind)))
            {
                BenchContext.Log($"{kind}: WARNING: not under the daemon's runtime settings: {difference}");
            }
        }

        return result;
    }

    public static void Report(Dictionary<string, double> values) =>
        Console.Out.WriteLine(Prefix + JsonSerializer.Serialize(values));

    /// <summary>
    /// This executable again: the apphost, or dotnet plus this assembly, as a client process (the load generator, the
    /// watch clients): under the runner's runtimeconfig.json and <see cref="DaemonRuntime.ClientSettings"/>, also when
    /// started from a daemon-code child (<see cref="DaemonRuntime.ForClient"/>).
    /// </summary>
    internal static ProcessStartInfo SelfStartInfo()
    {
        var host = Environment.ProcessPath!;
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            var start = new ProcessStartInfo(host);
            start.ArgumentList.Add(typeof(ChildRun).Assembly.Location);
            return DaemonRuntime.ForClient(start);
        }

        return DaemonRuntime.ForClient(new ProcessStartInfo(host));
    }
}
