using System.Diagnostics;

namespace Hypercore.Testing;

/// <summary>
/// Reads a cloud-init seed disk back with tools other than the ones that made it: blkid (util-linux) for the
/// filesystem type and label, as a guest's blkid sees them, and mtools' mdir/mtype for the files.
/// </summary>
public static class CidataDisk
{
    public sealed record Contents(string Type, string Label, IReadOnlyDictionary<string, string> Files);

    public static Contents Read(string image)
    {
        var type = Run("blkid", "-p", "-o", "value", "-s", "TYPE", image).Trim();
        var label = Run("blkid", "-p", "-o", "value", "-s", "LABEL", image).Trim();
        var names = Run("mdir", "-i", image, "-b", "::").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(n => n.StartsWith("::/", StringComparison.Ordinal) ? n[3..] : n)
            .Order(StringComparer.Ordinal);
        var files = names.ToDictionary(n => n, n => Run("mtype", "-i", image, "::" + n), StringComparer.Ordinal);
        return new Contents(type, label, files);
    }

    private static string Run(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            Assert.Fail($"{tool} {string.Join(' ', args)} failed ({p.ExitCode}): {stderr}");
        }

        return stdout.Result;
    }
}
