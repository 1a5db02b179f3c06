using Hypercore.Drivers.Vmm;

namespace Hypercore.Networking;

/// <summary>
/// Runs ip, nft, sysctl and dnsmasq, in the configured network namespace when there is one (tests keep everything
/// inside namespaces they made; the daemon uses its own).
/// </summary>
public sealed class NetworkCommands(NodeNetworkOptions options)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    public string? Namespace => options.NetworkNamespace.Length > 0 ? options.NetworkNamespace : null;

    /// <summary>The argv that runs <paramref name="file"/> in the namespace (unchanged without one).</summary>
    public (string File, IReadOnlyList<string> Args) Wrap(string file, IEnumerable<string> args) =>
        Namespace is { } ns ? ("ip", ["netns", "exec", ns, file, .. args]) : (file, [.. args]);

    public async Task<CommandResult> RunAsync(string file, IEnumerable<string> args, CancellationToken ct)
    {
        var (f, a) = Wrap(file, args);
        return await HostProcess.RunAsync(f, a, Timeout, ct);
    }

    /// <summary>Runs and throws <see cref="NetworkException"/> on a non-zero exit, naming the command.</summary>
    public async Task<string> CheckAsync(string file, IReadOnlyList<string> args, CancellationToken ct)
    {
        var result = await RunAsync(file, args, ct);
        return result.Succeeded
            ? result.StandardOutput
            : throw new NetworkException("NetworkError", $"{file} {string.Join(' ', args)} failed: {result.Diagnostic}");
    }

    /// <summary>nft with a script on stdin-less "-f file" (one transaction: all of it applies or none).</summary>
    public async Task ApplyNftAsync(string script, string scratchFile, CancellationToken ct)
    {
        await File.WriteAllTextAsync(scratchFile, script, ct);
        try
        {
            await CheckAsync("nft", ["-f", scratchFile], ct);
        }
        finally
        {
            File.Delete(scratchFile);
        }
    }

    public async Task<bool> LinkExistsAsync(string name, CancellationToken ct) =>
        (await RunAsync("ip", ["link", "show", "dev", name], ct)).Succeeded;
}

/// <summary>A host networking failure; <see cref="Reason"/> becomes the VM's condition reason.</summary>
public sealed class NetworkException(string reason, string message) : Exception(message)
{
    public string Reason { get; } = reason;
}
