using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Hypercore.Api.Errors;
using Hypercore.Api.Tests.Fakes;
using Hypercore.MicroVms;
using Hypercore.Operations;
using Hypercore.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypercore.Api.Tests.Errors;

/// <summary>
/// Issue 15 (call12): the API's error mapping runs around each handler from the method tables, not as a gRPC
/// interceptor, so no call pays for gRPC's interceptor pipeline. The statuses are the ones the interceptor gave.
/// </summary>
public sealed class ErrorMappingTests
{
    private static readonly StoreExceptionInterceptor Errors = new(NullLogger<StoreExceptionInterceptor>.Instance);

    [Test]
    public void Unary_ACallDoneAtOnce_IsItsOwnTask_AndAllocatesNothing()
    {
        var done = Task.FromResult("answer");
        var context = new TestCallContext();
        UnaryServerMethod<object, string, string> handler = (_, _, _) => done;
        Errors.Unary(handler, this, "request", context); // warm

        var before = GC.GetAllocatedBytesForCurrentThread();
        var task = Errors.Unary(handler, this, "request", context);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        allocated.Should().Be(0);
        task.Should().BeSameAs(done);
    }

    [Test]
    public async Task Unary_RefusalsAndStoreFailures_BecomeStatuses_ThrownOrAwaited()
    {
        var context = new TestCallContext();
        var key = new VmKey("demo", "web1");

        // Thrown before the handler's first await: a faulted task (as the async interceptor gave), not an exception here.
        var thrown = Errors.Unary<object, string, string>((_, _, _) => throw new NotFoundException(key), this, "r", context);
        thrown.IsFaulted.Should().BeTrue();
        (await thrown.Awaiting(t => t).Should().ThrowAsync<RpcException>()).Which.StatusCode.Should().Be(StatusCode.NotFound);

        var awaited = Errors.Unary<object, string, string>(async (_, _, _) =>
        {
            await Task.Yield();
            throw new InvalidRequestException("bad id");
        }, this, "r", context);
        (await awaited.Awaiting(t => t).Should().ThrowAsync<RpcException>()).Which.Status.Should().Be(new Status(StatusCode.InvalidArgument, "bad id"));

        var answered = Errors.Unary<object, string, string>(async (_, _, _) =>
        {
            await Task.Yield();
            return "ok";
        }, this, "r", context);
        (await answered).Should().Be("ok");

        // Anything else is not the mapping's: it reaches gRPC as it was thrown, in a faulted task.
        var other = Errors.Unary<object, string, string>((_, _, _) => throw new InvalidOperationException("bug"), this, "r", context);
        other.IsFaulted.Should().BeTrue();
        await other.Awaiting(t => t).Should().ThrowAsync<InvalidOperationException>().WithMessage("bug");
    }

    [Test]
    public async Task ServerStreaming_RefusalsAndStoreFailures_BecomeStatuses_ThrownOrAwaited()
    {
        var context = new TestCallContext();

        var thrown = Errors.ServerStreaming<object, string, string>((_, _, _, _) => throw new StoreException("locked"), this, "r", null!, context);
        (await thrown.Awaiting(t => t).Should().ThrowAsync<RpcException>()).Which.Status.Should().Be(new Status(StatusCode.Unavailable, "store unavailable: locked"));

        var awaited = Errors.ServerStreaming<object, string, string>(async (_, _, _, _) =>
        {
            await Task.Yield();
            throw new MicroVmNotFoundException("no web1");
        }, this, "r", null!, context);
        (await awaited.Awaiting(t => t).Should().ThrowAsync<RpcException>()).Which.StatusCode.Should().Be(StatusCode.NotFound);

        Errors.ServerStreaming<object, string, string>((_, _, _, _) => Task.CompletedTask, this, "r", null!, context).Should().BeSameAs(Task.CompletedTask);
    }
}
