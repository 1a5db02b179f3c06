using System.Diagnostics;
using System.Text;
using Hypercore.Drivers.Vmm;
using Microsoft.Win32.SafeHandles;

namespace Hypercore.Drivers.Qemu;

/// <summary>
/// Decides whether KVM is usable: /dev/kvm must open, and a probe guest (a kernel the node owns, see
/// <see cref="QemuOptions.KvmProbeKernel"/>; never a caller's) must print "Linux version" on its serial console
/// under <c>-accel kvm</c> within the timeout. A /dev/kvm that opens is not enough: nested KVM on some hosts hangs
/// Linux guests (a real-mode boot sector still runs there, so the probe must boot Linux) or makes QEMU abort.
/// </summary>
internal sealed class KvmProbe(TimeProvider time)
{
    public const string BootMarker = "Linux version";

    /// <summary>Whether KVM boots a guest, and the reason phrased for status ("kvm probe: no guest output in 10 s").</summary>
    public async Task<KvmProbeResult> RunAsync(string qemuBinary, string kernelPath, TimeSpan timeout, CancellationToken ct)
    {
        var open = TryOpenKvm();
        if (open is not null)
        {
            return new KvmProbeResult(false, open);
        }

        if (!File.Exists(kernelPath))
        {
            return new KvmProbeResult(false, $"kvm probe: no probe kernel at {kernelPath} (install the default image or set --qemu-accel kvm)");
        }

        var psi = new ProcessStartInfo(qemuBinary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in new[]
        {
            "-M", "microvm", "-accel", "kvm", "-cpu", "host", "-smp", "1", "-m", "128",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", kernelPath, "-append", "console=ttyS0 panic=-1", "-serial", "stdio", "-monitor", "none",
            "-sandbox", QemuCommandLine.Sandbox,
        })
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {qemuBinary}");
        var started = time.GetTimestamp();
        var booted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data?.Contains(BootMarker, StringComparison.Ordinal) == true)
            {
                booted.TrySetResult();
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (stderr)
                {
                    stderr.AppendLine(e.Data);
                }
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StandardInput.Close();

        try
        {
            using var deadline = new Deadline(time, timeout, ct);
            var exited = process.WaitForExitAsync(deadline.Token);
            var first = await Task.WhenAny(booted.Task, exited);
            if (first == booted.Task || booted.Task.IsCompleted)
            {
                return Booted(started);
            }

            await exited; // throws when the deadline passed
            await Task.Delay(50, CancellationToken.None); // let the output reader drain the last lines
            if (booted.Task.IsCompleted)
            {
                return Booted(started);
            }

            string err;
            lock (stderr)
            {
                err = string.Join("; ", stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Select(l => l.StartsWith(Path.GetFileName(qemuBinary) + ": ", StringComparison.Ordinal) ? l[(Path.GetFileName(qemuBinary).Length + 2)..] : l)
                    .Take(2));
            }

            return new KvmProbeResult(false, $"kvm probe: qemu exited with code {process.ExitCode} after {time.GetElapsedTime(started).TotalSeconds:0.#} s" +
                (err.Length > 0 ? $": {err}" : ""));
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new KvmProbeResult(false, $"kvm probe: no guest output in {timeout.TotalSeconds:0.#} s");
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync(CancellationToken.None);
            }
        }
    }

    private KvmProbeResult Booted(long started) =>
        new(true, $"kvm probe: guest printed \"{BootMarker}\" in {time.GetElapsedTime(started).TotalSeconds:0.#} s");

    private static string? TryOpenKvm()
    {
        try
        {
            using SafeFileHandle handle = File.OpenHandle("/dev/kvm", FileMode.Open, FileAccess.ReadWrite);
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"kvm probe: cannot open /dev/kvm: {ex.Message}";
        }
    }
}

internal readonly record struct KvmProbeResult(bool Usable, string Reason);
