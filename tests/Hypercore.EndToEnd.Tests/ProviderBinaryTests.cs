using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// The daemon's binary settings pointing at paths that do not exist: the provider is reported NOT usable at start,
/// `vis run --provider …` ends in exit 8 with ProviderUnavailable naming exactly the configured path, and the daemon
/// keeps serving. (The default-path case, firecracker looked up on PATH, is in <see cref="NodeLifecycleTests"/>.)
/// Each test has its own daemon, started with its own flags.
/// </summary>
[NonParallelizable]
public sealed class ProviderBinaryTests
{
    private Node? _node;

    [TearDown]
    public async Task StopNode()
    {
        if (_node is not null)
        {
            await _node.DisposeAsync();
            _node = null;
        }
    }

    [Test]
    public async Task Run_ConfiguredVmmBinaryMissing_ExitsWith8AndProviderUnavailableNamesThatPath()
    {
        _node = await Node.StartAsync(n =>
        [
            "--firecracker-bin", Path.Combine(n.Root, "missing", "firecracker"),
            "--cloud-hypervisor-bin", Path.Combine(n.Root, "missing", "cloud-hypervisor"),
        ]);

        foreach (var provider in new[] { "firecracker", "cloud-hypervisor" })
        {
            var message = $"{provider} binary not found: tried {Path.Combine(_node.Root, "missing", provider)}";
            await _node.Daemon.WaitForLogAsync($"provider {provider}: NOT usable ({message})", Node.Patience);
            await AssertProviderUnavailableAsync(_node, provider, StandInNode.Short(provider) + "-missing", message);
        }
    }

    [Test]
    public async Task Run_JailerBinaryMissing_ExitsWith8AndProviderUnavailableNamesTheJailerPath()
    {
        _node = await Node.StartAsync(n =>
        [
            "--firecracker-bin", BuiltPrograms.FirecrackerStandIn,
            "--kvm-device", StandInNode.FakeKvmDevice, // firecracker itself must be usable for the jailer to be looked at
            "--jailer-bin", Path.Combine(n.Root, "missing", "jailer"), "--jailer-uid", "65534", "--jailer-gid", "65534",
        ]);

        var message = $"jailer binary not found: tried {Path.Combine(_node.Root, "missing", "jailer")}";
        await _node.Daemon.WaitForLogAsync($"provider firecracker: NOT usable ({message})", Node.Patience);
        await AssertProviderUnavailableAsync(_node, "firecracker", "fc-nojailer", message);
    }

    [Test]
    public async Task Run_KvmDeviceMissing_ExitsWith8AndProviderUnavailableNamesTheDevice()
    {
        _node = await Node.StartAsync(n =>
        [
            "--firecracker-bin", BuiltPrograms.FirecrackerStandIn, "--cloud-hypervisor-bin", BuiltPrograms.CloudHypervisorStandIn,
            "--kvm-device", Path.Combine(n.Root, "no-such-kvm"),
        ]);

        foreach (var provider in new[] { "firecracker", "cloud-hypervisor" })
        {
            var message = $"{Path.Combine(_node.Root, "no-such-kvm")} not found: {provider} needs KVM on this node (the configured KVM device; default /dev/kvm)";
            await _node.Daemon.WaitForLogAsync($"provider {provider}: NOT usable ({message})", Node.Patience);
            await AssertProviderUnavailableAsync(_node, provider, StandInNode.Short(provider) + "-nokvm", message);
        }
    }

    /// <summary>
    /// Issue 15 (cpu10): a driver keeps the hypervisor binary it found on PATH between walks (Drivers.Vmm DriverBinary)
    /// and only stats it on each check. A binary removed after it was found and used must still be reported at once:
    /// the next VM fails with ProviderUnavailable in its conditions, naming every path tried.
    /// </summary>
    [Test]
    public async Task Run_VmmBinaryFoundOnPathThenRemoved_TheNextVmFailsWithProviderUnavailable()
    {
        var bin = Directory.CreateTempSubdirectory("hc-e2e-path-").FullName;
        var link = Path.Combine(bin, "firecracker");
        File.CreateSymbolicLink(link, BuiltPrograms.FirecrackerStandIn);
        var saved = Environment.GetEnvironmentVariable("PATH") ?? "";
        var path = bin + ":" + saved;
        Environment.SetEnvironmentVariable("PATH", path); // the daemon inherits it
        try
        {
            _node = await Node.StartAsync(_ => ["--firecracker-bin", "firecracker", "--kvm-device", StandInNode.FakeKvmDevice]);
        }
        finally
        {
            Environment.SetEnvironmentVariable("PATH", saved);
        }

        try
        {
            var first = await _node.VisAsync("run", "--provider", "firecracker", "--name", "fc-found", "-o", "json", "--timeout", "2m");
            first.ExitCode.Should().Be(0, first.ToString());
            var running = VmView.Parse(first.Stdout);
            running.Phase.Should().Be("Running", first.ToString());
            ProcFs.CommandLine(running.Pid)[0].Should().Be(link, "the driver ran the binary it found on PATH");

            File.Delete(link);

            var tried = path.Split(':', StringSplitOptions.RemoveEmptyEntries).Distinct(StringComparer.Ordinal).Select(d => Path.Combine(d, "firecracker"));
            await AssertProviderUnavailableAsync(_node, "firecracker", "fc-removed", $"firecracker binary not found: tried {string.Join(", ", tried)}");
            await _node.ForceDeleteAsync("default", "fc-found");
        }
        finally
        {
            Directory.Delete(bin, recursive: true);
        }
    }

    private static async Task AssertProviderUnavailableAsync(Node node, string provider, string id, string message)
    {
        var run = await node.VisAsync("run", "--provider", provider, "--name", id, "--timeout", "2m");

        run.ExitCode.Should().Be(8, run.ToString());
        run.Stderr.Should().Contain($"vis: microvm default/{id} failed: {message} (ProviderUnavailable)");
        var vm = await node.GetAsync(id);
        vm.Phase.Should().Be("Failed");
        vm.Provider.Should().Be(provider);
        foreach (var type in new[] { "Ready", "Synchronized" })
        {
            vm.Condition(type).Should().Be(("False", "ProviderUnavailable", message), type);
        }

        ProcFs.FindByCommandLine(vm.Uid).Should().BeEmpty("nothing was started");
        node.Daemon.HasExited.Should().BeFalse();
        var list = await node.VisAsync("list");
        list.ExitCode.Should().Be(0, list.ToString());
    }
}
