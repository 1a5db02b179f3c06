using System.CommandLine;
using System.Globalization;
using Google.Protobuf;
using Hypercore.Cli.Output;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Commands;

/// <summary>`vis node`: the node's capacity, what its VMs hold and what is free (Kubernetes issue 13).</summary>
internal static class NodeCommand
{
    private static readonly JsonFormatter Indented = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true).WithIndentation());
    private static readonly JsonFormatter Compact = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    private static readonly string[] Header = ["", "MEMORY (MiB)", "VCPUS"];

    public static Command Build(Cli.CommandRunner runner)
    {
        var command = new Command("node", "Show this node's capacity, allocatable, allocated and free memory and vCPUs");
        runner.SetAction(command, async (inv, ct) =>
        {
            var node = await inv.Client.GetNodeAsync(ct);
            switch (inv.Format)
            {
                case OutputFormat.Json:
                    await inv.Out.WriteLineAsync(Indented.Format(node));
                    break;
                case OutputFormat.Yaml:
                    await inv.Out.WriteAsync(ProtoYaml.FromJson(Compact.Format(node)));
                    break;
                default:
                    await inv.Out.WriteAsync(Table(node));
                    break;
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    internal static string Table(GetNodeResponse node)
    {
        var c = CultureInfo.InvariantCulture;
        var rows = new List<string[]>
        {
            Header,
            Row("capacity", node.Capacity),
            Row("reserved", node.Reserved),
            Row("allocatable", node.Allocatable),
            Row("allocated", node.Allocated),
            Row("free", node.Free),
        };
        var widths = Enumerable.Range(0, 3).Select(i => rows.Max(r => r[i].Length)).ToArray();
        var text = new System.Text.StringBuilder();
        text.Append(c, $"NODE {node.Name}  (cpu overcommit {node.CpuOvercommitRatio:0.##}, {node.VmMemoryOverheadMb} MiB overhead per VM)\n");
        foreach (var r in rows)
        {
            text.Append(r[0].PadRight(widths[0])).Append("  ").Append(r[1].PadLeft(widths[1])).Append("  ").Append(r[2].PadLeft(widths[2])).Append('\n');
        }

        text.Append(c, $"VMs holding a share: {node.Admitted.Count}{List(node.Admitted)}\n");
        text.Append(c, $"VMs waiting for room: {node.Waiting.Count}{List(node.Waiting)}\n");
        return text.ToString();

        string[] Row(string name, NodeResourceAmounts? a) =>
            [name, (a?.MemoryMb ?? 0).ToString(c), (a?.Vcpus ?? 0).ToString(c)];

        static string List(IReadOnlyCollection<string> keys) => keys.Count == 0 ? "" : " (" + string.Join(", ", keys) + ")";
    }
}
