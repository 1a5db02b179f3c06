using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;
using Hypercore.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>
/// Kubernetes issue 13: hypervisors in their own systemd scopes when the host's systemd is reachable, else detached
/// processes. This machine has no systemd as PID 1, so the real systemd-run is replaced by a script that records
/// its arguments and then runs the command after "--" in place, as systemd-run --scope does.
/// </summary>
[NonParallelizable]
public sealed class SystemdScopeTests
{
    private Scratch _scratch = null!;

    [SetUp]
    public void SetUp() => _scratch = new Scratch();

    [TearDown]
    public async Task TearDown() => await _scratch.DisposeAsync();

    private sealed class FixedCheck(string? path, string why) : ISystemdCheck
    {
        public int Calls { get; private set; }

        public string? SystemdRun(out string reason)
        {
            Calls++;
            reason = why;
            return path;
        }
    }

    [Test]
    public void Wrap_PutsTheHypervisorInAScopeUnderHypercoreSlice_WithItsMemoryAsTheLimit()
    {
        var (exe, args) = SystemdScope.Wrap("/usr/bin/systemd-run", "uid-1", 512, "/usr/bin/qemu-system-x86_64", ["-m", "512"]);

        exe.Should().Be("/usr/bin/systemd-run");
        args.Should().Equal("--scope", "--quiet", "--collect", "--unit=hypercore-uid-1", "--slice=hypercore.slice",
            "-p", $"MemoryMax={(512 + 256) * 1024L * 1024}", "--", "/usr/bin/qemu-system-x86_64", "-m", "512");
        SystemdScope.MemoryMaxBytes(4096).Should().Be((4096 + 1024) * 1024L * 1024, "a quarter of a large guest is the overhead");
    }

    [Test]
    public void HostCheck_WithoutSystemdAsInit_SaysWhy()
    {
        var check = new HostSystemdCheck(Path.Combine(_scratch.Root, "no-systemd", "system"));

        check.SystemdRun(out var why).Should().BeNull();
        why.Should().Contain("does not exist").And.Contain("/run/systemd is not mounted");
    }

    private FirecrackerDriver NewDriver(ISystemdCheck check)
    {
        var options = new FirecrackerOptions
        {
            BinaryPath = StandIns.Firecracker,
            RuntimeDirectory = _scratch.RuntimeDirectory,
            RequireKvm = false,
            StartTimeout = TimeSpan.FromSeconds(60),
        };
        return new FirecrackerDriver(Options.Create(options), TimeProvider.System, NullLogger<FirecrackerDriver>.Instance) { SystemdCheck = check };
    }

    [Test]
    public async Task Start_WithSystemd_RunsTheHypervisorThroughSystemdRunScope_AndRecordsTheHypervisorsOwnPid()
    {
        var record = Path.Combine(_scratch.Root, "systemd-run.args");
        var fake = Path.Combine(_scratch.Root, "systemd-run");
        await File.WriteAllTextAsync(fake, $$"""
            #!/bin/sh
            printf '%s\n' "$@" > '{{record}}'
            while [ "$1" != "--" ]; do shift; done
            shift
            exec "$@"
            """);
        File.SetUnixFileMode(fake, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var check = new FixedCheck(fake, "");
        var driver = NewDriver(check);
        var vm = _scratch.Vm("scoped", s => s with { MemoryInMb = 300 });

        var started = await driver.StartAsync(vm);

        var args = await File.ReadAllLinesAsync(record);
        args.Should().StartWith(["--scope", "--quiet", "--collect", $"--unit=hypercore-{vm.Uid}", "--slice=hypercore.slice", "-p", $"MemoryMax={(300 + 256) * 1024L * 1024}", "--", StandIns.Firecracker]);
        var pid = started.Pid!.Value;
        HostProcess.CommandLine(pid)[0].Should().NotEndWith("systemd-run", "systemd-run --scope execs the hypervisor in place");
        HostProcess.CommandLine(pid).Should().Contain(StandIns.Firecracker);
        await driver.StartAsync(_scratch.Vm("second"));
        check.Calls.Should().Be(1, "decided once per driver");
        await driver.StopAsync(vm, TimeSpan.Zero);
        await driver.CleanupAsync(vm);
    }

    [Test]
    public async Task Start_WithoutSystemd_FallsBackToADetachedProcess()
    {
        var driver = NewDriver(new FixedCheck(null, "no systemd here"));
        var vm = _scratch.Vm("detached");

        var started = await driver.StartAsync(vm);

        driver.ScopeLauncher().Should().BeNull();
        HostProcess.CommandLine(started.Pid!.Value).Should().NotContain("--scope");
        await driver.StopAsync(vm, TimeSpan.Zero);
        await driver.CleanupAsync(vm);
    }
}
