namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>The default guest image for the driver's end-to-end tests (built once and cached by Hypercore.Testing).</summary>
[SetUpFixture]
public sealed class GuestImage
{
    public static string Directory { get; private set; } = "";

    public static string Kernel => Path.Combine(Directory, "vmlinuz");

    public static string Initrd => Path.Combine(Directory, "initrd.img");

    [OneTimeSetUp]
    public async Task Build() => Directory = await global::Hypercore.Testing.GuestImage.EnsureAsync();
}
