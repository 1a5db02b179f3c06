namespace Hypercore.Drivers.Vmm;

/// <summary>
/// The check behind a driver's <c>RequireKvm</c>: the KVM device must exist before the provider is reported usable.
/// The device path is a setting (default <see cref="DefaultPath"/>) so that a node with KVM elsewhere, and the tests
/// that run the stand-ins (which need no KVM) on machines without it, can say where to look; the check itself is
/// always made.
/// </summary>
public static class KvmDevice
{
    public const string DefaultPath = "/dev/kvm";

    /// <summary>Null when <paramref name="path"/> exists; otherwise why <paramref name="provider"/> cannot run, naming the path.</summary>
    public static string? Problem(string path, string provider) =>
        File.Exists(path)
            ? null
            : $"{path} not found: {provider} needs KVM on this node" +
              (path == DefaultPath ? "" : $" (the configured KVM device; default {DefaultPath})");
}
