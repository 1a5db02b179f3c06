using System.Diagnostics;
using System.Globalization;

namespace Hypercore.Drivers.Qemu;

/// <summary>
/// The unprivileged user QEMU runs as (<see cref="QemuOptions.RunAs"/>): "uid:gid" numbers, or a user name resolved
/// through getent (its uid and primary gid).
/// </summary>
public readonly record struct QemuUser(int Uid, int Gid)
{
    public override string ToString() => $"{Uid}:{Gid}";

    /// <summary>Null error on success; otherwise what is wrong with <paramref name="value"/>.</summary>
    public static string? TryResolve(string value, out QemuUser user)
    {
        user = default;
        var text = value.Trim();
        if (text.Length == 0)
        {
            return "must be \"uid:gid\" or a user name, got an empty value";
        }

        var colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon >= 0)
        {
            if (int.TryParse(text[..colon], NumberStyles.None, CultureInfo.InvariantCulture, out var uid) &&
                int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var gid))
            {
                user = new QemuUser(uid, gid);
                return null;
            }

            return $"must be \"uid:gid\" (two whole numbers) or a user name, got \"{value}\"";
        }

        if (!text.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.') || text[0] == '-')
        {
            return $"must be \"uid:gid\" or a user name, got \"{value}\"";
        }

        var entry = GetentPasswd(text);
        var fields = entry?.Split(':');
        if (fields is not { Length: >= 4 } ||
            !int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var u) ||
            !int.TryParse(fields[3], NumberStyles.None, CultureInfo.InvariantCulture, out var g))
        {
            return $"user \"{text}\" not found (getent passwd {text}); give an existing user or \"uid:gid\"";
        }

        user = new QemuUser(u, g);
        return null;
    }

    private static string? GetentPasswd(string name)
    {
        try
        {
            var psi = new ProcessStartInfo("getent") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add("passwd");
            psi.ArgumentList.Add(name);
            using var p = Process.Start(psi);
            if (p is null)
            {
                return null;
            }

            var output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0 ? output.Split('\n')[0] : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no getent: only "uid:gid" works
        }
    }
}
