using System.Text;
using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using Fl = Hypercore.Api.Tests.Wire.Flintlock;
using FlTypes = Hypercore.Api.Tests.Wire.Flintlock.Types;
using Seed = Hypercore.Api.Tests.Wire.Seed;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// Issue 10's "done when": a client generated from the seed's proto and one generated from flintlock v0.11.0's
/// protos (the test's own copies, tests/Hypercore.Api.Tests/Wire/Protos, compiled here too: this project loads
/// nothing of the daemon's) create, get, list, stream and delete VMs on one real vistarad, and `vis` sees the same
/// VMs. The VMs run on the firecracker stand-in, which also shows the guest metadata the driver put in MMDS.
/// </summary>
[NonParallelizable]
public sealed class WireClientsEndToEndTests
{
    private const string Namespace = "wire";

    private Node _node = null!;
    private GrpcChannel _channel = null!;

    [SetUp]
    public async Task SetUp()
    {
        _node = await Node.StartAsync(_ => StandInNode.DaemonArgs);
        _channel = GrpcChannel.ForAddress(_node.GrpcUrl);
    }

    [TearDown]
    public async Task TearDown()
    {
        _channel.Dispose();
        foreach (var id in new[] { "from-seed", "from-flintlock" })
        {
            await _node.ForceDeleteAsync(Namespace, id);
        }

        await _node.ForceDeleteAsync("wire-macvtap", "macvtap");

        await _node.DisposeAsync();
    }

    private string KernelPath => Path.Combine(_node.StateDir, "images", "default", "vmlinuz");

