using System.Diagnostics;
using System.Security.Cryptography;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// The default guest image (Debian cloud kernel + busybox initramfs printing HYPERCORE-GUEST-READY), built by
/// scripts/build-image.sh into the same cache the QEMU driver tests use, /tmp/hypercore-test-image/&lt;hash&gt;/.
/// </summary>
public static class GuestImage
{
    private const string CacheRoot = "/tmp/hypercore-test-image";
    private static readonly SemaphoreSlim Gate = new(1, 1);

    /// <summary>Returns the directory holding vmlinuz and initrd.img, building it once if needed.</summary>
    public static async Task<string> EnsureAsync()
    {
        var root = RepoRoot();
        var script = Path.Combine(root, "scripts", "build-image.sh");
        var init = Path.Combine(root, "scripts", "image", "init");
        var hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(script).Concat(File.ReadAllBytes(init)).ToArray()))[..16];
        var target = Path.Combine(CacheRoot, hash);
        await Gate.WaitAsync();
        try
        {
            if (File.Exists(Path.Combine(target, "vmlinuz")) && File.Exists(Path.Combine(target, "initrd.img")))
            {
                return target;
            }

            Directory.CreateDirectory(CacheRoot);
            var staging = Path.Combine(CacheRoot, $"{hash}.{Environment.ProcessId}.tmp");
            var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add(script);
            psi.ArgumentList.Add(staging);
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            try
            {
                await p.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                p.Kill(entireProcessTree: true);
                Assert.Fail("build-image.sh did not finish within 5 minutes");
            }

            if (p.ExitCode != 0)
            {
                Assert.Fail($"build-image.sh failed ({p.ExitCode}): {await stdout}\n{await stderr}");
            }

            try
            {
                Directory.Move(staging, target);
            }
            catch (IOException) when (File.Exists(Path.Combine(target, "initrd.img")))
            {
                Directory.Delete(staging, recursive: true); // another run built the same inputs first
            }

            return target;
        }
        finally
        {
            Gate.Release();
        }
    }

    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "HypercoreController.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("HypercoreController.sln not found above the test directory");
    }
}
