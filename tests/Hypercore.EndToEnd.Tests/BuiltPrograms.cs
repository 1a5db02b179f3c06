using System.Reflection;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// Where the shipped programs (and the hypervisor stand-ins) were built, for the configuration this test project was
/// built in (assembly metadata written by the csproj). They run from their own output folders, with their own deps.json.
/// </summary>
internal static class BuiltPrograms
{
    public static string VistaradDll => Metadata("VistaradDll");

    public static string VisDll => Metadata("VisDll");

    /// <summary>The firecracker stand-in's apphost (tests/standins/FirecrackerStandIn), named "firecracker".</summary>
    public static string FirecrackerStandIn => Metadata("FirecrackerStandIn");

    /// <summary>The cloud-hypervisor stand-in's apphost (tests/standins/CloudHypervisorStandIn), named "cloud-hypervisor".</summary>
    public static string CloudHypervisorStandIn => Metadata("CloudHypervisorStandIn");

    /// <summary>The ops stand-in (bash; tests/standins/ops/ops), which starts QEMU on the image like ops onprem.</summary>
    public static string OpsStandIn => Metadata("OpsStandIn");

    private static string Metadata(string key)
    {
        var path = typeof(BuiltPrograms).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;
        return File.Exists(path) ? path : throw new AssertionException($"{key}: {path} is not built");
    }
}
