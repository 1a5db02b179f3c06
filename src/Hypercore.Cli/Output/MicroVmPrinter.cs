using System.Globalization;
using Google.Protobuf;
using Hypercore.Client;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Output;

/// <summary>
/// Prints MicroVMs as a table (ID NAMESPACE PROVIDER STATE PHASE VCPU MEM PID AGE READY), as protobuf JSON, or as
/// YAML of that JSON. Lists print the ListMicroVMsResponse message, so -o json matches the HTTP API.
/// </summary>
internal sealed class MicroVmPrinter(TextWriter output, OutputFormat format, TimeProvider time)
{
    private static readonly string[] Headers = ["ID", "NAMESPACE", "PROVIDER", "STATE", "PHASE", "VCPU", "MEM", "PID", "AGE", "READY"];

    // Widths for streamed rows (watch), where later rows cannot widen earlier ones.
    private static readonly int[] StreamWidths = [8, 20, 10, 10, 8, 16, 4, 6, 7, 5, 0];

    private static readonly JsonFormatter Indented = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true).WithIndentation());
    private static readonly JsonFormatter Compact = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    private bool _streamHeaderWritten;

    public OutputFormat Format => format;

    public void PrintOne(MicroVM vm)
    {
        switch (format)
        {
            case OutputFormat.Json:
                output.WriteLine(Indented.Format(vm));
                break;
            case OutputFormat.Yaml:
                output.Write(ProtoYaml.FromJson(Compact.Format(vm)));
                break;
            default:
                WriteTable([Row(vm)]);
                break;
        }
    }

    public void PrintList(IReadOnlyList<MicroVM> vms)
    {
        var message = new ListMicroVMsResponse();
        message.Microvm.Add(vms);
        switch (format)
        {
            case OutputFormat.Json:
                output.WriteLine(Indented.Format(message));
                break;
            case OutputFormat.Yaml:
                output.Write(ProtoYaml.FromJson(Compact.Format(message)));
                break;
            default:
                if (vms.Count == 0)
                {
                    output.WriteLine("No microvms found.");
                }
                else
                {
                    WriteTable(vms.Select(Row).ToList());
                }

                break;
        }
    }

    /// <summary>One watch event: a table row with an EVENT column, one JSON object per line, or one YAML document.</summary>
    public void PrintEvent(WatchMicroVMsResponse change)
    {
        switch (format)
        {
            case OutputFormat.Json:
                output.WriteLine(Compact.Format(change));
                break;
            case OutputFormat.Yaml:
                output.WriteLine("---");
                output.Write(ProtoYaml.FromJson(Compact.Format(change)));
                break;
            default:
                if (!_streamHeaderWritten)
                {
                    _streamHeaderWritten = true;
                    output.WriteLine(Join(["EVENT", .. Headers], StreamWidths));
                }

                output.WriteLine(Join([change.Type, .. Row(change.Microvm ?? new MicroVM())], StreamWidths));
                if (ImageProgress.Describe(change.Microvm?.Status) is { } pulling)
                {
                    output.WriteLine("  " + pulling); // images (issue 11): progress while ImageReady=False
                }

                break;
        }

        output.Flush();
    }

    private string[] Row(MicroVM vm)
    {
        var spec = vm.Spec ?? new MicroVMSpec();
        var status = vm.Status ?? new MicroVMStatus();
        return
        [
            spec.Id,
            spec.Namespace.Length > 0 ? spec.Namespace : "-",
            spec.HasProvider && spec.Provider.Length > 0 ? spec.Provider : "-",
            spec.State.Length > 0 ? spec.State : DesiredStates.Running,
            status.Phase.Length > 0 ? status.Phase : MicroVmPhases.Pending,
            spec.Vcpu.ToString(CultureInfo.InvariantCulture),
            spec.MemoryInMb.ToString(CultureInfo.InvariantCulture) + "Mi",
            status.Pid > 0 ? status.Pid.ToString(CultureInfo.InvariantCulture) : "-",
            spec.CreatedAt is null ? "-" : Age(time.GetUtcNow() - spec.CreatedAt.ToDateTimeOffset()),
            Ready(status),
        ];
    }

    /// <summary>Guest health: GuestReady's status (True/False), or "-" when the VM has no readiness probe.</summary>
    private static string Ready(MicroVMStatus status) =>
        status.Conditions.FirstOrDefault(c => c.Type == ConditionTypes.GuestReady) is { } c ? c.Status : "-";

    private void WriteTable(IReadOnlyList<string[]> rows)
    {
        var widths = Headers.Select((h, i) => Math.Max(h.Length, rows.Max(r => r[i].Length))).ToArray();
        widths[^1] = 0;
        output.WriteLine(Join(Headers, widths));
        foreach (var row in rows)
        {
            output.WriteLine(Join(row, widths));
        }
    }

    private static string Join(string[] cells, int[] widths) =>
        string.Join("   ", cells.Select((c, i) => i < widths.Length ? c.PadRight(widths[i]) : c)).TrimEnd();

    /// <summary>kubectl's style: 45s, 12m, 5h, 3d.</summary>
    internal static string Age(TimeSpan age) => age switch
    {
        { Ticks: < 0 } => "0s",
        { TotalMinutes: < 2 } => $"{(int)age.TotalSeconds}s",
        { TotalHours: < 2 } => $"{(int)age.TotalMinutes}m",
        { TotalDays: < 2 } => $"{(int)age.TotalHours}h",
        _ => $"{(int)age.TotalDays}d",
    };
}