    [Test]
    public async Task SeedAndFlintlockClients_CreateGetListStreamDelete_OnOneDaemonThatVisSees()
    {
        var seed = new Seed.VMService.VMServiceClient(_channel);
        var flintlock = new Fl.MicroVM.MicroVMClient(_channel);

        var seedRequest = new Seed.CreateMicroVMRequest
        {
            Microvm = new Seed.MicroVMSpec
            {
                Id = "from-seed", Namespace = Namespace, Vcpu = 1, MemoryInMb = 128, Provider = "firecracker",
                Kernel = new Seed.Kernel { Image = KernelPath },
            },
        };
        seedRequest.Metadata["user-data"] = Any.Pack(new StringValue { Value = "#cloud-config\nhostname: from-seed\n" });
        var bySeed = (await seed.CreateAsync(seedRequest)).Microvm.Spec.Uid;

        var flSpec = new FlTypes.MicroVMSpec
        {
            Id = "from-flintlock", Namespace = Namespace, Vcpu = 1, MemoryInMb = 128, Provider = "firecracker",
            Kernel = new FlTypes.Kernel { Image = KernelPath, AddNetworkConfig = true },
        };
        flSpec.Metadata["meta-data"] = Convert.ToBase64String(Encoding.UTF8.GetBytes("instance_id: from-flintlock\n"));
        flSpec.Metadata["user-data"] = Convert.ToBase64String(Encoding.UTF8.GetBytes("#cloud-config\n"));
        var byFlintlock = (await flintlock.CreateMicroVMAsync(new Fl.CreateMicroVMRequest { Microvm = flSpec })).Microvm.Spec.Uid;

        // Readiness as CAPMVM reads it: status.state == CREATED, through either client.
        await WaitAsync(() => flintlock.GetMicroVMAsync(new Fl.GetMicroVMRequest { Uid = bySeed }).ResponseAsync,
            r => r.Microvm.Status.State == FlTypes.MicroVMStatus.Types.MicroVMState.Created, "from-seed CREATED (flintlock client)");
        await WaitAsync(() => seed.GetAsync(new Seed.GetMicroVMRequest { Uid = byFlintlock }).ResponseAsync,
            r => r.Microvm.Status.State == Seed.MicroVMStatus.Types.MicroVMState.Created, "from-flintlock CREATED (seed client)");

        // flintlock's default interface type (no type = macvtap) is stored and then refused by the reconciler.
        var macvtapSpec = new FlTypes.MicroVMSpec
        {
            Id = "macvtap", Namespace = "wire-macvtap", Vcpu = 1, MemoryInMb = 128, Provider = "firecracker",
            Kernel = new FlTypes.Kernel { Image = KernelPath },
        };
        macvtapSpec.Interfaces.Add(new FlTypes.NetworkInterface { DeviceId = "eth0", GuestMac = "02:00:00:00:00:31" });
        var macvtap = (await flintlock.CreateMicroVMAsync(new Fl.CreateMicroVMRequest { Microvm = macvtapSpec })).Microvm.Spec.Uid;
        await WaitAsync(() => flintlock.GetMicroVMAsync(new Fl.GetMicroVMRequest { Uid = macvtap }).ResponseAsync,
            r => r.Microvm.Status.State == FlTypes.MicroVMStatus.Types.MicroVMState.Failed, "macvtap VM FAILED");
        var refused = await _node.WaitAsync("wire-macvtap", "macvtap", v => v.Condition("Ready") is not null, "a Ready condition");
        refused.Condition("Ready")!.Value.Message.Should().Contain("does not support macvtap interfaces");
        await flintlock.DeleteMicroVMAsync(new Fl.DeleteMicroVMRequest { Uid = macvtap });

        // The driver served the metadata the flintlock client sent base64-encoded, decoded, as flintlock would.
        var socket = Path.Combine(_node.RuntimeDirOf("firecracker"), byFlintlock, "api.sock");
        using (var mmds = JsonDocument.Parse(await VmmApiProbe.GetAsync(socket, "/mmds")))
        {
            // flintlock's layout: the cloud-init files under latest/, meta-data completed with the instance's identity.
            var metaData = mmds.RootElement.GetProperty("latest").GetProperty("meta-data").GetString();
            metaData.Should().StartWith("instance_id: from-flintlock\n").And.Contain($"instance-id: {byFlintlock}\nlocal-hostname: from-flintlock\n");
            mmds.RootElement.GetProperty("latest").GetProperty("user-data").GetString().Should().Be("#cloud-config\n");
        }

        var expected = new[] { "from-seed", "from-flintlock" };
        (await flintlock.ListMicroVMsAsync(new Fl.ListMicroVMsRequest { Namespace = Namespace })).Microvm.Select(m => m.Spec.Id).Should().BeEquivalentTo(expected);
        (await seed.ListAsync(new Seed.ListMicroVMsRequest { Namespace = Namespace })).Microvm.Select(m => m.Spec.Id).Should().BeEquivalentTo(expected);
        (await ReadAllAsync(seed.ListVMsStream(new Seed.ListMicroVMsRequest { Namespace = Namespace }), m => m.Microvm.Spec.Uid))
            .Should().BeEquivalentTo([bySeed, byFlintlock]);
        (await ReadAllAsync(flintlock.ListMicroVMsStream(new Fl.ListMicroVMsRequest { Namespace = Namespace }), m => m.Microvm.Spec.Uid))
            .Should().BeEquivalentTo([bySeed, byFlintlock]);

        var vis = await _node.VisAsync("list", "-n", Namespace, "-o", "json");
        vis.ExitCode.Should().Be(0, vis.ToString());
        using (var listed = JsonDocument.Parse(vis.Stdout))
        {
            listed.RootElement.GetProperty("microvm").EnumerateArray()
                .Select(m => (m.GetProperty("spec").GetProperty("uid").GetString(), m.GetProperty("status").GetProperty("phase").GetString()))
                .Should().BeEquivalentTo([(bySeed, "Running"), (byFlintlock, "Running")]);
        }

        // Each client deletes the other's VM; the VM is gone when a Get by uid says "not found".
        await seed.DeleteAsync(new Seed.DeleteMicroVMRequest { Uid = byFlintlock });
        await flintlock.DeleteMicroVMAsync(new Fl.DeleteMicroVMRequest { Uid = bySeed });
        await WaitForNotFoundAsync(() => flintlock.GetMicroVMAsync(new Fl.GetMicroVMRequest { Uid = byFlintlock }).ResponseAsync, "from-flintlock");
        await WaitForNotFoundAsync(() => seed.GetAsync(new Seed.GetMicroVMRequest { Uid = bySeed }).ResponseAsync, "from-seed");
        File.Exists(socket).Should().BeFalse("delete removes the VM's files");

        var gone = await _node.VisAsync("get", "from-seed", "-n", Namespace);
        gone.ExitCode.Should().NotBe(0, gone.ToString());
        gone.Stderr.Should().Contain("not found");
    }

    private static async Task<List<string>> ReadAllAsync<T>(AsyncServerStreamingCall<T> call, Func<T, string> select)
    {
        using (call)
        {
            var items = new List<string>();
            await foreach (var item in call.ResponseStream.ReadAllAsync())
            {
                items.Add(select(item));
            }

            return items;
        }
    }

    private static async Task WaitAsync<T>(Func<Task<T>> get, Func<T, bool> condition, string what)
    {
        using var cts = new CancellationTokenSource(Node.Patience);
        T last = default!;
        while (!cts.IsCancellationRequested)
        {
            last = await get();
            if (condition(last))
            {
                return;
            }

            await Task.Delay(200);
        }

        throw new AssertionException($"timed out waiting for {what}; last: {last}");
    }

    private static async Task WaitForNotFoundAsync(Func<Task> get, string what)
    {
        using var cts = new CancellationTokenSource(Node.Patience);
        while (!cts.IsCancellationRequested)
        {
            try
            {
                await get();
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
            {
                ex.Status.Detail.Should().Contain("not found");
                return;
            }

            await Task.Delay(200);
        }

        throw new AssertionException($"timed out waiting for {what} to be deleted");
    }
}
