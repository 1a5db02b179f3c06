using System.Diagnostics;
using System.Text;

namespace Hypercore.Drivers.Qemu;

/// <summary>Small facts about host processes, read from /proc, and running short helper commands.</summary>
internal static class HostProcesses
{
    /// <summary>
    /// True when <paramref name="pid"/> is a live (not zombie) process whose command line contains
    /// <paramref name="marker"/>. The marker (the VM uid) guards against a recycled pid.
    /// </summary>
    public static bool IsAlive(int pid, string marker)
    {
        if (pid <= 0 || IsZombieOrGone(pid))
        {
            return false;
        }

        try
        {
            var cmdline = File.ReadAllBytes($"/proc/{pid}/cmdline");
            return Encoding.UTF8.GetString(cmdline).Contains(marker, StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Gone, or a zombie nobody has reaped yet (it holds no resources; it is dead for us).</summary>
    public static bool IsZombieOrGone(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // "pid (comm) S ...": comm may hold spaces or parentheses, so the state follows the last ')'.
            var close = stat.LastIndexOf(')');
            return close < 0 || close + 2 >= stat.Length || stat[close + 2] is 'Z' or 'X';
        }
        catch (IOException)
        {
            return true;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>SIGKILL; no error when the process is already gone.</summary>
    public static void Kill(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
        }
        catch (ArgumentException)
        {
            // already gone
        }
        catch (InvalidOperationException)
        {
            // exited between lookup and kill
        }
    }

    /// <summary>Runs a helper command to completion, capturing its output.</summary>
    public static async Task<CommandResult> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, TimeProvider time, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        using var deadline = new Deadline(time, timeout, ct);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            if (deadline.Expired && !ct.IsCancellationRequested)
            {
                throw new TimeoutException($"{file} {string.Join(' ', psi.ArgumentList)} did not finish within {timeout.TotalSeconds:0.#} s");
            }

            throw;
        }

        return new CommandResult(process.ExitCode, (await stdout).Trim(), (await stderr).Trim());
    }
}

internal readonly record struct CommandResult(int ExitCode, string Stdout, string Stderr)
{
    public string Output => Stderr.Length > 0 ? Stderr : Stdout;
}
