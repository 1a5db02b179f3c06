using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace Hypercore.Testing;

/// <summary>
/// A minimal busybox initramfs whose /init is a script the test gives (a guest that floods its console, one that
/// panics, ...), to boot with the default image's kernel. Built like scripts/build-image.sh builds the default one
/// (static busybox, newc cpio, gzip), cached in /tmp/hypercore-test-image/initrd-&lt;name&gt;-&lt;hash of the script&gt;.img.
/// </summary>
public static class CustomInitramfs
{
    private const string CacheRoot = "/tmp/hypercore-test-image";
    private static readonly SemaphoreSlim Gate = new(1, 1);

    /// <summary>Returns the initrd path, building it once per script.</summary>
    public static async Task<string> EnsureAsync(string name, string initScript)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(initScript)))[..16];
        var target = Path.Combine(CacheRoot, $"initrd-{name}-{hash}.img");
        await Gate.WaitAsync();
        try
        {
            if (File.Exists(target))
            {
                return target;
            }

            Directory.CreateDirectory(CacheRoot);
            var work = Directory.CreateTempSubdirectory("hypercore-initramfs-").FullName;
            try
            {
                var root = Path.Combine(work, "root");
                foreach (var dir in new[] { "bin", "dev", "proc", "sys", "tmp" })
                {
                    Directory.CreateDirectory(Path.Combine(root, dir));
                }

                var busybox = new[] { "/bin/busybox", "/usr/bin/busybox" }.FirstOrDefault(File.Exists)
                    ?? throw new AssertionException("busybox not found (install busybox-static; scripts/setup.sh does)");
                File.Copy(busybox, Path.Combine(root, "bin", "busybox"));
                File.CreateSymbolicLink(Path.Combine(root, "bin", "sh"), "busybox");
                var init = Path.Combine(root, "init");
                await File.WriteAllTextAsync(init, initScript.ReplaceLineEndings("\n"));

                var staging = Path.Combine(work, "initrd.img");
                var psi = new ProcessStartInfo("bash") { RedirectStandardError = true, WorkingDirectory = root };
                psi.ArgumentList.Add("-c");
                psi.ArgumentList.Add("set -o pipefail; chmod 0755 init bin/busybox; find . -print0 | LC_ALL=C sort -z | cpio --null --create --format=newc --owner=0:0 --quiet | gzip -9 -n >\"$1\"");
                psi.ArgumentList.Add("bash");
                psi.ArgumentList.Add(staging);
                using var p = Process.Start(psi)!;
                var stderr = p.StandardError.ReadToEndAsync();
                using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
                await p.WaitForExitAsync(cts.Token);
                if (p.ExitCode != 0)
                {
                    throw new AssertionException($"building the {name} initramfs failed ({p.ExitCode}): {await stderr}");
                }

                File.Move(staging, target, overwrite: true);
                return target;
            }
            finally
            {
                Directory.Delete(work, recursive: true);
            }
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>
    /// Makes <paramref name="stateDir"/>/images/<paramref name="imageName"/> hold the default kernel and
    /// <paramref name="initrd"/> (symlinks), so `vis run --image NAME` boots it.
    /// </summary>
    public static async Task InstallAsync(string stateDir, string imageName, string initrd)
    {
        var image = await GuestImage.EnsureAsync();
        var target = Directory.CreateDirectory(Path.Combine(stateDir, "images", imageName)).FullName;
        File.CreateSymbolicLink(Path.Combine(target, "vmlinuz"), Path.Combine(image, "vmlinuz"));
        File.CreateSymbolicLink(Path.Combine(target, "initrd.img"), initrd);
    }
}
