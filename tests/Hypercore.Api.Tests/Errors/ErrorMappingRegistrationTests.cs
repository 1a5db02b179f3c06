using Grpc.AspNetCore.Server;
using Grpc.Core;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Contracts.VmApi;
using Hypercore.Store;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Tests.Errors;

/// <summary>
/// Issue 15 (call12): the API's error mapping (StoreExceptionInterceptor) runs around each handler from the method
/// tables, not in gRPC's interceptor list, and still maps a store failure on every path: unary and server-streaming
/// gRPC, and HTTP/JSON.
/// </summary>
public sealed class ErrorMappingRegistrationTests
{
    [Test]
    public async Task TheApi_RegistersNoGrpcInterceptor_AndStillMapsStoreFailuresOnEveryPath()
    {
        await using var server = await ApiTestServer.StartAsync();

        server.Services.GetRequiredService<IOptions<GrpcServiceOptions>>().Value.Interceptors.Should().BeEmpty(
            "the method tables call the mapping themselves; an interceptor would run gRPC's pipeline on every call");

        server.Store.Outage = new StoreException("disk I/O error");
        var get = () => server.Vms.GetAsync(new GetMicroVMRequest { Id = "web1", Namespace = "demo" }).ResponseAsync;
        (await get.Should().ThrowAsync<RpcException>()).Which.Status.Should().Be(new Status(StatusCode.Unavailable, "store unavailable: disk I/O error"));
        var stream = async () =>
        {
            using var call = server.Vms.ListVMsStream(new ListMicroVMsRequest());
            await call.ResponseStream.MoveNext(CancellationToken.None);
        };
        (await stream.Should().ThrowAsync<RpcException>()).Which.StatusCode.Should().Be(StatusCode.Unavailable);
        using var http = await server.Http.GetAsync("/v1/microvms/web1?namespace=demo");
        ((int)http.StatusCode).Should().Be(503);
        server.Store.Outage = null;
    }
}
