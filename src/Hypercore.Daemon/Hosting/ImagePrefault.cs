using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Hypercore.Daemon.Hosting;

/// <summary>
/// What Native/prefault.c did before main (issue 15, goal 1: bench/NOTES.md, prefault17): the native binary fills
/// the zero-filled tail of its own image with one madvise instead of ~2,300 page faults during the runtime's start.
/// Read back for the start-cost log line, so a build that stopped linking it, or a kernel that refuses it, shows.
/// </summary>
internal static partial class ImagePrefault
{
    /// <summary>A direct call into the binary (vistarad.runtime.props: DirectPInvoke); the JIT build has no such library.</summary>
    public const string Library = "hypercore-prefault";

    /// <summary>"9.2 MB in 1.9 ms", "off (HYPERCORE_PREFAULT=0)", or why there is none.</summary>
    public static string Describe()
    {
        if (RuntimeFeature.IsDynamicCodeSupported)
        {
            return "none (not the Native AOT build)";
        }

        var bytes = Result(out var nanoseconds);
        return bytes < 0
            ? "off (HYPERCORE_PREFAULT=0)"
            : $"{bytes / 1048576.0:0.0} MB in {nanoseconds / 1e6:0.0} ms";
    }

    [LibraryImport(Library, EntryPoint = "hypercore_prefault_result")]
    private static partial long Result(out long nanoseconds);
}
