using System.Diagnostics;
using System.Security.Cryptography;

namespace Hypercore.Testing;

/// <summary>
/// A Debian 12 guest with the real cloud-init (scripts/build-cloudinit-image.sh: mmdebstrap rootfs as an ext4 disk,
/// the cloud kernel and its initramfs), built once and cached in /var/cache/hypercore-test-cloudinit/&lt;hash of the
/// script&gt;/ (kept across /tmp cleanups: a fresh build downloads ~200 packages).
/// </summary>
public static class CloudInitImage
{
    private const string CacheRoot = "/var/cache/hypercore-test-cloudinit";
    private static readonly SemaphoreSlim Gate = new(1, 1);

    /// <summary>How long the last <see cref="EnsureAsync"/> spent building (zero when the cache had it).</summary>
    public static TimeSpan LastBuild { get; private set; }

    /// <summary>Returns the directory holding vmlinuz, initrd.img and rootfs.ext4, building it once if needed.</summary>
    public static async Task<string> EnsureAsync()
    {
        var script = Path.Combine(GuestImage.RepoRoot(), "scripts", "build-cloudinit-image.sh");
        var hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(script)))[..16];
        var target = Path.Combine(CacheRoot, hash);
        await Gate.WaitAsync();
        try
        {
            LastBuild = TimeSpan.Zero;
            if (new[] { "vmlinuz", "initrd.img", "rootfs.ext4" }.All(f => File.Exists(Path.Combine(target, f))))
            {
                return target;
            }

            Directory.CreateDirectory(CacheRoot);
            var staging = Path.Combine(CacheRoot, $"{hash}.{Environment.ProcessId}.tmp");
            var sw = Stopwatch.StartNew();
            var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add(script);
            psi.ArgumentList.Add(staging);
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(30));
            try
            {
                await p.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                p.Kill(entireProcessTree: true);
                Assert.Fail("build-cloudinit-image.sh did not finish within 30 minutes");
            }

            var err = await stderr;
            if (p.ExitCode != 0)
            {
                if (Directory.Exists(staging))
                {
                    Directory.Delete(staging, recursive: true);
                }

                Assert.Fail($"build-cloudinit-image.sh failed ({p.ExitCode}): {await stdout}\n{err[Math.Max(0, err.Length - 4000)..]}");
            }

            try
            {
                Directory.Move(staging, target);
            }
            catch (IOException) when (File.Exists(Path.Combine(target, "rootfs.ext4")))
            {
                Directory.Delete(staging, recursive: true); // another run built the same inputs first
            }

            LastBuild = sw.Elapsed;
            TestContext.Progress.WriteLine($"cloud-init guest image built in {LastBuild.TotalSeconds:0} s");
            return target;
        }
        finally
        {
            Gate.Release();
        }
    }
}
