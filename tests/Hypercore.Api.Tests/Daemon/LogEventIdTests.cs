using System.Reflection;
using Microsoft.Extensions.Logging;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// Log event ids: one range per assembly and no id used twice, so a log line's EventId alone says where it came
/// from (and a JSON-log query on it never matches two different messages). Scans every [LoggerMessage] in the
/// daemon's assemblies by reflection.
/// </summary>
public sealed class LogEventIdTests
{
    /// <summary>The ranges, also listed in README's design section. A new assembly with logs gets a new range here.</summary>
    private static readonly Dictionary<string, (int First, int Last)> Ranges = new()
    {
        ["Hypercore.Core"] = (1000, 1299),
        ["Hypercore.Store.Kubernetes"] = (1300, 1399),
        ["Hypercore.Store.Sqlite"] = (2000, 2099),
        ["Hypercore.Api"] = (2100, 2199),
        ["Hypercore.Drivers.Qemu"] = (3100, 3199),
        ["Hypercore.Drivers.Unikernel"] = (3200, 3299),
        ["Hypercore.Drivers.Firecracker"] = (3300, 3399),
        ["Hypercore.Drivers.CloudHypervisor"] = (3400, 3499),
        ["Hypercore.Drivers.Vmm"] = (3500, 3649), // 3600-3649: guest bootstrap (cloud-init seed disk)
        ["Hypercore.Networking"] = (3650, 3699), // node networking (issue 12)
        ["Hypercore.Telemetry"] = (4000, 4099),
        ["Hypercore.Images"] = (5000, 5199), // 5000-5099 the library, 5100-5199 its reconciler integration (issue 11)
        ["vistarad"] = (9000, 9099), // Hypercore.Daemon
    };

    /// <summary>Feature ranges inside an assembly that already has one (helpers' features land in shared assemblies).</summary>
    private static readonly List<(string Feature, string Assembly, int First, int Last)> FeatureRanges =
    [
        ("k8s (issue 13: admission, node capacity)", "Hypercore.Core", 1400, 1419),
        ("k8s (issue 13: node lifecycle, placement)", "Hypercore.Store.Kubernetes", 1420, 1439),
        ("k8s (issue 13: systemd scopes)", "Hypercore.Drivers.Vmm", 1440, 1449),
        ("snapshots (issue 14), in every assembly it logs from", "*", 1150, 1199),
    ];

    private static bool InFeatureRange(string assembly, int id) =>
        FeatureRanges.Any(r => (r.Assembly == assembly || r.Assembly == "*") && id >= r.First && id <= r.Last);

    private static List<(string Assembly, string Method, int Id)> Scan()
    {
        var found = new List<(string, string, int)>();
        foreach (var file in Directory.EnumerateFiles(AppContext.BaseDirectory, "Hypercore.*.dll").Append(Path.Combine(AppContext.BaseDirectory, "vistarad.dll")))
        {
            var name = Path.GetFileNameWithoutExtension(file);
            if (name.EndsWith(".Tests", StringComparison.Ordinal) || name == "Hypercore.Testing")
            {
                continue;
            }

            var assembly = Assembly.Load(new AssemblyName(name));
            Type[] types;
            try
            {
                types = assembly.GetTypes();
            }
            catch (ReflectionTypeLoadException ex)
            {
                types = ex.Types.OfType<Type>().ToArray();
            }

            foreach (var type in types)
            {
                foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly))
                {
                    if (method.GetCustomAttribute<LoggerMessageAttribute>() is { } attribute)
                    {
                        found.Add((name, $"{type.FullName}.{method.Name}", attribute.EventId));
                    }
                }
            }
        }

        return found;
    }

    [Test]
    public void EveryLoggerMessage_HasAnIdInItsAssemblysRange_AndNoIdIsUsedTwice()
    {
        var found = Scan();

        found.Select(f => f.Assembly).Distinct().Should().Contain(
            ["Hypercore.Core", "Hypercore.Api", "vistarad", "Hypercore.Drivers.Qemu", "Hypercore.Store.Sqlite"],
            "the scan must see the daemon's assemblies, or it proves nothing");
        var problems = new List<string>();
        foreach (var (assembly, method, id) in found)
        {
            if (!Ranges.TryGetValue(assembly, out var range))
            {
                problems.Add($"{method} ({assembly}): the assembly has no event id range; add one to {nameof(LogEventIdTests)} and README");
            }
            else if ((id < range.First || id > range.Last) && !InFeatureRange(assembly, id))
            {
                problems.Add($"{method}: id {id} is outside {assembly}'s range {range.First}-{range.Last}");
            }
        }

        foreach (var clash in found.GroupBy(f => f.Id).Where(g => g.Count() > 1))
        {
            problems.Add($"id {clash.Key} is used by {string.Join(" and ", clash.Select(c => c.Method))}");
        }

        problems.Should().BeEmpty();
    }

    [Test]
    public void Ranges_DoNotOverlap()
    {
        var ordered = Ranges.OrderBy(r => r.Value.First).ToList();
        for (var i = 1; i < ordered.Count; i++)
        {
            ordered[i].Value.First.Should().BeGreaterThan(ordered[i - 1].Value.Last, $"{ordered[i].Key} overlaps {ordered[i - 1].Key}");
        }

        // A feature range lies wholly inside one assembly's range (a block reserved within it) or outside all of them,
        // and feature ranges never overlap one another.
        static bool Overlap((int First, int Last) a, (int First, int Last) b) => a.First <= b.Last && b.First <= a.Last;
        static bool Inside((int First, int Last) inner, (int First, int Last) outer) => inner.First >= outer.First && inner.Last <= outer.Last;
        foreach (var f in FeatureRanges)
        {
            var range = (f.First, f.Last);
            var partial = Ranges.Where(r => Overlap(range, r.Value) && !Inside(range, r.Value)).Select(r => r.Key).ToList();
            partial.Should().BeEmpty($"{f.Feature} ({f.First}-{f.Last}) straddles an assembly's range");
            foreach (var other in FeatureRanges.Where(o => o != f))
            {
                Overlap(range, (other.First, other.Last)).Should().BeFalse($"{f.Feature} overlaps {other.Feature}");
            }
        }
    }
}
