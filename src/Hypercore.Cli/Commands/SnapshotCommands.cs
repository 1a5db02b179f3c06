using System.CommandLine;
using System.Globalization;
using Google.Protobuf;
using Hypercore.Cli.Output;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Commands;

/// <summary>`vis snapshot create VM NAME`, `vis snapshot ls`, `vis snapshot rm NAME` (vm.services.api.SnapshotService).</summary>
internal static class SnapshotCommands
{
    private static readonly JsonFormatter Indented = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true).WithIndentation());
    private static readonly JsonFormatter Compact = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    public static Command Build(Cli.CommandRunner runner)
    {
        var command = new Command("snapshot", "Take, list and delete snapshots of running microVMs (start one with `vis run --from-snapshot NAME`)");
        command.Add(Create(runner));
        command.Add(List(runner));
        command.Add(Remove(runner));
        return command;
    }

    private static Command Create(Cli.CommandRunner runner)
    {
        var command = new Command("create", "Snapshot a running or paused microVM (memory, devices and a copy of its writable disks)");
        var vm = new Argument<string>("vm") { Description = "The microVM's id" };
        var name = new Argument<string>("name") { Description = "Snapshot name: 1-63 lowercase letters, digits and '-'" };
        command.Add(vm);
        command.Add(name);
        runner.SetAction(command, async (inv, ct) =>
        {
            var info = await inv.Client.Snapshots.SnapshotAsync(
                new SnapshotRequest { Id = inv.Parse.GetRequiredValue(vm), Namespace = inv.Namespace ?? "", Name = inv.Parse.GetRequiredValue(name) },
                cancellationToken: ct);
            Print(inv, [info], one: true);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command List(Cli.CommandRunner runner)
    {
        var command = new Command("ls", "List snapshots (all namespaces unless -n is given)");
        command.Aliases.Add("list");
        runner.SetAction(command, async (inv, ct) =>
        {
            var reply = await inv.Client.Snapshots.ListSnapshotsAsync(new ListSnapshotsRequest { Namespace = inv.Namespace ?? "" }, cancellationToken: ct);
            Print(inv, reply.Snapshots, one: false);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Remove(Cli.CommandRunner runner)
    {
        var command = new Command("rm", "Delete a snapshot and its files");
        command.Aliases.Add("delete");
        var name = new Argument<string>("name") { Description = "Snapshot name" };
        command.Add(name);
        runner.SetAction(command, async (inv, ct) =>
        {
            var snapshot = inv.Parse.GetRequiredValue(name);
            await inv.Client.Snapshots.DeleteSnapshotAsync(new DeleteSnapshotRequest { Name = snapshot }, cancellationToken: ct);
            inv.Out.WriteLine($"snapshot {snapshot} deleted");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Fetches one snapshot by name, for `vis run --from-snapshot`.</summary>
    public static async Task<SnapshotInfo> GetAsync(Invocation inv, string name, CancellationToken ct)
    {
        var reply = await inv.Client.Snapshots.ListSnapshotsAsync(new ListSnapshotsRequest { Name = name }, cancellationToken: ct);
        return reply.Snapshots.FirstOrDefault()
            ?? throw new Grpc.Core.RpcException(new Grpc.Core.Status(Grpc.Core.StatusCode.NotFound, $"snapshot \"{name}\" not found; `vis snapshot ls` lists the snapshots"));
    }

    private static void Print(Invocation inv, IReadOnlyList<SnapshotInfo> snapshots, bool one)
    {
        IMessage message = one ? snapshots[0] : new ListSnapshotsResponse { Snapshots = { snapshots } };
        switch (inv.Format)
        {
            case OutputFormat.Json:
                inv.Out.WriteLine(Indented.Format(message));
                return;
            case OutputFormat.Yaml:
                inv.Out.Write(ProtoYaml.FromJson(Compact.Format(message)));
                return;
        }

        if (snapshots.Count == 0)
        {
            inv.Out.WriteLine("No snapshots found.");
            return;
        }

        var now = inv.Environment.TimeProvider.GetUtcNow();
        string[] headers = ["NAME", "NAMESPACE", "SOURCE", "PROVIDER", "SIZE", "TOOK", "AGE"];
        var rows = snapshots.Select(s => new[]
        {
            s.Name, s.Namespace, s.SourceId, s.Provider, Size(s.SizeBytes),
            s.DurationSeconds.ToString("0.0", CultureInfo.InvariantCulture) + "s",
            s.CreatedAt is null ? "-" : MicroVmPrinter.Age(now - s.CreatedAt.ToDateTimeOffset()),
        }).ToList();
        var widths = headers.Select((h, i) => Math.Max(h.Length, rows.Max(r => r[i].Length))).ToArray();
        inv.Out.WriteLine(string.Join("  ", headers.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
        foreach (var row in rows)
        {
            inv.Out.WriteLine(string.Join("  ", row.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
        }
    }

    private static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => (bytes / (double)(1L << 30)).ToString("0.0", CultureInfo.InvariantCulture) + "Gi",
        >= 1L << 20 => (bytes / (double)(1L << 20)).ToString("0.0", CultureInfo.InvariantCulture) + "Mi",
        >= 1L << 10 => (bytes / (double)(1L << 10)).ToString("0.0", CultureInfo.InvariantCulture) + "Ki",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + "B",
    };
}
