using Hypercore.Drivers;
using Hypercore.MicroVms;

namespace Hypercore.Api.Tests.Fakes;

/// <summary>
/// A driver that only has a name and capabilities. The API must never call a driver operation; every operation
/// here records the call so a test can prove that.
/// </summary>
public sealed class FakeDriver : IHypervisorDriver
{
    private int _operations;

    public FakeDriver(string name, DriverCapabilities capabilities)
    {
        Name = name;
        Capabilities = capabilities;
    }

    public string Name { get; }

    public DriverCapabilities Capabilities { get; }

    /// <summary>Calls to anything but Name/Capabilities/CheckAvailability.</summary>
    public int Operations => Volatile.Read(ref _operations);

    public Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default) =>
        Task.FromResult(DriverAvailability.Ok("fake"));

    public Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default) =>
        Count<IReadOnlyList<VmRuntimeInfo>>([]);

    public Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        Count(VmRuntimeInfo.NotFound(vm.Uid));

    public Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        Count(new VmRuntimeInfo { Uid = vm.Uid, State = LiveState.Running });

    public Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default) => Count(0);

    public Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default) => Count(0);

    public Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default) => Count(0);

    public Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default) => Count(0);

    /// <summary>Where this fake's VMs "write" their console (a directory the test owns).</summary>
    public string RuntimeDirectory { get; set; } = "/nonexistent/fake-driver";

    /// <summary>Pure path arithmetic, like every driver's: not counted as an operation.</summary>
    public string ConsoleLogPath(MicroVm vm) => Path.Combine(RuntimeDirectory, vm.Uid, "console.log");

    private Task<T> Count<T>(T result)
    {
        Interlocked.Increment(ref _operations);
        return Task.FromResult(result);
    }
}
