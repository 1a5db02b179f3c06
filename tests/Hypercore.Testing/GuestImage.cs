using System.Diagnostics;
using System.Security.Cryptography;

namespace Hypercore.Testing;

/// <summary>
/// The default guest image (Debian cloud kernel + busybox initramfs whose /init prints HYPERCORE-GUEST-READY),
/// built by scripts/build-image.sh once and cached in /tmp/hypercore-test-image/&lt;hash of the build inputs&gt;/ (the
/// script and every file under scripts/image),
/// so a changed script or /init is always rebuilt and every test project shares one build.
/// </summary>
public static class GuestImage
{
    /// <summary>The line the image's /init prints on the serial console once the guest is up.</summary>
    public const string ReadyLine = "HYPERCORE-GUEST-READY";

    private const string CacheRoot = "/tmp/hypercore-test-image";
    private static readonly SemaphoreSlim Gate = new(1, 1);

    /// <summary>Returns the directory holding vmlinuz and initrd.img, building it once if needed.</summary>
    public static async Task<string> EnsureAsync()
    {
        var root = RepoRoot();
        var script = Path.Combine(root, "scripts", "build-image.sh");
        // Every input: the script and everything under scripts/image (init, feature hooks, module lists).
        var inputs = Directory.EnumerateFiles(Path.Combine(root, "scripts", "image"), "*", SearchOption.AllDirectories)
            .Order(StringComparer.Ordinal).Prepend(script);
        var bytes = inputs.SelectMany(f => System.Text.Encoding.UTF8.GetBytes(Path.GetRelativePath(root, f)).Concat(File.ReadAllBytes(f))).ToArray();
        var hash = Convert.ToHexStringLower(SHA256.HashData(bytes))[..16];
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

            TestContext.Progress.WriteLine(await stderr);
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

    /// <summary>
    /// Puts the cached image into <paramref name="stateDir"/>/images/default, the layout vistarad reads images from
    /// by name. Hard links (a copy across file systems), not symlinks: vistarad's host-path policy resolves links
    /// and refuses a kernel whose real path leaves the image directory.
    /// </summary>
    public static async Task InstallAsDefaultAsync(string stateDir)
    {
        var image = await EnsureAsync();
        var target = Directory.CreateDirectory(Path.Combine(stateDir, "images", "default")).FullName;
        foreach (var file in new[] { "vmlinuz", "initrd.img" })
        {
            LinkOrCopy(Path.Combine(image, file), Path.Combine(target, file));
        }
    }

    /// <summary>The directory cached images live in (allowed as a kernel root by tests that boot them by path).</summary>
    public static string Cache => CacheRoot;

    private static void LinkOrCopy(string source, string target)
    {
        using var ln = Process.Start(new ProcessStartInfo("ln", [source, target]) { RedirectStandardError = true })!;
        ln.WaitForExit();
        if (ln.ExitCode != 0)
        {
            File.Copy(source, target);
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
