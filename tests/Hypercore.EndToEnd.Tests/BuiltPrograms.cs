using System.Reflection;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// Where the shipped programs were built, for the configuration this test project was built in (assembly
/// metadata written by the csproj). They run from their own output folders, with their own deps.json.
/// </summary>
internal static class BuiltPrograms
{
    public static string VistaradDll => Metadata("VistaradDll");

    public static string VisDll => Metadata("VisDll");

    private static string Metadata(string key)
    {
        var path = typeof(BuiltPrograms).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;
        return File.Exists(path) ? path : throw new AssertionException($"{key}: {path} is not built");
    }
}
