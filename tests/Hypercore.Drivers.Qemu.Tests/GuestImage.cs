using System.Diagnostics;
using System.Security.Cryptography;

namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>
/// The default guest image for the end-to-end tests, built once per run by scripts/build-image.sh and cached in
/// /tmp/hypercore-test-image/&lt;hash of the build scripts&gt;/, so a changed /init is always rebuilt.
/// </summary>
[SetUpFixture]
public sealed class GuestImage
{
    private const string CacheRoot = "/tmp/hypercore-test-image";

    public static string Directory { get; private set; } = "";

    public static string Kernel => Path.Combine(Directory, "vmlinuz");

    public static string Initrd => Path.Combine(Directory, "initrd.img");

    public static string RepoRoot { get; } = FindRepoRoot();

    [OneTimeSetUp]
    public void Build()
    {
        var script = Path.Combine(RepoRoot, "scripts", "build-image.sh");
        var init = Path.Combine(RepoRoot, "scripts", "image", "init");
        var hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(script).Concat(File.ReadAllBytes(init)).ToArray()))[..16];
        var target = Path.Combine(CacheRoot, hash);
        if (File.Exists(Path.Combine(target, "vmlinuz")) && File.Exists(Path.Combine(target, "initrd.img")))
        {
            Directory = target;
            return;
        }

        System.IO.Directory.CreateDirectory(CacheRoot);
        var staging = Path.Combine(CacheRoot, $"{hash}.{Environment.ProcessId}.tmp");
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(script);
        psi.ArgumentList.Add(staging);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            p.Kill(true);
            Assert.Fail("build-image.sh did not finish within 5 minutes");
        }

        TestContext.Progress.WriteLine(stderr.Result);
        if (p.ExitCode != 0)
        {
            Assert.Fail($"build-image.sh failed ({p.ExitCode}): {stdout.Result}\n{stderr.Result}");
        }

        try
        {
            System.IO.Directory.Move(staging, target);
        }
        catch (IOException) when (File.Exists(Path.Combine(target, "initrd.img")))
        {
            System.IO.Directory.Delete(staging, true); // another run won the race; same inputs, same image
        }

        Directory = target;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "HypercoreController.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("HypercoreController.sln not found above the test directory");
    }
}
