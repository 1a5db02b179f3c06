using System.Text;
using Grpc.Core;
using Hypercore.Api.Tests.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Hypercore.Contracts.VmApi;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;

namespace Hypercore.Api.Tests.MicroVms;

public sealed class VmServiceStreamingTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private ApiTestServer _server = null!;
    private CancellationTokenSource _timeout = null!;

    [SetUp]
    public async Task SetUp()
    {
        _server = await ApiTestServer.StartAsync();
        _timeout = new CancellationTokenSource(Patience);
    }

    [TearDown]
    public async Task TearDown()
    {
        _timeout.Dispose();
        await _server.DisposeAsync();
    }

    private async Task<MicroVm> CreateAsync(string id, string ns = "demo")
    {
        await _server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec { Id = id, Namespace = ns, Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" } },
        });
        return (await _server.Store.Inner.GetAsync(new VmKey(ns, id)))!;
    }

    private static async Task<WatchMicroVMsResponse> NextAsync(IAsyncStreamReader<WatchMicroVMsResponse> stream, CancellationToken ct)
    {
        (await stream.MoveNext(ct)).Should().BeTrue("the watch stream should still be open");
        return stream.Current;
    }

    [Test]
    public async Task Watch_SendsCurrentAsAddedThenModifiedAfterStatusWrite()
    {
        var vm = await CreateAsync("web1");
        using var call = _server.Vms.Watch(new WatchMicroVMsRequest { Namespace = "demo" }, cancellationToken: _timeout.Token);

        var first = await NextAsync(call.ResponseStream, _timeout.Token);
        await _server.Store.Inner.UpdateStatusAsync(vm.Key, vm.Status with { Phase = Phase.Running, Pid = 77 }, vm.ResourceVersion);
        var second = await NextAsync(call.ResponseStream, _timeout.Token);

        first.Type.Should().Be("ADDED");
        first.Microvm.Spec.Id.Should().Be("web1");
        first.Microvm.Status.Phase.Should().Be("Pending");
        second.Type.Should().Be("MODIFIED");
        second.Microvm.Status.Phase.Should().Be("Running");
        second.Microvm.Status.Pid.Should().Be(77);
    }

    [Test]
    public async Task Watch_NewRecordAndDeletion_AreSentAsAddedAndDeleted()
    {
        await CreateAsync("seed");
        using var call = _server.Vms.Watch(new WatchMicroVMsRequest(), cancellationToken: _timeout.Token);
        var seed = await NextAsync(call.ResponseStream, _timeout.Token); // the server subscribes before it lists

        var vm = await CreateAsync("web1");
        var added = await NextAsync(call.ResponseStream, _timeout.Token);
        await _server.Vms.DeleteAsync(new DeleteMicroVMRequest { Uid = vm.Uid });
        var marked = await NextAsync(call.ResponseStream, _timeout.Token);
        await _server.Store.Inner.RemoveAsync(vm.Key);
        var deleted = await NextAsync(call.ResponseStream, _timeout.Token);

        seed.Microvm.Spec.Id.Should().Be("seed");
        added.Type.Should().Be("ADDED");
        added.Microvm.Spec.Id.Should().Be("web1");
        marked.Type.Should().Be("MODIFIED");
        marked.Microvm.Status.Deleting.Should().BeTrue();
        deleted.Type.Should().Be("DELETED");
        deleted.Microvm.Spec.Uid.Should().Be(vm.Uid);
    }

    [Test]
    public async Task Watch_TwentyCalls_ShareTheInformersOneStoreWatch_AndConfirmSubscriptionWithHeaders()
    {
        await CreateAsync("web1");
        var calls = Enumerable.Range(0, 20).Select(_ => _server.Vms.Watch(new WatchMicroVMsRequest(), cancellationToken: _timeout.Token)).ToList();
        try
        {
            foreach (var call in calls)
            {
                await call.ResponseHeadersAsync.WaitAsync(_timeout.Token); // sent once subscribed, before any event
            }

            var vm = (await _server.Store.Inner.GetAsync(new VmKey("demo", "web1")))!;
            await _server.Store.Inner.UpdateStatusAsync(vm.Key, vm.Status with { Phase = Phase.Running }, vm.ResourceVersion);
            foreach (var call in calls)
            {
                (await NextAsync(call.ResponseStream, _timeout.Token)).Type.Should().Be("ADDED");
                (await NextAsync(call.ResponseStream, _timeout.Token)).Microvm.Status.Phase.Should().Be("Running");
            }

            _server.Store.WatchesOpened.Should().Be(1, "Watch calls subscribe to the shared informer, not to the store");
        }
        finally
        {
            calls.ForEach(c => c.Dispose());
        }
    }

    [Test]
    public async Task Watch_ClientThatStopsReading_IsEndedWithResourceExhausted_WhileAnotherWatcherKeepsUp()
    {
        await using var server = await ApiTestServer.StartAsync(services: s => s.Configure<HypercoreApiOptions>(o => o.WatchBufferEvents = 2));
        await server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec
            {
                Id = "big", Namespace = "demo", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" },
                Labels = { ["blob"] = new string('x', 32 * 1024) }, // large events fill the HTTP/2 windows quickly
            },
        });
        using var slow = server.Vms.Watch(new WatchMicroVMsRequest(), cancellationToken: _timeout.Token);
        using var fast = server.Vms.Watch(new WatchMicroVMsRequest(), cancellationToken: _timeout.Token);
        await slow.ResponseHeadersAsync.WaitAsync(_timeout.Token);
        await fast.ResponseHeadersAsync.WaitAsync(_timeout.Token);
        (await NextAsync(fast.ResponseStream, _timeout.Token)).Type.Should().Be("ADDED");

        // The slow client reads nothing while 200 changes happen; the fast one reads each as it comes.
        for (var i = 0; i < 200; i++)
        {
            var vm = (await server.Store.Inner.GetAsync(new VmKey("demo", "big")))!;
            await server.Store.Inner.UpdateStatusAsync(vm.Key, vm.Status with { RestartCount = i + 1 }, vm.ResourceVersion);
            (await NextAsync(fast.ResponseStream, _timeout.Token)).Microvm.Status.RestartCount.Should().Be(i + 1);
        }

        var read = async () =>
        {
            while (await slow.ResponseStream.MoveNext(_timeout.Token))
            {
            }
        };

        (await read.Should().ThrowAsync<RpcException>()).Which.StatusCode.Should().Be(StatusCode.ResourceExhausted);
    }

    [Test]
    public async Task Watch_ConsumerThatNeverReads_DelaysNeitherAnotherStreamNorTheReconciler_AndEndsWithResourceExhausted()
    {
        await using var server = await ApiTestServer.StartAsync(services: s =>
        {
            s.Configure<HypercoreApiOptions>(o => o.WatchBufferEvents = 4);
            s.AddReconciler(o => o.NodeName = "test-node");
        });
        var blob = new string('x', 32 * 1024); // large events fill the HTTP/2 windows after a few
        await server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec { Id = "big", Namespace = "demo", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" }, Labels = { ["blob"] = blob } },
        });
        using var stuck = server.Vms.Watch(new WatchMicroVMsRequest(), cancellationToken: _timeout.Token);
        using var reader = server.Vms.Watch(new WatchMicroVMsRequest(), cancellationToken: _timeout.Token);
        await stuck.ResponseHeadersAsync.WaitAsync(_timeout.Token);
        await reader.ResponseHeadersAsync.WaitAsync(_timeout.Token);

        // The stuck client never reads while 100 spec changes (and the reconciler's status writes) go out; the
        // other stream sees every change.
        var key = new VmKey("demo", "big");
        for (var i = 1; i <= 100; i++)
        {
            await ChangeLabelAsync(server, key, "n", i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            while ((await NextAsync(reader.ResponseStream, _timeout.Token)).Microvm.Spec.Labels.GetValueOrDefault("n") != i.ToString(System.Globalization.CultureInfo.InvariantCulture))
            {
            }
        }

        // The reconciler still works: a VM created now is started and reported Running.
        await server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec { Id = "later", Namespace = "demo", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" } },
        });
        WatchMicroVMsResponse ev;
        do
        {
            ev = await NextAsync(reader.ResponseStream, _timeout.Token);
        }
        while (ev.Microvm.Spec.Id != "later" || ev.Microvm.Status.Phase != "Running");

        // When the stuck client reads again it gets what was already in flight, then a status that says what to do,
        // not the stale backlog of 100 changes.
        var received = 0;
        var drain = async () =>
        {
            while (await stuck.ResponseStream.MoveNext(_timeout.Token))
            {
                received++;
            }
        };
        var error = (await drain.Should().ThrowAsync<RpcException>()).Which;
        error.StatusCode.Should().Be(StatusCode.ResourceExhausted);
        error.Status.Detail.Should().Contain("fell more than 4 events behind").And.Contain("list again and watch again");
        received.Should().BeLessThan(20, "only what was in flight before the overflow is delivered");
    }

    private static async Task ChangeLabelAsync(ApiTestServer server, VmKey key, string label, string value)
    {
        while (true)
        {
            var vm = (await server.Store.Inner.GetAsync(key))!;
            var labels = new Dictionary<string, string>(vm.Spec.Labels) { [label] = value };
            try
            {
                await server.Store.Inner.UpdateSpecAsync(key, vm.Spec with { Labels = labels }, vm.ResourceVersion);
                return;
            }
            catch (Hypercore.Store.ConflictException)
            {
                // The reconciler wrote the status in between: read again.
            }
        }
    }

    [Test]
    public async Task Watch_FiltersByNamespaceAndId()
    {
        await CreateAsync("a", "demo");
        await CreateAsync("b", "demo");
        await CreateAsync("a", "prod");
        using var call = _server.Vms.Watch(new WatchMicroVMsRequest { Namespace = "demo", Id = "b" }, cancellationToken: _timeout.Token);

        var first = await NextAsync(call.ResponseStream, _timeout.Token);
        var other = (await _server.Store.Inner.GetAsync(new VmKey("prod", "a")))!;
        await _server.Store.Inner.UpdateStatusAsync(other.Key, other.Status with { Phase = Phase.Running }, other.ResourceVersion);
        var b = (await _server.Store.Inner.GetAsync(new VmKey("demo", "b")))!;
        await _server.Store.Inner.UpdateStatusAsync(b.Key, b.Status with { Phase = Phase.Failed }, b.ResourceVersion);
        var second = await NextAsync(call.ResponseStream, _timeout.Token);

        first.Microvm.Spec.Id.Should().Be("b");
        second.Microvm.Spec.Id.Should().Be("b", "changes to other records are filtered out");
        second.Microvm.Status.Phase.Should().Be("Failed");
    }

    [Test]
    public async Task Logs_StreamsTheConsoleLogFile()
    {
        var content = string.Join("", Enumerable.Range(1, 5000).Select(i => $"line {i}\n")); // > one 32 KiB chunk
        var vm = await WithConsoleAsync("web1", content);

        var received = await ReadAllAsync(new LogsRequest { Id = "web1", Namespace = "demo" });

        received.Should().Be(content);
        _ = vm;
    }

    [Test]
    public async Task Logs_TailLines_SendsOnlyTheLastLines()
    {
        await WithConsoleAsync("web1", "one\ntwo\nthree\nfour\n");

        var received = await ReadAllAsync(new LogsRequest { Id = "web1", TailLines = 2 });

        received.Should().Be("three\nfour\n");
    }

    [Test]
    public async Task Logs_Follow_StreamsAppendedOutputUntilCancelled()
    {
        var vm = await WithConsoleAsync("web1", "booting\n");
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(_timeout.Token);
        using var call = _server.Vms.Logs(new LogsRequest { Id = "web1", Follow = true }, cancellationToken: cts.Token);

        var received = new StringBuilder();
        async Task ReadUntilAsync(string text)
        {
            while (!received.ToString().Contains(text, StringComparison.Ordinal))
            {
                (await call.ResponseStream.MoveNext(cts.Token)).Should().BeTrue();
                received.Append(Encoding.UTF8.GetString(call.ResponseStream.Current.Data.Span));
            }
        }

        await ReadUntilAsync("booting\n");
        await File.AppendAllTextAsync(ConsoleOf(vm), "HYPERCORE-GUEST-READY\n");
        await ReadUntilAsync("HYPERCORE-GUEST-READY\n");
        await cts.CancelAsync();

        received.ToString().Should().Be("booting\nHYPERCORE-GUEST-READY\n");
    }

    [Test]
    public async Task Logs_NoConsoleYet_ReturnsFailedPrecondition()
    {
        await CreateAsync("web1");

        var act = () => ReadAllAsync(new LogsRequest { Id = "web1" });

        var ex = (await act.Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        ex.Status.Detail.Should().Contain("no console log yet");
    }

    [TestCase("console.log.1", 0)]
    [TestCase("console.log.1", 5)]
    [TestCase("console.log", 0)]
    public async Task Logs_APartOfTheLogIsALinkPlantedInTheVmDirectory_FailedPreconditionAndNoByteOfItsTarget(string planted, int tail)
    {
        // The VM's directory may belong to the VMM's user; the daemon reads as root. s26 review: the streamer opened
        // console.log.1 through a link, so vis logs handed out whatever host file it named.
        var vm = await WithConsoleAsync("web1", "guest line\n");
        var secret = Path.Combine(Path.GetDirectoryName(ConsoleOf(vm))!, "..", "host-secret");
        await File.WriteAllTextAsync(secret, "root:$y$HOST-SECRET\n");
        var link = Path.Combine(Path.GetDirectoryName(ConsoleOf(vm))!, planted);
        File.Delete(link);
        File.CreateSymbolicLink(link, secret);

        var received = new MemoryStream();
        using var call = _server.Vms.Logs(new LogsRequest { Id = "web1", TailLines = tail }, cancellationToken: _timeout.Token);
        var act = async () =>
        {
            while (await call.ResponseStream.MoveNext(_timeout.Token))
            {
                call.ResponseStream.Current.Data.WriteTo(received);
            }
        };

        var ex = (await act.Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        ex.Status.Detail.Should().Contain($"{link} is a symbolic link").And.Contain("delete the VM");
        Encoding.UTF8.GetString(received.ToArray()).Should().NotContain("HOST-SECRET");
        File.Delete(secret);
    }

    [Test]
    public async Task Logs_NegativeTail_ReturnsInvalidArgument()
    {
        await WithConsoleAsync("web1", "x\n");

        var act = () => ReadAllAsync(new LogsRequest { Id = "web1", TailLines = -1 });

        (await act.Should().ThrowAsync<RpcException>()).Which.StatusCode.Should().Be(StatusCode.InvalidArgument);
    }

    [Test]
    public async Task Logs_Missing_ReturnsNotFound()
    {
        var act = () => ReadAllAsync(new LogsRequest { Id = "ghost", Namespace = "demo" });

        (await act.Should().ThrowAsync<RpcException>()).Which.StatusCode.Should().Be(StatusCode.NotFound);
    }

    [Test]
    public async Task Logs_StatusPathPoisoned_StreamsTheDriversLogNotTheStatusPath()
    {
        var vm = await WithConsoleAsync("web1", "the guest's own console\n");
        var secret = Path.Combine(_server.Root.FullName, "secret");
        await File.WriteAllTextAsync(secret, "root:$6$secret-hash:19000:0:99999:7:::\n");
        await _server.Store.Inner.UpdateStatusAsync(vm.Key, vm.Status with { ConsoleLogPath = secret }, vm.ResourceVersion);

        var received = await ReadAllAsync(new LogsRequest { Id = "web1" });

        received.Should().Be("the guest's own console\n");
    }

    [Test]
    public async Task Logs_StatusPathPoisonedAndNoConsole_ReturnsFailedPreconditionWithoutReadingIt()
    {
        var vm = await CreateAsync("web1");
        var secret = Path.Combine(_server.Root.FullName, "secret");
        await File.WriteAllTextAsync(secret, "root:$6$secret-hash\n");
        await _server.Store.Inner.UpdateStatusAsync(vm.Key, vm.Status with { Phase = Phase.Running, ConsoleLogPath = secret }, vm.ResourceVersion);

        var act = () => ReadAllAsync(new LogsRequest { Id = "web1" });

        var ex = (await act.Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        ex.Status.Detail.Should().NotContain("secret-hash");
    }

    [Test]
    public async Task Logs_AfterRotation_StreamsRotatedPartThenCurrent()
    {
        var vm = await WithConsoleAsync("web1", "new-1\nnew-2\n");
        await File.WriteAllTextAsync(ConsoleOf(vm) + ".1", "old-1\nold-2\n");

        (await ReadAllAsync(new LogsRequest { Id = "web1" })).Should().Be("old-1\nold-2\nnew-1\nnew-2\n");
        (await ReadAllAsync(new LogsRequest { Id = "web1", TailLines = 3 })).Should().Be("old-2\nnew-1\nnew-2\n");
    }

    private string ConsoleOf(MicroVm vm) => _server.Drivers.Single(d => d.Name == "qemu").ConsoleLogPath(vm);

    /// <summary>Writes the console where the VM's driver keeps it; status says a path nobody should read.</summary>
    private async Task<MicroVm> WithConsoleAsync(string id, string content)
    {
        var vm = await CreateAsync(id);
        var path = ConsoleOf(vm);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await File.WriteAllTextAsync(path, content);
        return await _server.Store.Inner.UpdateStatusAsync(vm.Key, vm.Status with { Phase = Phase.Running, ConsoleLogPath = "/nonexistent/not-the-console.log" }, vm.ResourceVersion);
    }

    private async Task<string> ReadAllAsync(LogsRequest request)
    {
        using var call = _server.Vms.Logs(request, cancellationToken: _timeout.Token);
        var bytes = new MemoryStream();
        while (await call.ResponseStream.MoveNext(_timeout.Token))
        {
            call.ResponseStream.Current.Data.WriteTo(bytes);
        }

        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
