using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests;

/// <summary>What the stand-in fixtures share: the daemon flags that point the drivers at the stand-ins, and `vis run`.</summary>
internal static class StandInNode
{
    /// <summary>
    /// The daemon flags that make the firecracker and cloud-hypervisor drivers run the stand-ins. The stand-ins need
    /// no KVM, but the drivers require the KVM device before they call the provider usable: <c>--kvm-device</c> names
    /// a plain file the tests own, so these tests run on machines without /dev/kvm too (the check itself still runs;
    /// see ProviderBinaryTests for it failing).
    /// </summary>
    public static IReadOnlyList<string> DaemonArgs =>
        ["--firecracker-bin", BuiltPrograms.FirecrackerStandIn, "--cloud-hypervisor-bin", BuiltPrograms.CloudHypervisorStandIn, "--kvm-device", FakeKvmDevice];

    /// <summary>A file standing in for /dev/kvm (the stand-ins never open it).</summary>
    public static string FakeKvmDevice
    {
        get
        {
            var path = Path.Combine(Path.GetTempPath(), "hypercore-e2e-fake-kvm");
            if (!File.Exists(path))
            {
                File.WriteAllText(path, "not a device: the stand-ins need no KVM\n");
            }

            return path;
        }
    }

    public static string Short(string provider) => provider switch
    {
        "firecracker" => "fc",
        "cloud-hypervisor" => "ch",
        _ => provider,
    };

    public static string Binary(string provider) => provider switch
    {
        "firecracker" => BuiltPrograms.FirecrackerStandIn,
        "cloud-hypervisor" => BuiltPrograms.CloudHypervisorStandIn,
        _ => throw new ArgumentOutOfRangeException(nameof(provider), provider, null),
    };

    /// <summary>What each stand-in's guest prints on the console when it honours the power-off request.</summary>
    public static string PowerOffLine(string provider) => provider switch
    {
        "firecracker" => "reboot: Restarting system", // Ctrl-Alt-Del with reboot=k
        "cloud-hypervisor" => "reboot: Power down",   // ACPI power button
        _ => throw new ArgumentOutOfRangeException(nameof(provider), provider, null),
    };

    /// <summary>`vis run --provider P --name ID -o json [extra]`, which must reach Running on a process of that provider.</summary>
    public static async Task<VmView> RunAsync(Node node, string provider, string id, params string[] extra)
    {
        var result = await node.VisAsync(["run", "--provider", provider, "--name", id, "-o", "json", "--timeout", "2m", .. extra]);
        result.ExitCode.Should().Be(0, result.ToString());
        var vm = VmView.Parse(result.Stdout);
        vm.Phase.Should().Be("Running", result.ToString());
        vm.Provider.Should().Be(provider);
        vm.Pid.Should().BePositive();
        ProcFs.IsAlive(vm.Pid).Should().BeTrue();
        if (provider != "unikernel")
        {
            ProcFs.CommandLine(vm.Pid)[0].Should().Be(Binary(provider), "the driver ran the binary the daemon was given");
        }

        return vm;
    }
}
