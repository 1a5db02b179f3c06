using System.CommandLine;
using Hypercore.Client;

namespace Hypercore.Cli.Commands;

/// <summary>`vis get`, `vis list` and `vis watch`: reading state, once or as a stream.</summary>
internal static class QueryCommands
{
    public static Command Get(Cli.CommandRunner runner)
    {
        var command = new Command("get", "Show one microVM");
        var id = SharedOptions.Id();
        var watch = new Option<bool>("--watch", "-w") { Description = "After showing it, stream its changes until it is deleted" };
        command.Add(id);
        command.Add(watch);
        runner.SetAction(command, async (inv, ct) =>
        {
            var vm = await inv.Client.GetMicroVmAsync(inv.Parse.GetRequiredValue(id), inv.Namespace, ct);
            if (!inv.Parse.GetValue(watch))
            {
                inv.Printer.PrintOne(vm);
                return ExitCodes.Ok;
            }

            // The watch starts with the current state, so the Get above only proves the VM exists.
            return await StreamAsync(inv, vm.Spec.Id, vm.Spec.Namespace, untilDeleted: true, ct);
        });
        return command;
    }

    public static Command List(Cli.CommandRunner runner)
    {
        var command = new Command("list", "List microVMs (all namespaces unless -n is given)");
        command.Aliases.Add("ls");
        runner.SetAction(command, async (inv, ct) =>
        {
            var vms = await inv.Client.ListMicroVmsAsync(inv.Namespace, ct);
            inv.Printer.PrintList(vms);
            return ExitCodes.Ok;
        });
        return command;
    }

    public static Command Watch(Cli.CommandRunner runner)
    {
        var command = new Command("watch", "Stream changes of all microVMs (or one id) until interrupted");
        var id = new Argument<string?>("id") { Description = "Only this microVM", Arity = ArgumentArity.ZeroOrOne };
        command.Add(id);
        runner.SetAction(command, (inv, ct) => StreamAsync(inv, inv.Parse.GetValue(id), inv.Namespace, untilDeleted: false, ct));
        return command;
    }

    private static async Task<int> StreamAsync(Invocation inv, string? id, string? @namespace, bool untilDeleted, CancellationToken ct)
    {
        var printer = inv.Printer;
        try
        {
            await foreach (var change in inv.Client.WatchAsync(id, @namespace, ct))
            {
                printer.PrintEvent(change);
                if (untilDeleted && change.Type == WatchEventTypes.Deleted && change.Microvm?.Spec?.Id == id)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Ctrl+C is how a watch normally ends.
        }

        return ExitCodes.Ok;
    }
}
