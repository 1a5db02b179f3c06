using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Hypercore.Drivers.Vmm;

/// <summary>The result of a short-lived helper command (ip, ops, "--version").</summary>
public sealed record CommandResult(int ExitCode, string StandardOutput, string StandardError)
{
    public bool Succeeded => ExitCode == 0;

    /// <summary>stderr if there is any, else stdout; trimmed, for error messages.</summary>
    public string Diagnostic => (StandardError.Trim().Length > 0 ? StandardError : StandardOutput).Trim();
}

/// <summary>
/// Processes seen through /proc and signals, by pid. A VMM is deliberately not our child: it must outlive the daemon,
/// so every check here works for any process on the host, and a pid is only trusted together with its start time
/// (field 22 of /proc/pid/stat), which guards against pid reuse after a reboot or a long downtime.
/// </summary>
public static partial class HostProcess
{
    public const int SigKill = 9;
    public const int SigTerm = 15;

    /// <summary>True while the process exists and is not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        var stat = ReadStat(pid);
        return stat is not null && stat.Value.State is not ('Z' or 'X');
    }

    /// <summary>True when <paramref name="pid"/> is alive and is the same process that was recorded (same start time).</summary>
    public static bool IsSameProcess(int pid, long startTicks)
    {
        var stat = ReadStat(pid);
        return stat is not null && stat.Value.State is not ('Z' or 'X') && stat.Value.StartTicks == startTicks;
    }

    /// <summary>Start time of the process in clock ticks since boot, or null when it does not exist.</summary>
    public static long? StartTicks(int pid) => ReadStat(pid)?.StartTicks;

    /// <summary>The argv of a process (from /proc/pid/cmdline), or empty when it is gone.</summary>
    public static IReadOnlyList<string> CommandLine(int pid)
    {
        try
        {
            var raw = File.ReadAllText($"/proc/{pid}/cmdline");
            return raw.Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>Sends a signal; false when the process no longer exists.</summary>
    public static bool Signal(int pid, int signal)
    {
        if (pid <= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(pid), pid, "refusing to signal pid <= 1");
        }

        if (Kill(pid, signal) == 0)
        {
            return true;
        }

        var errno = Marshal.GetLastPInvokeError();
        const int ESRCH = 3;
        return errno == ESRCH ? false : throw new Win32Exception(errno, $"kill({pid}, {signal}) failed");
    }

    /// <summary>Polls until the process is gone (or a zombie); false on timeout.</summary>
    public static async Task<bool> WaitForExitAsync(int pid, TimeSpan timeout, TimeProvider time, CancellationToken ct)
    {
        var deadline = time.GetUtcNow() + timeout;
        while (IsAlive(pid))
        {
            if (time.GetUtcNow() >= deadline)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), time, ct);
        }

        return true;
    }

    /// <summary>SIGKILL and wait until the process is gone. Returns true when it had been alive.</summary>
    public static async Task<bool> KillAsync(int pid, TimeProvider time, CancellationToken ct)
    {
        if (!IsAlive(pid))
        {
            return false;
        }

        Signal(pid, SigKill);
        if (!await WaitForExitAsync(pid, TimeSpan.FromSeconds(10), time, ct))
        {
            throw new DriverException("HypervisorError", $"process {pid} did not exit 10 s after SIGKILL");
        }

        return true;
    }

    /// <summary>
    /// Starts <paramref name="binary"/> in a new session (setsid), detached from the daemon so that it survives a
    /// daemon restart or a Ctrl-C in the daemon's terminal, with stdin from /dev/null and stdout and stderr appended
    /// to <paramref name="outputLog"/>. Returns the VMM's own pid: a background job of a non-interactive shell is not
    /// a process-group leader, so setsid(1) calls setsid() and execs in place without forking.
    /// <paramref name="inheritedFiles"/> are opened read-write by the launching shell as fds 3, 4, ... and so are
    /// inherited by the process (fds the daemon opens itself are close-on-exec and never reach a child).
    /// </summary>
    public static async Task<int> StartDetachedAsync(
        string binary, IEnumerable<string> arguments, string workingDirectory, string outputLog, CancellationToken ct,
        IReadOnlyList<string>? inheritedFiles = null)
    {
        var psi = new ProcessStartInfo("/bin/sh")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory,
        };
        psi.ArgumentList.Add("-c");
        var opens = new StringBuilder();
        for (var i = 0; i < (inheritedFiles?.Count ?? 0); i++)
        {
            // Paths travel in the environment, never in the script text, so no path can inject shell syntax.
            var fd = 3 + i;
            psi.Environment[$"HC_FD{fd}"] = inheritedFiles![i];
            opens.Append(CultureInfo.InvariantCulture, $"exec {fd}<>\"$HC_FD{fd}\" || exit 1; unset HC_FD{fd}; ");
        }

        psi.ArgumentList.Add(
            opens +
            "log=$1; shift; " +
            "if command -v setsid >/dev/null 2>&1; then setsid \"$@\" </dev/null >>\"$log\" 2>&1 & " +
            "else \"$@\" </dev/null >>\"$log\" 2>&1 & fi; echo $!");
        psi.ArgumentList.Add("hypercore-launch");
        psi.ArgumentList.Add(outputLog);
        psi.ArgumentList.Add(binary);
        foreach (var a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        // Process.Start blocks its thread through fork and exec (serialized by the runtime's process-start lock): on
        // a thread of its own, so that 100 launches at once do not hold every thread-pool thread and starve the
        // awaits of the starts already under way (issue 15, density: bench/NOTES.md).
        using var process = await Task.Factory.StartNew(() => Process.Start(psi), ct, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            ?? throw new DriverException("HypervisorError", "could not start /bin/sh to launch " + binary);
        var stdout = await process.StandardOutput.ReadToEndAsync(ct);
        var stderr = await process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        if (process.ExitCode != 0 || !int.TryParse(stdout.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
        {
            throw new DriverException("HypervisorError", $"could not launch {binary}: {stderr.Trim()}{stdout.Trim()}");
        }

        return pid;
    }

    /// <summary>Runs a short helper command to completion and captures its output. Never throws for a non-zero exit.</summary>
    public static async Task<CommandResult> RunAsync(
        string fileName, IEnumerable<string> arguments, TimeSpan timeout, CancellationToken ct,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        if (environment is not null)
        {
            foreach (var (k, v) in environment)
            {
                psi.Environment[k] = v;
            }
        }

        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new Win32Exception("Process.Start returned null");
        }
        catch (Win32Exception ex)
        {
            return new CommandResult(127, "", $"{fileName}: {ex.Message}");
        }

        using (process)
        {
            process.StandardInput.Close();
            var stdout = new StringBuilder();
            var stderr = new StringBuilder();
            var outTask = CopyAsync(process.StandardOutput, stdout);
            var errTask = CopyAsync(process.StandardError, stderr);
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(timeout);
            try
            {
                await process.WaitForExitAsync(cts.Token);
                await Task.WhenAll(outTask, errTask);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                try
                {
                    process.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                    // already exited
                }

                return new CommandResult(124, stdout.ToString(), $"{fileName} timed out after {timeout.TotalSeconds:0.#} s");
            }

            return new CommandResult(process.ExitCode, stdout.ToString(), stderr.ToString());
        }
    }

    private static async Task CopyAsync(StreamReader reader, StringBuilder into)
    {
        var buffer = new char[4096];
        int n;
        while ((n = await reader.ReadAsync(buffer)) > 0)
        {
            into.Append(buffer, 0, n);
        }
    }

    /// <summary>
    /// /proc/pid/stat read into a stack buffer and parsed in place: it is read for every VM on every status poll and,
    /// while a QEMU starts, every 10 ms; the string, its 52-way Split and the stream buffer it used to allocate came to
    /// about 1 MB of garbage per VM start with 100 starting at once (issue 15, density: bench/NOTES.md).
    /// </summary>
    private static (char State, long StartTicks)? ReadStat(int pid)
    {
        if (pid <= 0)
        {
            return null;
        }

        Span<byte> buffer = stackalloc byte[1024];
        int length;
        try
        {
            using var handle = File.OpenHandle(StatPath(pid), FileMode.Open, FileAccess.Read);
            length = RandomAccess.Read(handle, buffer, 0);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        return ParseStat(buffer[..length]);
    }

    /// <summary>
    /// State (field 3) and start time (field 22) of a /proc/pid/stat line, or null when it is not one. comm (field 2)
    /// may hold spaces and parentheses: the fields are counted from the last ')'.
    /// </summary>
    public static (char State, long StartTicks)? ParseStat(ReadOnlySpan<byte> stat)
    {
        var close = stat.LastIndexOf((byte)')');
        if (close < 0 || close + 2 >= stat.Length)
        {
            return null;
        }

        var rest = stat[(close + 2)..];
        var state = (char)rest[0];

        // rest holds field 3 onwards; field 22 is the 20th of them, after 19 spaces.
        for (var skipped = 0; skipped < 19; skipped++)
        {
            var space = rest.IndexOf((byte)' ');
            if (space < 0)
            {
                return null;
            }

            rest = rest[(space + 1)..];
        }

        var end = rest.IndexOfAny((byte)' ', (byte)'\n');
        var digits = end < 0 ? rest : rest[..end];
        return digits.Length > 0 && System.Buffers.Text.Utf8Parser.TryParse(digits, out long start, out var used) && used == digits.Length && start >= 0
            ? (state, start)
            : null;
    }

    private static string StatPath(int pid) => string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/stat");

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
