namespace Hypercore.Images;

/// <summary>Where boot files live inside an image tree (docs/images.md).</summary>
public static class ImageLayout
{
    public static readonly IReadOnlyList<string> DefaultKernelPaths = ["boot/vmlinux", "boot/vmlinuz"];
    public const string DefaultInitrdPath = "boot/initrd.img";

    /// <summary>The kernel file: <paramref name="filename"/> when given, else boot/vmlinux, then boot/vmlinuz.</summary>
    public static string FindKernel(string tree, string? filename) =>
        Find(tree, string.IsNullOrEmpty(filename) ? DefaultKernelPaths : [filename], "kernel");

    /// <summary>The initrd file: <paramref name="filename"/> when given, else boot/initrd.img.</summary>
    public static string FindInitrd(string tree, string? filename) =>
        Find(tree, [string.IsNullOrEmpty(filename) ? DefaultInitrdPath : filename], "initrd");

    private static string Find(string tree, IReadOnlyList<string> candidates, string what)
    {
        var root = Path.GetFullPath(tree);
        foreach (var candidate in candidates)
            if (Resolve(root, candidate) is { } found) return found;
        throw new ImagePullException(ImagePullErrorKind.MissingFile, null,
            $"the image has no {what} file at {string.Join(" or ", candidates)} (set the {what} filename if it lives elsewhere)");
    }

    // Symlinks (in any path component) are resolved as the guest would see them: absolute targets are rooted at the
    // tree and ".." stops at the tree's root, so the answer is always a file inside the tree, never a host file.
    private static string? Resolve(string root, string path)
    {
        var pending = new Stack<string>(path.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse());
        var resolved = new List<string>();
        var hops = 0;
        while (pending.Count > 0)
        {
            var part = pending.Pop();
            if (part == ".") continue;
            if (part == "..") { if (resolved.Count > 0) resolved.RemoveAt(resolved.Count - 1); continue; }
            var full = Path.Combine([root, .. resolved, part]);
            var info = new FileInfo(full);
            if (info.LinkTarget is { } target)
            {
                if (++hops > 40) return null;
                if (target.StartsWith('/')) resolved.Clear();
                foreach (var p in target.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse()) pending.Push(p);
                continue;
            }
            if (!info.Exists && !Directory.Exists(full)) return null;
            resolved.Add(part);
        }
        var result = Path.Combine([root, .. resolved]);
        return File.Exists(result) && resolved.Count > 0 ? result : null;
    }
}
