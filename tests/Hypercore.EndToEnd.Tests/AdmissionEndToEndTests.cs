using System.Text.Json;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// Admission on a real node (Kubernetes issue 13): the real vistarad with a small configured capacity, real vis,
/// real QEMU under TCG. A VM that does not fit stays Admitted=False until another is deleted, then boots; one that
/// can never fit is refused at create.
/// </summary>
[NonParallelizable]
public sealed class AdmissionEndToEndTests
{
    [Test]
    public async Task VmThatDoesNotFit_StaysAdmittedFalse_UntilAnotherIsDeleted_ThenBoots()
    {
        // 600 MiB allocatable; each 256 MiB guest is charged 256 + 64. The retry interval is an hour, so only the
        // re-queue on delete can start the waiting VM within the test's patience.
        await using var node = await Node.StartAsync(_ =>
            ["--capacity-memory-mb", "600", "--reserved-memory-mb", "0", "--vm-memory-overhead-mb", "64", "--admission-retry", "1h"]);
        try
        {
            var first = await node.VisAsync("run", "--name", "adm-a", "--memory", "256", "-o", "json", "--timeout", "2m");
            first.ExitCode.Should().Be(0, first.ToString());
            var second = await node.VisAsync("create", "--name", "adm-b", "--memory", "256", "-o", "json");
            second.ExitCode.Should().Be(0, second.ToString());

            var waiting = await node.WaitAsync("default", "adm-b", v => v.Condition("Admitted")?.Status == "False", "Admitted=False");
            var admitted = waiting.Condition("Admitted")!.Value;
            admitted.Reason.Should().Be("InsufficientMemory");
            admitted.Message.Should().Contain("needs 320 MiB (256 MiB + 64 MiB overhead)").And.Contain("320 of 600 MiB").And.Contain("280 MiB free");
            waiting.Phase.Should().Be("Pending");

            var shown = await node.VisAsync("node", "-o", "json");
            shown.ExitCode.Should().Be(0, shown.ToString());
            using (var json = JsonDocument.Parse(shown.Stdout))
            {
                var root = json.RootElement;
                root.GetProperty("name").GetString().Should().Be("e2e-node");
                root.GetProperty("capacity").GetProperty("memoryMb").GetString().Should().Be("600");
                root.GetProperty("allocatable").GetProperty("memoryMb").GetString().Should().Be("600");
                root.GetProperty("allocated").GetProperty("memoryMb").GetString().Should().Be("320");
                root.GetProperty("free").GetProperty("memoryMb").GetString().Should().Be("280");
                root.GetProperty("admitted").EnumerateArray().Select(e => e.GetString()).Should().Equal("default/adm-a");
                root.GetProperty("waiting").EnumerateArray().Select(e => e.GetString()).Should().Equal("default/adm-b");
            }

            var table = await node.VisAsync("node");
            table.Stdout.Should().Contain("allocated").And.Contain("VMs waiting for room: 1 (default/adm-b)");
            using (var http = await node.Http.GetAsync("/v1/node"))
            {
                http.IsSuccessStatusCode.Should().BeTrue();
                (await http.Content.ReadAsStringAsync()).Should().Contain("\"free\"");
            }

            // Still waiting a few seconds later: nothing started it behind admission's back.
            await Task.Delay(TimeSpan.FromSeconds(3));
            (await node.GetAsync("adm-b")).Phase.Should().Be("Pending");

            var never = await node.VisAsync("create", "--name", "adm-huge", "--memory", "1024");
            never.ExitCode.Should().Be(1, never.ToString());
            never.Stderr.Should().Contain("ResourceExhausted").And.Contain("needs 1088 MiB").And.Contain("only 600 MiB allocatable");
            (await node.TryGetOverHttpAsync("default", "adm-huge")).Should().BeNull("nothing is written for a refused create");

            var delete = await node.VisAsync("delete", "adm-a", "--wait", "--timeout", "2m");
            delete.ExitCode.Should().Be(0, delete.ToString());
            var booted = await node.WaitAsync("default", "adm-b", v => v.Phase == "Running", "Running after adm-a was deleted");
            booted.Condition("Admitted")!.Value.Status.Should().Be("True");
            await Node.WaitForGuestReadyAsync(booted.ConsoleLogPath, Node.Patience);
        }
        finally
        {
            await node.ForceDeleteAsync("default", "adm-a");
            await node.ForceDeleteAsync("default", "adm-b");
        }
    }
}
