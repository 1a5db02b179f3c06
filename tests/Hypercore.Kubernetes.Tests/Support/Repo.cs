namespace Hypercore.Kubernetes.Tests.Support;

/// <summary>Paths in the repository checkout the tests run from.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string CrdFile => Path.Combine(Root, "crds", "microvms.hypercore.vistara.dev.yaml");

    // snapshots (issue 14)
    public static string SnapshotCrdFile => Path.Combine(Root, "crds", "microvmsnapshots.hypercore.vistara.dev.yaml");

    public static string Path_(params string[] parts) => Path.Combine([Root, .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "HypercoreController.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("cannot find the repository root (HypercoreController.sln) above " + AppContext.BaseDirectory);
    }
}
