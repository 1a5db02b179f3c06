using Hypercore.Api.Tests.Fakes;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Microsoft.Extensions.DependencyInjection;
using Fl = Hypercore.Api.Tests.Wire.Flintlock;
using Seed = Hypercore.Api.Tests.Wire.Seed;

namespace Hypercore.Api.Tests.Wire;

/// <summary>
/// The API in process (real Kestrel and SQLite) with clients generated from the test's own copies of the seed's
/// and flintlock's schemas. Besides the usual fakes it has a "firecracker" fake with a metadata service and
/// macvtap, the shape a flintlock client's request needs. The "qemu" fake deliberately has no metadata service
/// (the real QEMU driver has one, a seed disk): it stands for a provider without, such as the unikernel driver.
/// </summary>
public static class WireServer
{
    public const string MetadataProvider = "firecracker";

    public static Task<ApiTestServer> StartAsync() => ApiTestServer.StartAsync(services: s => s.AddSingleton(new DriverRegistry(
        [
            new FakeDriver("qemu", DriverCapabilities.Pause | DriverCapabilities.GracefulStop | DriverCapabilities.Tap | DriverCapabilities.Initrd | DriverCapabilities.BlockDevices),
            new FakeDriver(MetadataProvider, DriverCapabilities.GracefulStop | DriverCapabilities.Tap | DriverCapabilities.Macvtap | DriverCapabilities.MetadataService | DriverCapabilities.BlockDevices),
        ],
        "qemu")));

    public static Seed.VMService.VMServiceClient SeedClient(this ApiTestServer server) => new(server.Channel);

    public static Fl.MicroVM.MicroVMClient FlintlockClient(this ApiTestServer server) => new(server.Channel);

    /// <summary>Sets a record's observed phase as the reconciler would (the in-process API has no reconciler).</summary>
    public static async Task SetPhaseAsync(this ApiTestServer server, string uid, Phase phase)
    {
        var vm = (await server.Store.Inner.GetByUidAsync(uid))!;
        var status = vm.Status with
        {
            Phase = phase,
            Conditions = Conditions.Set(vm.Status.Conditions, Conditions.Ready, phase == Phase.Running ? ConditionStatus.True : ConditionStatus.False,
                phase.ToString(), $"set by the test to {phase}", vm.Generation, DateTimeOffset.UnixEpoch),
        };
        await server.Store.Inner.UpdateStatusAsync(vm.Key, status, vm.ResourceVersion);
    }
}
