using System.CommandLine;
using Hypercore.Client;
using Hypercore.Cli.Output;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Commands;

/// <summary>
/// `vis delete|start|stop|pause|resume ID`. Each only changes desired state; --wait follows the VM until
/// the daemon reports the matching phase (or, for delete, until the record is gone).
/// </summary>
internal static class LifecycleCommands
{
    private delegate Task<MicroVM> Change(HypercoreClient client, string id, string? @namespace, CancellationToken ct);

    public static Command Start(Cli.CommandRunner runner) =>
        Build(runner, "start", "Start a stopped microVM", MicroVmPhases.Running, "start",
            (c, id, ns, ct) => c.StartAsync(id, ns, ct));

    public static Command Stop(Cli.CommandRunner runner) =>
        Build(runner, "stop", "Stop a microVM (guest power-off, then kill after the grace period)", MicroVmPhases.Stopped, "stop",
            (c, id, ns, ct) => c.StopAsync(id, ns, ct));

    public static Command Pause(Cli.CommandRunner runner) =>
        Build(runner, "pause", "Pause a running microVM", MicroVmPhases.Paused, "pause",
            (c, id, ns, ct) => c.PauseAsync(id, ns, ct));

    public static Command Resume(Cli.CommandRunner runner) =>
        Build(runner, "resume", "Resume a paused microVM", MicroVmPhases.Running, "resume",
            (c, id, ns, ct) => c.ResumeAsync(id, ns, ct));

    public static Command Delete(Cli.CommandRunner runner)
    {
        var command = new Command("delete", "Delete a microVM: stop it, remove its files, then its record");
        command.Aliases.Add("rm");
        var id = SharedOptions.Id();
        var wait = new Option<bool>("--wait") { Description = "Wait until the record is gone" };
        var timeout = SharedOptions.Timeout();
        command.Add(id);
        command.Add(wait);
        command.Add(timeout);
        runner.SetAction(command, async (inv, ct) =>
        {
            var vmId = inv.Parse.GetRequiredValue(id);
            await inv.Client.DeleteMicroVmAsync(vmId, inv.Namespace, ct);
            if (inv.Parse.GetValue(wait))
            {
                await using (var progress = inv.Progress())
                {
                    await inv.Client.WaitForDeletionAsync(vmId, inv.Parse.GetTimeout(timeout), progress, inv.Namespace, ct);
                }

                inv.Out.WriteLine($"{Invocation.Name(inv.Namespace, vmId)} deleted");
            }
            else
            {
                inv.Out.WriteLine($"{Invocation.Name(inv.Namespace, vmId)} deletion requested");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Build(Cli.CommandRunner runner, string name, string description, string phase, string verb, Change change)
    {
        var command = new Command(name, description);
        var id = SharedOptions.Id();
        var wait = new Option<bool>("--wait") { Description = $"Wait until the daemon reports {phase}" };
        var timeout = SharedOptions.Timeout();
        command.Add(id);
        command.Add(wait);
        command.Add(timeout);
        runner.SetAction(command, async (inv, ct) =>
        {
            var vm = await change(inv.Client, inv.Parse.GetRequiredValue(id), inv.Namespace, ct);
            var label = Invocation.Name(vm.Spec.Namespace, vm.Spec.Id);
            if (inv.Parse.GetValue(wait))
            {
                await using (var progress = inv.Progress())
                {
                    vm = await inv.Client.WaitForPhaseAsync(vm.Spec.Id, phase, inv.Parse.GetTimeout(timeout), progress, vm.Spec.Namespace, ct);
                }
            }

            if (inv.Format != OutputFormat.Table)
            {
                inv.Printer.PrintOne(vm);
            }
            else if (inv.Parse.GetValue(wait))
            {
                inv.Out.WriteLine($"{label}: {vm.Status.Phase}");
            }
            else
            {
                inv.Out.WriteLine($"{label}: {verb} requested (desired state {vm.Spec.State})");
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
