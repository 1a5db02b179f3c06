using System.Diagnostics;

namespace Hypercore.Kubernetes.Tests.Support;

public sealed record KubectlResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}

/// <summary>Runs the real kubectl binary against a kubeconfig, with its own discovery cache directory.</summary>
public sealed class KubectlRunner(string kubeconfig, string cacheDir)
{
    public const string Binary = "/usr/bin/kubectl";

    public static bool Available => File.Exists(Binary);

    public async Task<KubectlResult> RunAsync(params string[] args)
    {
        var psi = new ProcessStartInfo(Binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("--kubeconfig");
        psi.ArgumentList.Add(kubeconfig);
        psi.ArgumentList.Add("--cache-dir");
        psi.ArgumentList.Add(cacheDir);
        psi.ArgumentList.Add("--request-timeout=30s");
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment.Remove("KUBECONFIG");
        psi.Environment["HOME"] = cacheDir;
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start kubectl");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"kubectl {string.Join(' ', args)} did not finish in 90 s: {await stderr}");
        }

        return new KubectlResult(process.ExitCode, await stdout, await stderr);
    }
}
